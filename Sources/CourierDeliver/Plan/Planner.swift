import CourierCore

/// Which revision a target should hold: the outbox's latest or one named (a pin, a rollback).
public enum RevisionSpec: Sendable, Equatable, CustomStringConvertible {
    case latest
    case named(UInt64)
    public var description: String {
        switch self {
        case .latest: return "latest"
        case .named(let r): return String(r)
        }
    }
}

/// The choice for one client and one type (docs/DELIVER.md, "What goes where").
public struct Decision: Sendable {
    public enum Action: String, Sendable { case full, delta, none, error }
    public var type: String
    /// The revision wanted; nil when it could not be resolved (type not in the outbox).
    public var revision: UInt64?
    public var action: Action
    /// Absolute path of the package in the outbox, for `full` and `delta`.
    public var package: String?
    public var base: UInt64?
    /// A stable word: new-client, no-status, not-installed, delta, no-delta, delta-refused,
    /// up-to-date, waiting, pinned, held, refused, not-in-outbox, unknown-type; and, from
    /// `push --stagger` only, changed (decided again at the slot: another package is needed).
    public var code: String
    /// The sentence, with the values that decided it.
    public var reason: String
}

/// The pure decision: no I/O. `status` is the client's type entry (nil: the client has none),
/// `statusNote` says why there is no status at all (nil: the status file was read),
/// `waiting` the package names now in the client's inbox; `force` sends a revision the client
/// refused before (`--force`). Whether the client would take the revision at all is
/// `Acceptance.decide`, the rule courier-inboxd applies; this adds what only a sender knows
/// (the outbox, the inbox listing, deltas).
public enum Planner {
    public static func decide(
        type: String, want: RevisionSpec, catalog: Catalog,
        status: ClientStatus.TypeStatus?, statusNote: String?,
        waiting: [String], force: Bool = false
    ) -> Decision {
        guard let entry = catalog.types[type] else {
            return Decision(
                type: type, revision: nil, action: .error, code: "unknown-type",
                reason: "the outbox has no published revision of type \(type)")
        }
        let rev: UInt64
        switch want {
        case .latest:
            guard let l = entry.latest else {
                return Decision(
                    type: type, revision: nil, action: .error, code: "not-in-outbox",
                    reason: "the outbox has no published revision of \(type)")
            }
            rev = l
        case .named(let r): rev = r
        }
        func none(_ code: String, _ why: String) -> Decision {
            Decision(type: type, revision: rev, action: .none, code: code, reason: why)
        }
        // What the client will say to this revision (the rule inboxd applies, `Acceptance`). The
        // sender chooses the package itself, and only a delta from the installed revision, so
        // the question is the revision's: asked as for a full package.
        switch Acceptance.decide(.init(type: type, revision: rev), Acceptance.Client(status, force: force)) {
        case .duplicate: return none("up-to-date", "the client has \(type) \(rev) installed")
        case .refuse(.pinned, _):
            return none(
                "pinned",
                "the client is pinned to \(type) \(status?.pinned.map(String.init) ?? "?") and would refuse \(rev)")
        case .refuse(.held, _):
            return none(
                "held",
                "the client holds the newer \(type) \(status?.installed.map(String.init) ?? "?") and refuses a rollback to \(rev) unless pinned there (courier-inboxd pin or rollback)"
            )
        case .refuse(let rule, let why): return none(rule.rawValue, why)
        case .wait(let why): return none("waiting", why)
        case .accept: break
        }
        let installed = status?.installed
        let waitingHere = waiting.filter {
            guard let p = Names.parsePackageFileName($0) else { return false }
            return p.type == type && p.revision == rev
        }
        if let w = waitingHere.first { return none("waiting", "\(w) already waits in the inbox") }
        guard let r = entry.revisions[rev] else {
            return Decision(
                type: type, revision: rev, action: .error, code: "not-in-outbox",
                reason:
                    "\(type) \(rev) is not in the outbox (published: \(entry.revisions.keys.sorted().map(String.init).joined(separator: ", ")))"
            )
        }
        if let i = installed, let d = r.deltas[i] {
            // The client refused this very delta (its base files differ from the ones the delta
            // was built from, or it cannot hold the patch): it gets the full package instead.
            let name = d.split(separator: "/").last.map(String.init) ?? d
            if let e = status?.lastError, e.package == name {
                return Decision(
                    type: type, revision: rev, action: .full, package: r.full, code: "delta-refused",
                    reason: "the client refused \(name) (\(e.code): \(Escape.text(e.reason))); sending the full package"
                )
            }
            return Decision(
                type: type, revision: rev, action: .delta, package: d, base: i, code: "delta",
                reason: "the client has \(i), the base of this delta")
        }
        let (code, why): (String, String)
        if let note = statusNote {
            (code, why) = ("no-status", note)
        } else if let i = installed {
            (code, why) = ("no-delta", "the outbox has no delta from the client's \(i)")
        } else {
            (code, why) = ("not-installed", "the client has no \(type) installed")
        }
        return Decision(type: type, revision: rev, action: .full, package: r.full, code: code, reason: why)
    }
}
