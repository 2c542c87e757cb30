@preconcurrency import Glibc

/// Named points in the publish path (stager) and the apply path (client) where a test can make
/// the process die, to prove that a crash at that moment leaves the outbox or the store consistent. Armed only by the environment variable
/// `COURIER_FAULT=<point>` (tests set it on the child process); costs a string compare otherwise.
public struct FaultPoints: Sendable {
    public let armed: String?
    public static let none = FaultPoints(armed: nil)

    public init(armed: String?) { self.armed = armed }

    public static func fromEnvironment() -> FaultPoints {
        FaultPoints(armed: getenv("COURIER_FAULT").map { String(cString: $0) })
    }

    /// At the armed point the process is killed with SIGKILL: no cleanup, no atexit, as a power cut.
    public func hit(_ point: String) throws {
        if armed == point { kill(getpid(), SIGKILL) }
    }
}
