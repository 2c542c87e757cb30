import CourierCore
@preconcurrency import Glibc
import SystemPackage

/// Serialises changes to the store and state between the daemon and the commands an operator
/// runs beside it (`rollback`, `pin`, `unpin`): an `flock` on `state_dir/lock`, held only while
/// one of them changes something, so a running daemon never blocks the operator for long.
public enum StateLock {
    public static func with<T>(_ stateDir: String, timeout: Double = 600, _ body: () throws -> T) throws -> T {
        try Sys.mkdirs(stateDir)
        let path = stateDir + "/lock"
        let fd = try Sys.open(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0o644)
        defer { Sys.close(fd) }
        let deadline = Sys.monotonicSeconds() + timeout
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw CourierError.io("flock", path: path, errno: Errno(rawValue: errno))
            }
            if Sys.monotonicSeconds() > deadline {
                throw CourierError(
                    .locked, "\(path): held by another courier-inboxd process for more than \(Int(timeout)) s")
            }
            usleep(50_000)
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
