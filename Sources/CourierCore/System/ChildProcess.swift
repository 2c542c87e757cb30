import CCourierShim
@preconcurrency import Glibc
import SystemPackage

/// Runs a program to completion, for the daemon's test and apply commands and the stager's
/// `gpgv`: its own process group, killed with it if the calling thread dies
/// (`courier_spawn_begin`: `PR_SET_PDEATHSIG`), recorded by the caller before it runs (`started`), stdin `/dev/null`, stdout and stderr captured together
/// (the last `keepTail` bytes), and a timeout after which the whole group gets SIGTERM, then,
/// five seconds later, SIGKILL.
public enum ChildProcess {
    public struct Outcome: Sendable {
        /// Exit status, or 128 + the signal that ended it.
        public var status: Int32
        public var timedOut: Bool
        public var output: [UInt8]
        public var ok: Bool { status == 0 && !timedOut }
    }

    /// This process's environment, as a dictionary to amend.
    public static func currentEnvironment() -> [String: String] {
        var env: [String: String] = [:]
        var ep = environ
        while let p = ep.pointee {
            let kv = String(cString: p)
            if let eq = kv.firstIndex(of: "=") { env[String(kv[..<eq])] = String(kv[kv.index(after: eq)...]) }
            ep += 1
        }
        return env
    }

    /// `started` gets the child's pid (also its process group) once it runs. A program that
    /// cannot be started (not found, not executable) is an `.io` error with its errno.
    public static func run(
        _ argv: [String], environment env: [String: String], timeout: Double, keepTail: Int = 4096,
        started: (pid_t) -> Void = { _ in }
    ) throws -> Outcome {
        precondition(!argv.isEmpty)
        let pipe = try Sys.pipe(display: argv[0])
        let output = pipe.read
        // The parent's copy of the write end is closed right after the spawn (the child has its
        // own by then): while it is open, the reader below never sees end of file.
        let childWrite = pipe.write
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in cArgs { free(p) }
            for p in cEnv { free(p) }
        }
        var goFD: Int32 = -1
        var reportFD: Int32 = -1
        let pid = courier_spawn_begin(argv[0], cArgs, cEnv, childWrite.raw, &goFD, &reportFD)
        var spawnErrno = errno
        _ = consume childWrite
        // The child waits for the go: `started` (the daemon's record of the process group) comes
        // first, so a kill at any moment leaves no command that ran unrecorded.
        if pid > 0 {
            started(pid)
            if courier_spawn_finish(pid, goFD, reportFD) != 0 { spawnErrno = errno } else { spawnErrno = 0 }
        }
        guard pid > 0, spawnErrno == 0 else {
            throw CourierError(
                .io, "cannot run \(Escape.quoted(argv[0])): \(Errno(rawValue: spawnErrno).description)",
                cause: Errno(rawValue: spawnErrno))
        }

        var tail: [UInt8] = []
        let deadline = Sys.monotonicSeconds() + timeout
        var timedOut = false
        var buf = [UInt8](repeating: 0, count: 4096)
        var pfd = pollfd(fd: output.raw, events: Int16(POLLIN), revents: 0)
        while true {
            let left = deadline - Sys.monotonicSeconds()
            if left <= 0 {
                timedOut = true
                break
            }
            let r = poll(&pfd, 1, Int32(min(left, 1.0) * 1000) + 1)
            if r < 0 {
                if errno == EINTR { continue }
                break
            }
            if r == 0 { continue }
            let n = buf.withUnsafeMutableBytes { Glibc.read(output.raw, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            if n == 0 { break }
            tail.append(contentsOf: buf[0..<n])
            if tail.count > keepTail { tail.removeFirst(tail.count - keepTail) }
        }
        _ = consume output  // closed before the wait, as the child may outlive its output
        if timedOut {
            kill(-pid, SIGTERM)
            for _ in 0..<50 {
                var st: Int32 = 0
                if waitpid(pid, &st, WNOHANG) == pid {
                    return Outcome(status: 128 + SIGTERM, timedOut: true, output: tail)
                }
                usleep(100_000)
            }
            kill(-pid, SIGKILL)
        }
        var st: Int32 = 0
        while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
        let status: Int32 = (st & 0x7f) == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f)
        return Outcome(status: status, timedOut: timedOut, output: tail)
    }
}
