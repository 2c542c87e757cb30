import CourierCore
import FoundationEssentials

/// The `--json` lines of `courier-deliver verify`, `push` and `select`: one object per package,
/// per inbox and type, per type. Written by `ReportJSON.line` like every other `--json` report
/// (keys sorted, `/` unescaped, controls and DEL escaped: paths, reasons and errors come from
/// outboxes and status files other people write, and these lines reach terminals). Kept here, not
/// in DeliverCLI, so that `DeliverTests` can pin the exact lines.
public enum DeliverJSON {
    /// `verify --json`, a package that verified. `base` is `null` for a full package, as it has
    /// always been written.
    public static func verified(path: String, manifest m: Manifest, signers: [String]) -> String {
        ReportJSON.line(
            VerifiedLine(
                path: path, type: m.type, revision: m.revision, kind: m.kind.rawValue, base: m.base,
                signers: signers, files: m.resultFileCount, payloadBytes: m.payloadBytes, expires: m.expires))
    }

    /// `verify --json`, a package that did not: the error's stable code name and its sentence.
    public static func verifyFailed(path: String, error: CourierError) -> String {
        ReportJSON.line(FailedLine(path: path, code: error.code.name, error: error.description))
    }

    /// `push --json`, one outcome. Left out when absent: `group`, the decision's keys (an inbox
    /// that failed before any decision), `revision`, `package`, `base`, `bytes` when 0, `how`,
    /// `error`, and `cleaned` when empty.
    public static func push(_ o: Pusher.Outcome) -> String { ReportJSON.line(PushLine(o: o)) }

    /// `select --json`, one decision. A package that failed its verification (`problem`, with
    /// `--trust`) is reported as `action` `error`, `code` `verify`, the problem as `reason`, and no
    /// `path`. `revision` and `base` are left out when absent.
    public static func select(_ d: Decision, problem: String?) -> String {
        ReportJSON.line(SelectLine(d: d, problem: problem))
    }
}

private struct VerifiedLine: Encodable {
    var path: String
    var ok = true
    var type: String
    var revision: UInt64
    var kind: String
    var base: UInt64?
    var signers: [String]
    var files: Int
    var payloadBytes: UInt64
    var expires: String

    enum CodingKeys: String, CodingKey {
        case path, ok, type, revision, kind, base, signers, files, payloadBytes, expires
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(path, forKey: .path)
        try c.encode(ok, forKey: .ok)
        try c.encode(type, forKey: .type)
        try c.encode(revision, forKey: .revision)
        try c.encode(kind, forKey: .kind)
        // `null`, not left out: the one key of these lines that always was.
        if let b = base { try c.encode(b, forKey: .base) } else { try c.encodeNil(forKey: .base) }
        try c.encode(signers, forKey: .signers)
        try c.encode(files, forKey: .files)
        try c.encode(payloadBytes, forKey: .payloadBytes)
        try c.encode(expires, forKey: .expires)
    }
}

private struct FailedLine: Encodable {
    var path: String
    var ok = false
    var code: String
    var error: String
}

private struct PushLine: Encodable {
    var o: Pusher.Outcome

    enum CodingKeys: String, CodingKey {
        case inbox, result, group, type, revision, action, code, reason, package, base, bytes, how, error, cleaned
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(o.inbox, forKey: .inbox)
        try c.encode(o.state.rawValue, forKey: .result)
        try c.encodeIfPresent(o.group, forKey: .group)
        if let d = o.decision {
            try c.encode(d.type, forKey: .type)
            try c.encodeIfPresent(d.revision, forKey: .revision)
            try c.encode(d.action.rawValue, forKey: .action)
            try c.encode(d.code, forKey: .code)
            try c.encode(d.reason, forKey: .reason)
            try c.encodeIfPresent(d.package, forKey: .package)
            try c.encodeIfPresent(d.base, forKey: .base)
        }
        if o.bytes > 0 { try c.encode(o.bytes, forKey: .bytes) }
        try c.encodeIfPresent(o.how, forKey: .how)
        try c.encodeIfPresent(o.error, forKey: .error)
        if !o.cleaned.isEmpty { try c.encode(o.cleaned, forKey: .cleaned) }
    }
}

private struct SelectLine: Encodable {
    var d: Decision
    var problem: String?

    enum CodingKeys: String, CodingKey { case type, action, code, reason, revision, path, base }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(d.type, forKey: .type)
        try c.encode(problem == nil ? d.action.rawValue : "error", forKey: .action)
        try c.encode(problem == nil ? d.code : "verify", forKey: .code)
        try c.encode(problem ?? d.reason, forKey: .reason)
        try c.encodeIfPresent(d.revision, forKey: .revision)
        if problem == nil { try c.encodeIfPresent(d.package, forKey: .path) }
        try c.encodeIfPresent(d.base, forKey: .base)
    }
}
