import CourierCore

/// One run at a time per state directory: two pulls (a timer and an operator) would write the
/// same `.part` file. A `FileLock` on `<state>/lock`, held for the run, released by the kernel
/// when the process dies.
final class RunLock {
    private let lock: FileLock

    init(_ dir: String, program: String) throws {
        try Sys.mkdirs(dir)
        let path = dir + "/lock"
        // Held by another: `.locked`. Another flock failure (ENOLCK on some network file
        // systems) is an `.io` error naming the call, as for courier-stage.
        guard let lock = try FileLock.tryAcquire(path) else {
            throw CourierError(.locked, "\(path): another \(program) run holds the lock")
        }
        self.lock = lock
    }
}
