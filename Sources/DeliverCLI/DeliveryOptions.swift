import ArgumentParser
import CourierCLI
import CourierCore
import CourierDeliver

/// Where packages come from and which: shared by `push` and `select`.
struct OutboxOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The outbox courier-stage writes (outbox/<type>/<revision>/…).", valueName: "DIR"))
    var outbox: String
    @Option(
        name: .customLong("type"),
        help: ArgumentHelp(
            "Deliver only this content type (repeatable). Default: every type of the outbox, or of the policy.",
            valueName: "TYPE"))
    var types: [String] = []
    @Option(
        help: ArgumentHelp("Deliver this revision instead of the outbox's latest (with one --type).", valueName: "N"))
    var revision: UInt64?

    func validate() throws {
        if revision != nil && types.count != 1 { throw ValidationError("--revision needs exactly one --type") }
    }

    var spec: RevisionSpec { revision.map { .named($0) } ?? .latest }

    /// Reads the outbox and checks that every `--type` is in it.
    func catalog() throws -> Catalog {
        let c = try Catalog.scan(outbox, only: types.isEmpty ? nil : Set(types))
        for t in types where c.types[t] == nil {
            throw CourierError(
                .usage,
                "\(outbox): has no type \(t) (types: \(try Catalog.scan(outbox).types.keys.sorted().joined(separator: ", ")))"
            )
        }
        return c
    }
}

/// How packages are checked before they are sent.
struct TrustOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The clients' trust: a .pub file or a directory of them (with 'revoked'). Every package is verified with it once, before the first copy.",
            valueName: "PATH"))
    var trust: String
    @Option(help: "Number of distinct trusted keys that must sign.")
    var threshold: Int = 1
    @Option(help: "Tolerated clock difference for expiry and creation times.")
    var clockSkew: String = "5m"

    func validate() throws {
        if threshold < 1 { throw ValidationError("--threshold must be at least 1") }
    }

    /// `limits`: what every package is verified under (push: the loosest of its targets').
    func verifyOptions(limits: Limits) throws -> VerifyOptions {
        var o = VerifyOptions(trust: try TrustStore.load(trust, threshold: threshold), limits: limits)
        o.clockSkew = try parseDuration(clockSkew, option: "--clock-skew")
        return o
    }
}

/// Which inboxes: shared by `push` and `report`.
struct InboxOptions: ParsableArguments {
    @Option(
        name: .customLong("inbox"),
        help: ArgumentHelp("A client inbox directory or a glob of them (repeatable).", valueName: "DIR"))
    var inboxes: [String] = []
    @Option(
        help: ArgumentHelp("A file listing inbox directories or globs, one per line (# comments).", valueName: "FILE"))
    var inboxesFrom: String?
    @Option(
        help: ArgumentHelp(
            "A policy file: groups of inboxes and the revision each type should have there (docs/DELIVER.md).",
            valueName: "FILE"))
    var policy: String?
    @Option(
        help: ArgumentHelp(
            "Where a client's status.json is, {inbox} being its inbox (default: courier-inboxd's).",
            valueName: "TEMPLATE"))
    var statusPath: String?

    var given: Bool { !inboxes.isEmpty || inboxesFrom != nil || policy != nil }

    /// The targets, each with what it wants; `types` empty = every type, at `spec`. `limits`: those
    /// of the clients named by `--inbox` and `--inboxes-from` (a policy gives its groups' own).
    func targets(types: [String], spec: RevisionSpec, limits: Limits) throws -> [Target] {
        var out: [Target] = []
        if let p = policy {
            let pol = try Policy.load(p)
            out += try pol.targets(onlyTypes: types.isEmpty ? nil : Set(types)).map { t in
                var t = t
                if let s = statusPath { t.statusPath = TargetList.statusPath(s, inbox: t.inbox) }
                return t
            }
        }
        var patterns = inboxes
        if let f = inboxesFrom { patterns += try TargetList.readList(f) }
        out += TargetList.targets(
            patterns: patterns, types: types, spec: spec,
            statusTemplate: statusPath ?? TargetList.defaultStatusTemplate, limits: limits)
        return out
    }
}

/// The clients' package limits, for push, select and verify to refuse what the clients would
/// (issue #17.6): the keys of inboxd.toml, spelled as options. A policy file sets them per group.
struct ClientLimitOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The clients' max_tree_bytes (inboxd.toml): the largest uncompressed tree they accept, such as 2G or 500M. Default: courier-inboxd's, 8G.",
            valueName: "SIZE"))
    var maxTreeBytes: String?
    @Option(
        help: ArgumentHelp(
            "The clients' delta_window (inboxd.toml): the most memory one in-file patch may take. Default: courier-inboxd's, 256M.",
            valueName: "SIZE"))
    var deltaWindow: String?

    var given: Bool { maxTreeBytes != nil || deltaWindow != nil }

    func validate() throws { _ = try limits() }

    /// The built-in defaults (courier-inboxd's) with the options given applied.
    func limits() throws -> Limits {
        var l = Limits()
        if let s = maxTreeBytes {
            guard let n = SizeParser.bytes(s) else {
                throw ValidationError("--max-tree-bytes must be a size such as 2G, 500M or a number of bytes")
            }
            l.maxTotalBytes = UInt64(n)
        }
        if let s = deltaWindow {
            guard let n = SizeParser.bytes(s), n >= 1 << 20 else {
                throw ValidationError("--delta-window must be a size of at least 1M, such as 256M")
            }
            l.maxDeltaWindow = UInt64(n)
        }
        return l
    }
}
