import CCourierShim
@preconcurrency import Glibc
import SystemPackage

/// Process, thread and terminal facts, and signals, behind `Sys` like every other call
/// (scripts/check/libc-door.sh keeps it so). These cannot fail, or fail in one way a caller acts
/// on, so most return a plain value.
extension Sys {
    /// This process's id (`getpid`): temporary names, log lines, lock files.
    public static func processID() -> pid_t { Glibc.getpid() }

    /// The calling thread's kernel id (`gettid`, through the C shim: Swift's Glibc module does
    /// not import it); `/proc/self/task/<tid>` names the thread.
    public static func threadID() -> pid_t { courier_gettid() }

    public static func userID() -> uid_t { Glibc.getuid() }
    public static func effectiveUserID() -> uid_t { Glibc.geteuid() }
    public static func groupID() -> gid_t { Glibc.getgid() }

    /// A pipe whose ends are close-on-exec from birth (`pipe2(O_CLOEXEC)` through the C shim).
    /// Never `pipe` + `fcntl(FD_CLOEXEC)`: between the two, a child that another thread spawns
    /// (a hook, a test command, gpgv) inherits the ends, holds the write end open and so keeps
    /// the reader of this pipe from ever seeing end of file.
    public static func pipe(display: String) throws -> PipeEnds {
        var fds: [Int32] = [-1, -1]
        let (_, e) = retrying { courier_pipe_cloexec(&fds) }
        if let e { throw CourierError.io("pipe", path: display, errno: e) }
        return PipeEnds(read: OwnedFD(adopting: fds[0]), write: OwnedFD(adopting: fds[1]))
    }

    /// Whether `fd` is a terminal (`isatty`): decides colours, progress and how chatty stderr is.
    public static func isTerminal(_ fd: Int32) -> Bool { Glibc.isatty(fd) == 1 }

    /// Sends `signal` to `pid` (a negative pid: its process group). Returns the errno on failure
    /// (ESRCH: no such process, EPERM: not ours), nil when it was sent.
    @discardableResult
    public static func signal(_ pid: pid_t, _ signal: Int32) -> Errno? {
        Glibc.kill(pid, signal) == 0 ? nil : Errno(rawValue: errno)
    }

    /// Whether a process with this pid exists (`kill(pid, 0)`): false only on ESRCH, so a live
    /// process of another user (EPERM) counts as existing.
    public static func processExists(_ pid: pid_t) -> Bool {
        signal(pid, 0) != .noSuchProcess
    }

    /// Blocks `signals` in the calling thread (`pthread_sigmask(SIG_BLOCK)`); threads started
    /// afterwards inherit the mask.
    public static func blockSignals(_ signals: [Int32]) throws {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        let rc = pthread_sigmask(SIG_BLOCK, &set, nil)
        if rc != 0 {
            throw CourierError(
                .io, "cannot block signals \(signals.map(String.init).joined(separator: ",")): \(Errno(rawValue: rc))",
                cause: Errno(rawValue: rc))
        }
    }

    /// The soft and hard limits on open files (`getrlimit(RLIMIT_NOFILE)`), nil if unreadable.
    public static func openFilesLimit() -> (soft: UInt64, hard: UInt64)? {
        var rl = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 else { return nil }
        return (UInt64(rl.rlim_cur), UInt64(rl.rlim_max))
    }
}

/// The two ends of a pipe (or of a socket pair used as one), each with its own owner. A struct
/// because Swift 6.3 refuses tuples of non-copyable values. Take an end with `let w = ends.write`
/// (the other end keeps living in `ends`) to close one before the other, as a reader must close
/// its copy of the write end or never see end of file. `@frozen` so that other modules may take
/// the ends apart too (Swift allows partial consumption only of a type whose layout is fixed).
@frozen
public struct PipeEnds: ~Copyable {
    public var read: OwnedFD
    public var write: OwnedFD

    public init(read: consuming OwnedFD, write: consuming OwnedFD) {
        self.read = read
        self.write = write
    }
}
