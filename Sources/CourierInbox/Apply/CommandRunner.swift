import CourierCore
@preconcurrency import Glibc
import SystemPackage

/// Runs a type's test or apply command: its own process group, the `COURIER_*` variables in its
/// environment, stdout and stderr captured (the last 4 KiB, for the reason in quarantine and
/// logs), and a timeout after which the whole group gets SIGTERM, then SIGKILL. The command dies
/// with the daemon: its first process by `PR_SET_PDEATHSIG`, the rest of its group at the next
/// start-up through the `record` file (`CommandRecord`).
public enum CommandRunner {
    public struct Outcome: Sendable {
        public var status: Int32  // exit status, or 128+signal
        public var timedOut: Bool
        public var output: String  // tail of stdout+stderr
        public var ok: Bool { status == 0 && !timedOut }
    }

    public static func run(
        _ command: InboxConfig.Command, environment extra: [String: String], timeout: Int64,
        record: String? = nil
    ) throws -> Outcome {
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
        var env = ChildProcess.currentEnvironment()
        for (k, v) in extra { env[k] = v }
        let out: ChildProcess.Outcome
        do {
            out = try ChildProcess.run(
                argv, environment: env, timeout: Double(timeout), keepTail: 4096,
                started: { CommandRecord.write(record, pgid: $0) })
        } catch let e as CourierError {
            CommandRecord.clear(record)
            throw CourierError(.applyFailed, e.message, cause: e.cause)
        }
        CommandRecord.clear(record)
        return Outcome(status: out.status, timedOut: out.timedOut, output: text(out.output))
    }

    static func text(_ b: [UInt8]) -> String {
        String(decoding: b, as: UTF8.self).trimming(" \n\r\t")
    }
}

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
