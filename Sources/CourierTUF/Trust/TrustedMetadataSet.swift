import CourierCore

extension CourierError.Code {
    /// The new timestamp has the same version as the trusted one: nothing changed. python-tuf's
    /// `EqualVersionNumberError`; the updater keeps the old timestamp and carries on quietly.
    public static let tufEqualVersion = CourierError.Code("tuf-equal-version")
    /// A TrustedMetadataSet method was called out of the client workflow's order (root after
    /// timestamp, snapshot before timestamp, a delegated role before its delegator). python-tuf's
    /// `RuntimeError`: a bug in the caller, not in the repository.
    public static let tufOrder = CourierError.Code("tuf-order")
}

/// The trusted metadata of one TUF client refresh: a pure state machine, no I/O, after
/// python-tuf 7.0.1's `ngclient/_internal/trusted_metadata_set.py` — the same accept/refuse
/// decisions in the same order, because interop tests compare this client with python-tuf's.
///
/// The updater drives it in the specification's order (§5.3–§5.6):
/// 1. `init(rootBytes:)` with the locally trusted root (verified by itself; expiry not checked);
/// 2. `updateRoot` for version N+1, N+2, … until the repository has no next version;
/// 3. `updateTimestamp` (local copy first, then remote; `.tufEqualVersion` means "keep the old");
///    this also checks that the final root is not expired;
/// 4. `updateSnapshot` (local copy with `trusted: true`, else remote);
/// 5. `updateTargets`, then delegated roles through ``TargetSearch/findTarget``.
///
/// Intermediate metadata: as in python-tuf, an expired timestamp or snapshot (or a snapshot whose
/// version differs from timestamp's meta) *is stored* and the error thrown afterwards, so that a
/// local copy still serves as the rollback baseline for the remote one. Swift writes a `mutating`
/// method's changes back even when it throws, so the caller sees that state.
///
/// Key rotation of timestamp/snapshot: python-tuf 7 deletes nothing. After a root rotation a
/// local timestamp (or snapshot) signed by the old keys fails verification when loaded, the
/// updater ignores that failure (as it ignores any error of a *local* copy) and the remote file is
/// then loaded with no rollback baseline: that is the spec's fast-forward recovery (§5.3.11). The
/// updater must therefore treat every error of a local timestamp/snapshot/targets load as "no
/// local copy" and go on to the remote one — and only persist what this set accepted.
public struct TrustedMetadataSet: Sendable {
    /// One fixed time (seconds since the epoch) for every expiry check of this refresh.
    public let referenceTime: Int64
    public private(set) var root: SignedMetadata<Root>
    public private(set) var timestamp: SignedMetadata<Timestamp>?
    public private(set) var snapshot: SignedMetadata<Snapshot>?
    /// The top-level targets.
    public private(set) var targets: SignedMetadata<Targets>?
    /// Delegated targets roles by exact name bytes (Swift `String ==` would merge names that are
    /// canonically equivalent Unicode but different bytes; python-tuf keeps them apart).
    private var delegatedStore: [RoleName: SignedMetadata<Targets>] = [:]
    /// (delegator, role) pairs verified so far: python-tuf's `_trusted_delegations`.
    private var trustedDelegations: Set<[RoleName]> = []

    /// Delegated targets roles by role name.
    public var delegated: [String: SignedMetadata<Targets>] {
        var out: [String: SignedMetadata<Targets>] = [:]
        for (k, v) in delegatedStore { out[k.name] = v }
        return out
    }

    /// Metadata parse bounds (maximum bytes and nesting).
    public var limits: JSONValue.Limits

    /// Loads the locally trusted root, verified with its own keys and threshold. Expiry is not
    /// checked here (python-tuf: only the final root's, in `updateTimestamp`). `limits` bound every
    /// metadata file's parse (the updater's `UpdaterConfig.parseLimits`; no default).
    public init(rootBytes: [UInt8], referenceTime: Int64, limits: JSONValue.Limits) throws {
        let r = try SignedMetadata<Root>(bytes: rootBytes, limits: limits)
        try Self.verifyDelegate(r.signed.roles["root"], keys: r.signed.keys, role: "root", r, by: "root")
        self.root = r
        self.referenceTime = referenceTime
        self.limits = limits
        trustedDelegations.insert([RoleName("root"), RoleName("root")])
    }

    /// Whether `role` is loaded and was verified against `delegator` (python-tuf `contains`).
    public func contains(role: String, delegator: String) -> Bool {
        trustedDelegations.contains([RoleName(delegator), RoleName(role)])
    }

    /// The loaded targets role `name`: "targets" is the top-level one, others are delegated.
    public func targetsRole(_ name: String) -> SignedMetadata<Targets>? {
        name.utf8.elementsEqual("targets".utf8) ? targets : delegatedStore[RoleName(name)]
    }

    // MARK: root

    /// Verifies and loads root version N+1: signed by a threshold of the trusted root's root keys
    /// AND of its own; version exactly N+1. An expired intermediate root is fine.
    @discardableResult
    public mutating func updateRoot(_ bytes: [UInt8]) throws -> SignedMetadata<Root> {
        guard timestamp == nil else { throw CourierError(.tufOrder, "cannot update root after timestamp") }
        let new = try SignedMetadata<Root>(bytes: bytes, limits: limits)
        // python-tuf order: old root's signatures first, then the version, then the new root's.
        try Self.verifyDelegate(
            root.signed.roles["root"], keys: root.signed.keys, role: "root", new, by: "root v\(root.signed.version)")
        let expected = root.signed.version + 1
        guard new.signed.version == expected else {
            throw CourierError(
                .rollback, "root: expected root version \(expected) instead got version \(new.signed.version)")
        }
        try Self.verifyDelegate(
            new.signed.roles["root"], keys: new.signed.keys, role: "root", new,
            by: "root v\(new.signed.version) (itself)")
        root = new
        return new
    }

    /// Throws `.expired` if the trusted (final) root is expired at `referenceTime`.
    public func checkRootNotExpired() throws {
        if root.signed.isExpired(at: referenceTime) {
            throw CourierError(
                .expired,
                "final root.json (v\(root.signed.version)) is expired: expires \(TUFTime.format(root.signed.expires)), reference time \(TUFTime.format(referenceTime))"
            )
        }
    }

    // MARK: timestamp

    /// Verifies and loads a timestamp. Refuses a lower version (`.rollback`), an equal one
    /// (`.tufEqualVersion`: keep the old) and a snapshot version lower than the trusted
    /// timestamp's. An expired timestamp is stored (rollback baseline) and then `.expired` thrown.
    @discardableResult
    public mutating func updateTimestamp(_ bytes: [UInt8]) throws -> SignedMetadata<Timestamp> {
        guard snapshot == nil else { throw CourierError(.tufOrder, "cannot update timestamp after snapshot") }
        // §5.3.10: the final root must not be expired.
        try checkRootNotExpired()
        let new = try SignedMetadata<Timestamp>(bytes: bytes, limits: limits)
        try Self.verifyDelegate(
            root.signed.roles["timestamp"], keys: root.signed.keys, role: "timestamp", new, by: "root")
        if let old = timestamp {
            if new.signed.version < old.signed.version {
                throw CourierError(
                    .rollback, "timestamp: new timestamp version \(new.signed.version) must be >= \(old.signed.version)"
                )
            }
            if new.signed.version == old.signed.version {
                throw CourierError(
                    .tufEqualVersion,
                    "timestamp: version \(new.signed.version) is the trusted version: keeping the trusted timestamp")
            }
            let oldSnap = old.signed.snapshotMeta.version
            let newSnap = new.signed.snapshotMeta.version
            if newSnap < oldSnap {
                throw CourierError(
                    .rollback,
                    "timestamp v\(new.signed.version): new snapshot version must be >= \(oldSnap), got version \(newSnap)"
                )
            }
        }
        timestamp = new
        try checkFinalTimestamp()
        return new
    }

    private func checkFinalTimestamp() throws {
        guard let t = timestamp else { throw CourierError(.tufOrder, "no timestamp loaded") }
        if t.signed.isExpired(at: referenceTime) {
            throw CourierError(
                .expired,
                "timestamp.json (v\(t.signed.version)) is expired: expires \(TUFTime.format(t.signed.expires)), reference time \(TUFTime.format(referenceTime))"
            )
        }
    }

    // MARK: snapshot

    /// Verifies and loads a snapshot. Unless `trusted` (a local copy this set accepted before),
    /// its length and hashes must match timestamp's `snapshot.json` meta. No role listed in the
    /// old snapshot may disappear or go down in version. An expired snapshot, or one whose version
    /// is not timestamp's meta version, is stored and then refused (`.expired` / `.rollback`).
    @discardableResult
    public mutating func updateSnapshot(_ bytes: [UInt8], trusted: Bool = false) throws -> SignedMetadata<Snapshot> {
        guard let ts = timestamp else { throw CourierError(.tufOrder, "cannot update snapshot before timestamp") }
        guard targets == nil else { throw CourierError(.tufOrder, "cannot update snapshot after targets") }
        try checkFinalTimestamp()
        if !trusted {
            try ts.signed.snapshotMeta.verifyLengthAndHashes(
                bytes, what: "snapshot.json (timestamp v\(ts.signed.version) meta)")
        }
        let new = try SignedMetadata<Snapshot>(bytes: bytes, limits: limits)
        try Self.verifyDelegate(
            root.signed.roles["snapshot"], keys: root.signed.keys, role: "snapshot", new, by: "root")
        if let old = snapshot {
            // Sorted for a deterministic message; any violation refuses.
            for name in old.signed.meta.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                let oldInfo = old.signed.meta[name]!
                guard let newInfo = new.signed.metaFile(name) else {
                    throw CourierError(
                        .rollback,
                        "snapshot v\(new.signed.version): new snapshot is missing info for \(Escape.quoted(name))")
                }
                if newInfo.version < oldInfo.version {
                    throw CourierError(
                        .rollback,
                        "snapshot v\(new.signed.version): \(Escape.quoted(name)) version \(newInfo.version) is lower than the trusted \(oldInfo.version)"
                    )
                }
            }
        }
        snapshot = new
        try checkFinalSnapshot()
        return new
    }

    /// python-tuf `_check_final_snapshot`: expiry first, then the version against timestamp.
    private func checkFinalSnapshot() throws {
        guard let s = snapshot, let t = timestamp else { throw CourierError(.tufOrder, "no snapshot loaded") }
        if s.signed.isExpired(at: referenceTime) {
            throw CourierError(
                .expired,
                "snapshot.json (v\(s.signed.version)) is expired: expires \(TUFTime.format(s.signed.expires)), reference time \(TUFTime.format(referenceTime))"
            )
        }
        let want = t.signed.snapshotMeta.version
        if s.signed.version != want {
            throw CourierError(
                .rollback,
                "snapshot: expected snapshot version \(want) (timestamp v\(t.signed.version)), got \(s.signed.version)")
        }
    }

    // MARK: targets

    /// Verifies and loads the top-level targets (delegated by root).
    @discardableResult
    public mutating func updateTargets(_ bytes: [UInt8]) throws -> SignedMetadata<Targets> {
        try updateDelegatedTargets(bytes, role: "targets", delegator: "root")
    }

    /// Verifies and loads targets role `role` delegated by `delegator` (which must be loaded):
    /// length/hashes against snapshot's `<role>.json` meta (which must exist), signatures by the
    /// delegator's keys for that role, version equal to the meta's, then not expired.
    @discardableResult
    public mutating func updateDelegatedTargets(_ bytes: [UInt8], role: String, delegator: String) throws
        -> SignedMetadata<Targets>
    {
        guard let snap = snapshot else { throw CourierError(.tufOrder, "cannot load targets before snapshot") }
        try checkFinalSnapshot()
        let roleQ = Escape.quoted(role)
        let delegatorQ = Escape.quoted(delegator)
        let metaName = role + ".json"
        // Find the delegator's keys and threshold for `role`.
        let keys: [String: TUFKey]
        let roleKeys: RoleKeys?
        if delegator.utf8.elementsEqual("root".utf8) {
            keys = root.signed.keys
            roleKeys = exactLookup(root.signed.roles, role)
        } else if let d = targetsRole(delegator) {
            // No delegations at all: "not delegated", after parsing, as python-tuf decides it.
            keys = d.signed.delegations?.keys ?? [:]
            roleKeys = d.signed.delegations?.role(named: role)
        } else {
            throw CourierError(.tufOrder, "cannot load targets \(roleQ) before its delegator \(delegatorQ)")
        }
        guard let meta = snap.signed.metaFile(metaName) else {
            throw CourierError(.signature, "snapshot v\(snap.signed.version) does not contain information for \(roleQ)")
        }
        try meta.verifyLengthAndHashes(
            bytes, what: "\(Escape.quoted(metaName)) (snapshot v\(snap.signed.version) meta)")
        let new = try SignedMetadata<Targets>(bytes: bytes, limits: limits)
        guard let rk = roleKeys else {
            throw CourierError(.signature, "\(roleQ) is not delegated by \(delegatorQ)")
        }
        try Self.verifyDelegate(rk, keys: keys, role: role, new, by: delegator)
        if new.signed.version != meta.version {
            throw CourierError(
                .rollback,
                "\(roleQ): expected v\(meta.version) (snapshot v\(snap.signed.version)), got v\(new.signed.version)")
        }
        if new.signed.isExpired(at: referenceTime) {
            throw CourierError(
                .expired,
                "new \(roleQ) (v\(new.signed.version)) is expired: expires \(TUFTime.format(new.signed.expires)), reference time \(TUFTime.format(referenceTime))"
            )
        }
        if role.utf8.elementsEqual("targets".utf8) {
            targets = new
        } else {
            delegatedStore[RoleName(role)] = new
        }
        trustedDelegations.insert([RoleName(delegator), RoleName(role)])
        return new
    }

    // MARK: signatures

    /// python-tuf `verify_delegate`: count the role's keyids that have a key, a signature, and a
    /// signature that verifies over `signedBytes`; at least `threshold` of them.
    static func verifyDelegate<R>(
        _ role: RoleKeys?, keys: [String: TUFKey], role name: String,
        _ md: SignedMetadata<R>, by delegator: String
    ) throws {
        guard let role else {
            throw CourierError(.signature, "\(Escape.quoted(name)) is not delegated by \(Escape.quoted(delegator))")
        }
        let n = countValidSignatures(role, keys: keys, md)
        guard n >= role.threshold else {
            throw CourierError(
                .signature,
                "\(Escape.quoted(name)) v\(md.signed.version) was signed by \(n)/\(role.threshold) keys of \(Escape.quoted(delegator))"
            )
        }
    }

    /// How many of `role`'s keys validly signed `md`.
    public static func countValidSignatures<R>(_ role: RoleKeys, keys: [String: TUFKey], _ md: SignedMetadata<R>)
        -> Int64
    {
        var n: Int64 = 0
        for keyid in role.keyids {
            guard let key = exactLookup(keys, keyid), let sig = md.signature(by: keyid) else { continue }
            guard let raw = Hex.decode(sig.sig) else { continue }
            if key.verify(signature: raw, message: md.signedBytes) { n += 1 }
        }
        return n
    }
}

/// A role name compared and hashed by its exact UTF-8 bytes.
struct RoleName: Hashable, Sendable {
    let bytes: [UInt8]
    let name: String
    init(_ s: String) {
        name = s
        bytes = Array(s.utf8)
    }
    static func == (a: RoleName, b: RoleName) -> Bool { a.bytes == b.bytes }
    func hash(into h: inout Hasher) { h.combine(bytes) }
}
