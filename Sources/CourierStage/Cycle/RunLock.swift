import CourierCore
@preconcurrency import Glibc
import SystemPackage

/// The exclusive lock of a staging run: `flock` on `state_dir/lock`, holding the pid for humans.
/// The kernel drops it when the process dies, however it dies, so there are no stale locks.
public final class RunLock {
    private let fd: Int32
    public let path: String

    /// Takes the lock or throws `.locked` at once, naming the holder's pid.
    public init(path: String) throws {
        self.path = path
        fd = try Sys.open(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0o644)
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            var holder = ""
            if let b = try? Sys.readFile(path, limit: 64) {
                let pid = String(decoding: b, as: UTF8.self).trimming(" \n")
                if !pid.isEmpty { holder = " (pid \(pid))" }
            }
            Sys.close(fd)
            if e == EWOULDBLOCK {
                throw CourierError(
                    .locked, "another courier-stage run holds \(path)\(holder); this run exits without doing anything")
            }
            throw CourierError.io("flock", path: path, errno: Errno(rawValue: e))
        }
        _ = ftruncate(fd, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    deinit {
        _ = ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        Sys.close(fd)
    }
}
