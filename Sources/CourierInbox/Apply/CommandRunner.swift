import CourierCore
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Runs a type's test or apply command: its own process group, the `COURIER_*` variables in its
/// environment, stdout and stderr captured (the last 4 KiB, for the reason in quarantine and
/// logs), and a timeout after which the whole group gets SIGTERM, then SIGKILL.
public enum CommandRunner {
    public struct Outcome: Sendable {
        public var status: Int32          // exit status, or 128+signal
        public var timedOut: Bool
        public var output: String         // tail of stdout+stderr
        public var ok: Bool { status == 0 && !timedOut }
    }

    public static func run(_ command: InboxConfig.Command, environment extra: [String: String], timeout: Int64) throws -> Outcome {
        let argv: [String]
        switch command {
        case .argv(let a):
            // No shell in the argv form, so `$COURIER_*` in arguments are substituted here.
            argv = a.map { arg in
                var s = arg
                for (k, v) in extra.sorted(by: { $0.key.count > $1.key.count }) {
                    s = s.replacingAll("${\(k)}", with: v).replacingAll("$\(k)", with: v)
                }
                return s
            }
        case .shell(let s): argv = ["/bin/sh", "-c", s]
        }
        var env: [String: String] = [:]
        var ep = environ
        while let p = ep.pointee {
            let kv = String(cString: p)
            if let eq = kv.firstIndex(of: "=") { env[String(kv[..<eq])] = String(kv[kv.index(after: eq)...]) }
            ep += 1
        }
        for (k, v) in extra { env[k] = v }

        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw CourierError.io("pipe", path: argv[0], errno: Errno(rawValue: errno)) }
        // Close-on-exec, so no other child inherits the pipe and holds it open past our child.
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attr, 0)
        var empty = sigset_t(); sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var all = sigset_t(); sigfillset(&all)
        posix_spawnattr_setsigdefault(&attr, &all)

        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cArgs.forEach { free($0) }; cEnv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, &attr, cArgs, cEnv)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw CourierError(.applyFailed, "cannot run '\(argv[0])': \(Errno(rawValue: rc).description)")
        }

        var tail: [UInt8] = []
        let deadline = Sys.monotonicSeconds() + Double(timeout)
        var timedOut = false
        var buf = [UInt8](repeating: 0, count: 4096)
        var pfd = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        while true {
            let left = deadline - Sys.monotonicSeconds()
            if left <= 0 { timedOut = true; break }
            let r = poll(&pfd, 1, Int32(min(left, 1.0) * 1000) + 1)
            if r < 0 { if errno == EINTR { continue }; break }
            if r == 0 { continue }
            let n = buf.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; break }
            if n == 0 { break }
            tail.append(contentsOf: buf[0..<n])
            if tail.count > 4096 { tail.removeFirst(tail.count - 4096) }
        }
        close(fds[0])
        if timedOut {
            kill(-pid, SIGTERM)
            for _ in 0..<50 {
                var st: Int32 = 0
                if waitpid(pid, &st, WNOHANG) == pid { return Outcome(status: 128 + SIGTERM, timedOut: true, output: text(tail)) }
                usleep(100_000)
            }
            kill(-pid, SIGKILL)
        }
        var st: Int32 = 0
        while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
        let status: Int32 = (st & 0x7f) == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f)
        return Outcome(status: status, timedOut: timedOut, output: text(tail))
    }

    static func text(_ b: [UInt8]) -> String {
        String(decoding: b, as: UTF8.self).trimming(" \n\r\t")
    }
}

import SystemPackage

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = self[...]
        while let r = rest.range(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

extension Substring {
    func range(of target: String) -> Range<Index>? {
        let t = Array(target.utf8)
        var i = startIndex
        while i < endIndex {
            if self[i...].utf8.starts(with: t) {
                return i..<self.utf8.index(i, offsetBy: t.count)
            }
            i = index(after: i)
        }
        return nil
    }
}
