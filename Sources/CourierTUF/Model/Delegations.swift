import CourierCore
import Crypto

/// A delegation to a named role (python-tuf `DelegatedRole`).
public struct DelegatedRole: Sendable, Equatable {
    public let name: String
    public let keys: RoleKeys
    public var keyids: [String] { keys.keyids }
    public var threshold: Int64 { keys.threshold }
    public let terminating: Bool
    /// Exactly one of `paths` and `pathHashPrefixes` is set.
    public let paths: [String]?
    public let pathHashPrefixes: [String]?

    init(_ j: JSONValue) throws {
        guard case .object = j else { throw CourierError(.malformed, "delegated role: not an object") }
        let n = try j.req("name", in: "delegated role").string(in: "delegated role", "name")
        let what = "delegated role \(Escape.quoted(n))"
        name = n
        keys = try RoleKeys(j, what: what)
        guard let t = j[field: "terminating"]?.boolValue else {
            throw CourierError(.malformed, "\(what): terminating must be a boolean")
        }
        terminating = t
        let p = j[field: "paths"].flatMap { $0 == .null ? nil : $0 }
        let h = j[field: "path_hash_prefixes"].flatMap { $0 == .null ? nil : $0 }
        guard (p == nil) != (h == nil) else {
            throw CourierError(.malformed, "\(what): only one of (paths, path_hash_prefixes) must be set")
        }
        paths = try p.map { try $0.stringArray(in: what, "paths") }
        pathHashPrefixes = try h.map { try $0.stringArray(in: what, "path_hash_prefixes") }
    }
}

/// TAP 15 hash-bin delegation (python-tuf `SuccinctRoles`): 2^bitLength terminating bins.
public struct SuccinctRoles: Sendable, Equatable {
    public let keys: RoleKeys
    public var keyids: [String] { keys.keyids }
    public var threshold: Int64 { keys.threshold }
    public let bitLength: Int
    public let namePrefix: String

    init(_ j: JSONValue) throws {
        let what = "succinct_roles"
        guard case .object = j else { throw CourierError(.malformed, "\(what): not an object") }
        keys = try RoleKeys(j, what: what)
        let b = try j.req("bit_length", in: what).int(in: what, "bit_length")
        guard b > 0, b <= 32 else {
            throw CourierError(.malformed, "\(what): bit_length must be between 1 and 32, got \(b)")
        }
        bitLength = Int(b)
        namePrefix = try j.req("name_prefix", in: what).string(in: what, "name_prefix")
    }

    public var numberOfBins: Int64 { Int64(1) << Int64(bitLength) }
    /// Hex digits of the largest bin number.
    public var suffixLength: Int { String(numberOfBins - 1, radix: 16).count }

    /// The bin for `path`: the first `bitLength` bits of SHA-256(path) as zero-padded hex.
    public func roleForTarget(_ path: String) -> String {
        let d = Array(SHA256.hash(data: Array(path.utf8)))
        let first = UInt32(d[0]) << 24 | UInt32(d[1]) << 16 | UInt32(d[2]) << 8 | UInt32(d[3])
        let bin = UInt64(first) >> UInt64(32 - bitLength)
        return binName(Int64(bin))
    }

    func binName(_ n: Int64) -> String {
        let h = String(n, radix: 16)
        return namePrefix + "-" + String(repeating: "0", count: max(0, suffixLength - h.count)) + h
    }

    /// python-tuf `is_delegated_role`: prefix + "-" + exactly suffixLength hex digits < bins.
    public func isDelegatedRole(_ name: String) -> Bool {
        let pre = Array((namePrefix + "-").utf8)
        let n = Array(name.utf8)
        guard n.count == pre.count + suffixLength, n.starts(with: pre) else { return false }
        // Python's int(x, 16) also takes "0x" prefixes, "_" separators and surrounding
        // whitespace; bin names never contain them, and such names are not this set's bins.
        let suffix = n[pre.count...]
        let isHexDigit = { (c: UInt8) in
            (0x30...0x39).contains(c) || (0x61...0x66).contains(c) || (0x41...0x46).contains(c)
        }
        guard suffix.allSatisfy(isHexDigit), let v = Int64(String(decoding: suffix, as: UTF8.self), radix: 16) else {
            return false
        }
        return v >= 0 && v < numberOfBins
    }
}

/// A targets role's `delegations` (python-tuf `Delegations`).
public struct Delegations: Sendable, Equatable {
    public let keys: [String: TUFKey]
    /// In listed order: the order is the search order.
    public let roles: [DelegatedRole]?
    public let succinctRoles: SuccinctRoles?

    init(_ j: JSONValue) throws {
        guard case .object = j else { throw CourierError(.malformed, "delegations: not an object") }
        keys = try parseKeys(j.req("keys", in: "delegations"), what: "delegations")
        let r = j[field: "roles"].flatMap { $0 == .null ? nil : $0 }
        let s = j[field: "succinct_roles"].flatMap { $0 == .null ? nil : $0 }
        guard (r == nil) != (s == nil) else {
            throw CourierError(.malformed, "delegations: one of roles and succinct_roles must be set")
        }
        if let r {
            guard let a = r.arrayValue else { throw CourierError(.malformed, "delegations: roles is not a list") }
            var out: [DelegatedRole] = []
            var seen = Set<[UInt8]>()
            for e in a {
                let d = try DelegatedRole(e)
                guard seen.insert(Array(d.name.utf8)).inserted else {
                    throw CourierError(.malformed, "delegations: duplicate role \(Escape.quoted(d.name))")
                }
                guard !d.name.isEmpty, !Root.topLevelRoles.contains(where: { $0.utf8.elementsEqual(d.name.utf8) })
                else {
                    throw CourierError(
                        .malformed,
                        "delegations: delegated roles cannot be empty or use top-level role names (\(Escape.quoted(d.name)))"
                    )
                }
                out.append(d)
            }
            roles = out
            succinctRoles = nil
        } else {
            roles = nil
            succinctRoles = try SuccinctRoles(s!)
        }
    }

    /// python-tuf `get_roles_for_target`: (role name, terminating) of every delegation that is
    /// trusted for `path`, in listed order; the succinct bin counts as terminating (TAP 15).
    public func rolesForTarget(_ path: String) -> [(name: String, terminating: Bool)] {
        if let roles {
            return roles.filter { PathMatch.isDelegatedPath(path, role: $0) }.map { ($0.name, $0.terminating) }
        }
        if let succinctRoles { return [(succinctRoles.roleForTarget(path), true)] }
        return []
    }

    /// The keys/threshold that `name` must be signed with, if this delegates to it.
    public func role(named name: String) -> RoleKeys? {
        if let roles { return roles.first { $0.name.utf8.elementsEqual(name.utf8) }?.keys }
        if let succinctRoles, succinctRoles.isDelegatedRole(name) { return succinctRoles.keys }
        return nil
    }
}
