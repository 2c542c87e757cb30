/// Whether a client accepts a package: the one rule that `courier-inboxd` applies to what lands in
/// its inbox and that `courier-deliver select`, `push` and the pull copier (through
/// `Planner.decide`) apply before they send anything. Pure: facts in, verdict out, no I/O — so
/// the two sides cannot drift apart, and a table test covers both (docs/INBOXD.md,
/// "The acceptance rule").
///
/// The order of the rules is the order of the table: duplicate, pin, rollback, refused before,
/// base of a delta.
public enum Acceptance {
    /// What the package says about itself (its signed manifest on the client; the outbox's
    /// layout on the sender).
    public struct Package: Sendable, Equatable {
        public var type: String
        public var revision: UInt64
        /// The base revision of a delta; nil for a full package.
        public var base: UInt64?
        public init(type: String, revision: UInt64, base: UInt64? = nil) {
            self.type = type
            self.revision = revision
            self.base = base
        }
        public var isDelta: Bool { base != nil }
    }

    /// What the client holds and has said, for the package's type.
    public struct Client: Sendable, Equatable {
        public var installed: UInt64?
        public var pinned: UInt64?
        /// Revisions this client refused for reasons about the revision itself (`counts`).
        public var refused: [ClientStatus.Refused]
        /// A delta whose base is not installed has waited `delta_wait` already (client side).
        public var baseWaitOver: Bool
        /// Ignore `refused`: the sender's `--force`; on the client, a refused revision that
        /// arrives again (see `InboxProcessor.decide`).
        public var force: Bool
        public init(
            installed: UInt64?, pinned: UInt64? = nil, refused: [ClientStatus.Refused] = [],
            baseWaitOver: Bool = false, force: Bool = false
        ) {
            self.installed = installed
            self.pinned = pinned
            self.refused = refused
            self.baseWaitOver = baseWaitOver
            self.force = force
        }
        /// The sender's facts: what a client's `status.json` gives for one type (nil: the
        /// client has no row).
        public init(_ s: ClientStatus.TypeStatus?, force: Bool = false) {
            self.init(installed: s?.installed, pinned: s?.pinned, refused: s?.refused ?? [], force: force)
        }
        /// The client's own facts, as courier-inboxd takes them: its status row, the revision
        /// `current` names, whether a waiting delta's time is up. A revision in the `refused`
        /// list is tried again (`force`): senders skip it, so a copy that arrives anyway was
        /// sent on purpose — `--force` after the test command was fixed, or moved back from the
        /// quarantine by an operator. Dropping it silently would leave that fix untried; if it
        /// fails again, it is refused again (and the quarantine is bounded).
        public static func onClient(_ s: ClientStatus.TypeStatus?, installed: UInt64?, baseWaitOver: Bool) -> Client {
            Client(
                installed: installed, pinned: s?.pinned, refused: s?.refused ?? [], baseWaitOver: baseWaitOver,
                force: true)
        }
    }

    /// Why a package is refused, as a stable word. The client quarantines every one of them
    /// with `CourierError.Code.rollback` except `refused` (see `InboxProcessor.decide`); the
    /// sender reports the word as its decision's code.
    public enum Rule: String, Sendable, Equatable, CaseIterable {
        /// The client is pinned to another revision.
        case pinned
        /// Older than the installed revision, and not pinned there: a rollback.
        case held
        /// The client refused this revision before (test command, apply command, tree check).
        case refused
        /// A delta whose base is older than the installed revision, or that waited too long.
        case baseMissing = "base-missing"
    }

    public enum Verdict: Sendable, Equatable {
        case accept
        /// The installed revision again: nothing to do (the client deletes the copy).
        case duplicate
        case refuse(Rule, String)
        /// A delta whose base may still come: the client keeps it in the inbox for `delta_wait`.
        case wait(String)
    }

    public static func decide(_ p: Package, _ c: Client) -> Verdict {
        let t = p.type
        let rev = p.revision
        if rev == c.installed { return .duplicate }
        if let pin = c.pinned, rev != pin {
            return .refuse(
                .pinned,
                "\(t) is pinned to revision \(pin); revision \(rev) refused (courier-inboxd unpin --type \(t) to accept it)"
            )
        }
        if let inst = c.installed, rev < inst, c.pinned != rev {
            return .refuse(
                .held, "revision \(rev) is not newer than the installed \(inst): rollback refused (pin it to allow)")
        }
        if !c.force, let r = c.refused.last(where: { $0.revision == rev }) {
            return .refuse(
                .refused,
                "the client refused \(t) \(rev) at \(r.at) (\(r.code): \(Escape.text(r.reason))); --force sends it again"
            )
        }
        if let base = p.base, base != c.installed {
            if let inst = c.installed, base < inst {
                return .refuse(
                    .baseMissing, "base revision \(base) not installed (installed: \(inst)); send the full package")
            }
            if c.baseWaitOver {
                return .refuse(
                    .baseMissing,
                    "base revision \(base) not installed (installed: \(c.installed.map(String.init) ?? "none"))")
            }
            return .wait("base revision \(base) not installed yet")
        }
        return .accept
    }

    /// Whether a refusal with `code` is about the revision itself, so that senders should not
    /// send it again (recorded in `status.json` under `refused`). Only after the signature
    /// verified, so the revision is the signed one (anyone who can write to the inbox can name a
    /// file after any revision; a file that fails verification says nothing about a revision).
    /// - `apply-failed` (test command failed, apply command failed and switched back): the
    ///   content is wrong for this machine, whichever package carried it.
    /// - `integrity`, `unsafe-entry`, `limit` of a **full** package: the signed tree itself does not
    ///   pass the checks or this client's limits. Of a delta they are not counted: the trouble
    ///   may be the client's base or the patch's memory window, and the full package of the same
    ///   revision may well apply (push sends it: `delta-refused`).
    /// Not counted: `base-mismatch` (the client's base drifted), `rollback` (decided by this rule
    /// again each time), `expired` (the clock's or the package's age, not the content's),
    /// `malformed`, `signature`, `revoked-key` (no trusted revision), `wrong-type` (the config),
    /// `io` and other transient errors (the machine's, retried).
    public static func counts(_ code: CourierError.Code, delta: Bool) -> Bool {
        switch code {
        case .applyFailed: return true
        case .integrity, .unsafeEntry, .limit: return !delta
        default: return false
        }
    }

    /// How many refused revisions a type keeps in `status.json`: the newest, so a status file
    /// stays small however many revisions fail.
    public static let refusedKept = 16

    /// The refused list after `r` is recorded: one entry per revision (the newest wins), oldest
    /// dropped past `refusedKept`.
    public static func recording(_ r: ClientStatus.Refused, in list: [ClientStatus.Refused]) -> [ClientStatus.Refused] {
        var l = list.filter { $0.revision != r.revision }
        l.append(r)
        l.sort { $0.revision < $1.revision }
        return Array(l.suffix(refusedKept))
    }

    /// The refused list after `revision` is applied: refusals of it and of older revisions are
    /// cleared (a newer good revision supersedes them; a forced one that now applied is fine).
    public static func clearing(upTo revision: UInt64, in list: [ClientStatus.Refused]) -> [ClientStatus.Refused] {
        list.filter { $0.revision > revision }
    }
}
