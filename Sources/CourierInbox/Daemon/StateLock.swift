import CourierCore

/// Serialises changes to the store and state between the daemon and the commands an operator
/// runs beside it (`rollback`, `pin`, `unpin`): a `FileLock` on `state_dir/lock`, held only while
/// one of them changes something, so a running daemon never blocks the operator for long.
public enum StateLock {
    public static func with<T>(_ stateDir: String, timeout: Double = 600, _ body: () throws -> T) throws -> T {
        try Sys.mkdirs(stateDir)
        let path = stateDir + "/lock"
        guard let lock = try FileLock.acquire(path, timeout: timeout) else {
            throw CourierError(
                .locked, "\(path): held by another courier-inboxd process for more than \(Int(timeout)) s")
        }
        return try withExtendedLifetime(lock) { try body() }
    }
}
