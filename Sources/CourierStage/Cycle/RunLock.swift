import CourierCore

/// The exclusive lock of a staging run: a `FileLock` on `state_dir/lock`, holding the pid for
/// humans. The kernel drops it when the process dies, however it dies, so there are no stale locks.
public final class RunLock {
    private let lock: FileLock
    public let path: String

    /// Takes the lock or throws `.locked` at once, naming the holder's pid.
    public init(path: String) throws {
        self.path = path
        guard let lock = try FileLock.tryAcquire(path, recordingPid: true) else {
            let pid = FileLock.holder(path)
            let holder = pid.isEmpty ? "" : " (pid \(pid))"
            throw CourierError(
                .locked, "another courier-stage run holds \(path)\(holder); this run exits without doing anything")
        }
        self.lock = lock
    }
}
