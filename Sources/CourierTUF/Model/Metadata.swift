import CourierCore

/// One signature of a metadata file: `{"keyid": …, "sig": <hex>}`.
public struct Signature: Sendable, Equatable {
    public let keyid: String
    /// Hex as written in the file; decoded only when verifying.
    public let sig: String
}

/// The four payload types. `init(signed:)` validates as python-tuf's `from_dict` does.
public protocol TUFRole: Sendable {
    /// `_type` as written in metadata: "root", "timestamp", "snapshot", "targets".
    static var typeName: String { get }
    var common: CommonFields { get }
    init(signed: JSONValue) throws
}

extension TUFRole {
    public var type: String { common.type }
    public var specVersion: String { common.specVersion }
    public var version: Int64 { common.version }
    /// Seconds since the epoch, UTC.
    public var expires: Int64 { common.expires }
    /// python-tuf `is_expired`: expired when `reference_time >= expires`.
    public func isExpired(at referenceTime: Int64) -> Bool { referenceTime >= common.expires }
}

/// The fields every role has (python-tuf `Signed`).
public struct CommonFields: Sendable, Equatable {
    public let type: String
    public let specVersion: String
    public let version: Int64
    public let expires: Int64

    /// python-tuf `_common_fields_from_dict` and `Signed.__init__`.
    init(_ j: JSONValue, expected: String) throws {
        guard case .object = j else { throw CourierError(.malformed, "\(expected): 'signed' is not an object") }
        let t = try j.req("_type", in: expected).string(in: expected, "_type")
        guard t.utf8.elementsEqual(expected.utf8) else {
            throw CourierError(.malformed, "expected type \(Escape.quoted(expected)), got \(Escape.quoted(t))")
        }
        let v = try j.req("version", in: expected).int(in: expected, "version")
        let sv = try j.req("spec_version", in: expected).string(in: expected, "spec_version")
        let ex = try j.req("expires", in: expected).string(in: expected, "expires")
        // spec_version: "X.Y" or "X.Y.Z", ASCII digits, major "1".
        let parts = sv.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3,
            parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { (0x30...0x39).contains($0) } })
        else {
            throw CourierError(.malformed, "\(expected): failed to parse spec_version \(Escape.quoted(sv))")
        }
        guard parts[0] == "1" else {
            throw CourierError(.malformed, "\(expected): unsupported spec_version \(Escape.quoted(sv))")
        }
        guard let e = TUFTime.parse(ex) else {
            throw CourierError(.malformed, "\(expected): bad expires \(Escape.quoted(ex)) (want YYYY-MM-DDTHH:MM:SSZ)")
        }
        guard v > 0 else { throw CourierError(.malformed, "\(expected): version must be > 0, got \(v)") }
        self.type = t
        self.specVersion = sv
        self.version = v
        self.expires = e
    }
}

/// A role's keys and threshold (python-tuf `Role`).
public struct RoleKeys: Sendable, Equatable {
    public let keyids: [String]
    public let threshold: Int64

    init(_ j: JSONValue, what: String) throws {
        guard case .object = j else { throw CourierError(.malformed, "\(what): not an object") }
        keyids = try j.req("keyids", in: what).stringArray(in: what, "keyids")
        threshold = try j.req("threshold", in: what).int(in: what, "threshold")
        var seen = Set<[UInt8]>()
        for k in keyids where !seen.insert(Array(k.utf8)).inserted {
            throw CourierError(.malformed, "\(what): nonunique keyid \(Escape.quoted(k))")
        }
        guard threshold >= 1 else {
            throw CourierError(.malformed, "\(what): threshold should be at least 1, got \(threshold)")
        }
    }
}

/// `root.json`'s payload.
public struct Root: TUFRole, Equatable {
    public static let typeName = "root"
    public static let topLevelRoles = ["root", "timestamp", "snapshot", "targets"]
    public let common: CommonFields
    /// Absent or null in the file → nil (python-tuf keeps None; the updater treats it as false);
    /// otherwise the value's Python truth value.
    public let consistentSnapshot: Bool?
    public let keys: [String: TUFKey]
    /// Exactly the four top-level role names.
    public let roles: [String: RoleKeys]

    public init(signed j: JSONValue) throws {
        common = try CommonFields(j, expected: Self.typeName)
        // python-tuf does not type-check it and the updater tests its truth value; so do we.
        switch j[field: "consistent_snapshot"] {
        case nil, .null?: consistentSnapshot = nil
        case .bool(let b)?: consistentSnapshot = b
        case .int(let v)?: consistentSnapshot = v != 0
        case .string(let v)?: consistentSnapshot = !v.isEmpty
        case .array(let v)?: consistentSnapshot = !v.isEmpty
        case .object(let v)?: consistentSnapshot = !v.isEmpty
        }
        keys = try parseKeys(j.req("keys", in: "root"), what: "root")
        let rj = try j.req("roles", in: "root").object(in: "root", "roles")
        var r: [String: RoleKeys] = [:]
        for (name, v) in rj { r[name] = try RoleKeys(v, what: "root: role \(Escape.quoted(name))") }
        guard r.count == 4, Self.topLevelRoles.allSatisfy({ n in rj.keys.contains { $0.utf8.elementsEqual(n.utf8) } })
        else {
            throw CourierError(
                .malformed, "root: role names must be the top-level roles (root, timestamp, snapshot, targets)")
        }
        roles = r
    }

    public var consistentSnapshotEnabled: Bool { consistentSnapshot ?? false }
}

/// A metadata file's entry in timestamp or snapshot `meta` (python-tuf `MetaFile`).
public struct MetaFile: Sendable, Equatable {
    public let version: Int64
    public let length: Int64?
    public let hashes: [String: String]?

    init(_ j: JSONValue, what: String) throws {
        guard case .object = j else { throw CourierError(.malformed, "\(what): not an object") }
        version = try j.req("version", in: what).int(in: what, "version")
        guard version > 0 else {
            throw CourierError(.malformed, "\(what): metafile version must be > 0, got \(version)")
        }
        if let l = j[field: "length"], l != .null {
            let v = try l.int(in: what, "length")
            guard v >= 0 else { throw CourierError(.malformed, "\(what): length must be >= 0, got \(v)") }
            length = v
        } else {
            length = nil
        }
        if let h = j[field: "hashes"], h != .null {
            hashes = try parseHashes(h, what: what)
        } else {
            hashes = nil
        }
    }

    public init(version: Int64, length: Int64? = nil, hashes: [String: String]? = nil) {
        self.version = version
        self.length = length
        self.hashes = hashes
    }

    /// python-tuf `verify_length_and_hashes`: length first, then every listed hash.
    public func verifyLengthAndHashes(_ data: [UInt8], what: String) throws {
        if let length { try TUFHash.verifyLength(data, length, what: what) }
        if let hashes { try TUFHash.verify(data, hashes, what: what) }
    }
}

/// `timestamp.json`'s payload.
public struct Timestamp: TUFRole, Equatable {
    public static let typeName = "timestamp"
    public let common: CommonFields
    public let snapshotMeta: MetaFile

    public init(signed j: JSONValue) throws {
        common = try CommonFields(j, expected: Self.typeName)
        let meta = try j.req("meta", in: "timestamp")
        guard case .object = meta else { throw CourierError(.malformed, "timestamp: meta is not an object") }
        snapshotMeta = try MetaFile(
            meta.req("snapshot.json", in: "timestamp meta"), what: "timestamp meta 'snapshot.json'")
    }
}

/// `snapshot.json`'s payload.
public struct Snapshot: TUFRole, Equatable {
    public static let typeName = "snapshot"
    public let common: CommonFields
    /// By file name ("targets.json", "<role>.json"). Look up with ``metaFile(_:)`` (exact bytes).
    public let meta: [String: MetaFile]

    public init(signed j: JSONValue) throws {
        common = try CommonFields(j, expected: Self.typeName)
        let m = try j.req("meta", in: "snapshot").object(in: "snapshot", "meta")
        var out: [String: MetaFile] = [:]
        for (k, v) in m { out[k] = try MetaFile(v, what: "snapshot meta \(Escape.quoted(k))") }
        meta = out
    }

    /// The entry whose name has exactly the bytes of `name`.
    public func metaFile(_ name: String) -> MetaFile? { exactLookup(meta, name) }
}

/// A target file's entry (python-tuf `TargetFile`).
public struct TargetFile: Sendable, Equatable {
    public let path: String
    public let length: Int64
    public let hashes: [String: String]
    /// `custom` if present (python-tuf does not interpret it either).
    public let custom: JSONValue?
    /// The whole entry, unknown fields kept.
    public let json: JSONValue

    init(_ j: JSONValue, path: String) throws {
        let what = "target \(Escape.quoted(path))"
        guard case .object = j else { throw CourierError(.malformed, "\(what): not an object") }
        length = try j.req("length", in: what).int(in: what, "length")
        guard length >= 0 else { throw CourierError(.malformed, "\(what): length must be >= 0, got \(length)") }
        hashes = try parseHashes(j.req("hashes", in: what), what: what)
        custom = j[field: "custom"]
        self.path = path
        self.json = j
    }

    /// Checks downloaded target bytes against this entry (length, then every hash).
    public func verifyLengthAndHashes(_ data: [UInt8]) throws {
        let what = "target \(Escape.quoted(path))"
        try TUFHash.verifyLength(data, length, what: what)
        try TUFHash.verify(data, hashes, what: what)
    }
}

/// `targets.json`'s (or a delegated role's) payload.
public struct Targets: TUFRole, Equatable {
    public static let typeName = "targets"
    public let common: CommonFields
    public let targets: [String: TargetFile]
    public let delegations: Delegations?

    public init(signed j: JSONValue) throws {
        common = try CommonFields(j, expected: Self.typeName)
        let t = try j.req("targets", in: "targets").object(in: "targets", "targets")
        if let d = j[field: "delegations"] {
            delegations = try Delegations(d)
        } else {
            delegations = nil
        }
        var out: [String: TargetFile] = [:]
        for (p, v) in t { out[p] = try TargetFile(v, path: p) }
        targets = out
    }

    /// The target whose path has exactly the bytes of `path`.
    public func target(_ path: String) -> TargetFile? { exactLookup(targets, path) }
}

/// A verified-or-not metadata file: the parsed payload, its signatures, the bytes they sign.
public struct SignedMetadata<Role: TUFRole>: Sendable {
    public let signed: Role
    public let signatures: [Signature]
    /// Canonical JSON of `signed`: the bytes the signatures cover.
    public let signedBytes: [UInt8]
    /// The file as read.
    public let raw: [UInt8]

    /// Parses (does not verify) a metadata file of type `Role` (python-tuf `Metadata.from_bytes`
    /// then the `_type` check of `trusted_metadata_set._load_from_metadata`), within `limits` —
    /// required: `TrustedMetadataSet` passes the updater's configured ones.
    public init(bytes: [UInt8], limits: JSONValue.Limits) throws {
        let what = Role.typeName + " metadata"
        let j = try JSONValue.parse(bytes, what: what, limits: limits)
        guard case .object = j else { throw CourierError(.malformed, "\(what): not a JSON object") }
        let s = try j.req("signed", in: what)
        let sigs = try j.req("signatures", in: what)
        guard let t = s[field: "_type"]?.stringValue else {
            throw CourierError(.malformed, "\(what): signed._type missing")
        }
        guard ["root", "timestamp", "snapshot", "targets"].contains(where: { $0.utf8.elementsEqual(t.utf8) }) else {
            throw CourierError(.malformed, "\(what): unrecognized metadata type \(Escape.quoted(t))")
        }
        // python-tuf iterates `signatures`: an empty object iterates as no signatures.
        let empty: [JSONValue]? = sigs.objectValue?.isEmpty == true ? [] : nil
        guard let sa = sigs.arrayValue ?? empty else {
            throw CourierError(.malformed, "\(what): signatures is not a list")
        }
        var out: [Signature] = []
        var seen = Set<[UInt8]>()
        for e in sa {
            guard case .object = e else { throw CourierError(.malformed, "\(what): a signature is not an object") }
            let k = try e.req("keyid", in: what).string(in: what, "keyid")
            let g = try e.req("sig", in: what).string(in: what, "sig")
            guard seen.insert(Array(k.utf8)).inserted else {
                throw CourierError(.malformed, "\(what): multiple signatures found for keyid \(Escape.quoted(k))")
            }
            out.append(Signature(keyid: k, sig: g))
        }
        guard t.utf8.elementsEqual(Role.typeName.utf8) else {
            throw CourierError(.malformed, "expected \(Escape.quoted(Role.typeName)), got \(Escape.quoted(t))")
        }
        self.signed = try Role(signed: s)
        self.signatures = out
        self.signedBytes = Self.pythonSignedForm(s, expires: self.signed.expires).canonicalBytes
        self.raw = bytes
    }

    /// What python-tuf signs and verifies: `encode_canonical(signed.to_dict())`, the payload as
    /// its model writes it back — not the file's `signed` as is. The two differ only on inputs
    /// python-tuf does not write itself, and then a signature must fail or pass here exactly as
    /// it does there: `expires` re-formatted (strptime takes "2030-1-1T0:0:0Z"), optional fields
    /// that are `null` dropped (consistent_snapshot, a meta file's length/hashes, a delegated
    /// role's paths/path_hash_prefixes, delegations' roles/succinct_roles), and timestamp's
    /// `meta` reduced to "snapshot.json". Everything else, unknown fields included, is kept.
    static func pythonSignedForm(_ s: JSONValue, expires: Int64) -> JSONValue {
        guard case .object(var o) = s else { return s }
        func dropNull(_ o: inout [String: JSONValue], _ keys: [String]) {
            for k in keys where o[k] == .null { o.removeValue(forKey: k) }
        }
        func metaFile(_ v: JSONValue) -> JSONValue {
            guard case .object(var m) = v else { return v }
            dropNull(&m, ["length", "hashes"])
            return .object(m)
        }
        o["expires"] = .string(TUFTime.format(expires))
        switch Role.typeName {
        case Root.typeName:
            dropNull(&o, ["consistent_snapshot"])
        case Timestamp.typeName:
            if let sm = o["meta"]?[field: "snapshot.json"] { o["meta"] = .object(["snapshot.json": metaFile(sm)]) }
        case Snapshot.typeName:
            if case .object(let m)? = o["meta"] { o["meta"] = .object(m.mapValues(metaFile)) }
        case Targets.typeName:
            if case .object(var d)? = o["delegations"] {
                dropNull(&d, ["roles", "succinct_roles"])
                if case .array(let roles)? = d["roles"] {
                    d["roles"] = .array(
                        roles.map { r in
                            guard case .object(var ro) = r else { return r }
                            dropNull(&ro, ["paths", "path_hash_prefixes"])
                            return .object(ro)
                        })
                }
                o["delegations"] = .object(d)
            }
        default:
            break
        }
        return .object(o)
    }

    /// The signature by `keyid` (exact bytes), if any.
    public func signature(by keyid: String) -> Signature? {
        signatures.first { $0.keyid.utf8.elementsEqual(keyid.utf8) }
    }
}

// MARK: helpers

func exactLookup<V>(_ d: [String: V], _ k: String) -> V? {
    guard let i = d.index(forKey: k), d[i].key.utf8.elementsEqual(k.utf8) else { return nil }
    return d[i].value
}

func parseKeys(_ j: JSONValue, what: String) throws -> [String: TUFKey] {
    guard let o = j.objectValue else { throw CourierError(.malformed, "\(what): keys is not an object") }
    var out: [String: TUFKey] = [:]
    for (id, k) in o { out[id] = try TUFKey(json: k, keyid: id) }
    return out
}

func parseHashes(_ j: JSONValue, what: String) throws -> [String: String] {
    guard let o = j.objectValue else { throw CourierError(.malformed, "\(what): hashes is not an object") }
    guard !o.isEmpty else { throw CourierError(.malformed, "\(what): hashes must be a non empty dictionary") }
    var out: [String: String] = [:]
    for (k, v) in o {
        guard let s = v.stringValue else { throw CourierError(.malformed, "\(what): hashes items must be strings") }
        out[k] = s
    }
    return out
}

extension JSONValue {
    func req(_ name: String, in what: String) throws -> JSONValue {
        guard let v = self[field: name] else {
            throw CourierError(.malformed, "\(what): missing field \(Escape.quoted(name))")
        }
        return v
    }
    func string(in what: String, _ name: String) throws -> String {
        guard let s = stringValue else { throw CourierError(.malformed, "\(what): \(name) is not a string") }
        return s
    }
    /// An integer field. `true`/`false` count as 1/0: Python's bool is an int, python-tuf does
    /// not tell them apart, and the canonical form keeps `true` (so signatures are unaffected).
    func int(in what: String, _ name: String) throws -> Int64 {
        if case .bool(let b) = self { return b ? 1 : 0 }
        guard let v = intValue else { throw CourierError(.malformed, "\(what): \(name) is not an integer") }
        return v
    }
    func object(in what: String, _ name: String) throws -> [String: JSONValue] {
        guard let v = objectValue else { throw CourierError(.malformed, "\(what): \(name) is not an object") }
        return v
    }
    func stringArray(in what: String, _ name: String) throws -> [String] {
        guard let a = arrayValue else { throw CourierError(.malformed, "\(what): \(name) is not a list") }
        return try a.map { try $0.string(in: what, name) }
    }
}
