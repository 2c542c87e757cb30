import CourierCore
@_exported import CourierTestSupport
import Crypto
import Foundation

@testable import CourierTUF

func fixture(_ name: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: TestServers.repoRoot + "/Fixtures/tuf/" + name)))
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// An ed25519 test key: TUF key JSON and signing.
struct TestKey {
    let priv = Curve25519.Signing.PrivateKey()
    var publicHex: String { Hex.encode(priv.publicKey.rawRepresentation) }
    var json: JSONValue {
        .object([
            "keytype": .string("ed25519"), "scheme": .string("ed25519"),
            "keyval": .object(["public": .string(publicHex)]),
        ])
    }
    var keyid: String { try! TUFKey(json: json, keyid: "x").defaultKeyID }
    func sign(_ message: [UInt8]) -> String { Hex.encode(try! priv.signature(for: message)) }
}

/// Time values for tests: the reference time, and an expiry before and after it.
enum T {
    static let now: Int64 = 1_900_000_000
    static let future = "2031-01-01T00:00:00Z"
    static let past = "2020-01-01T00:00:00Z"
}

/// Signs `signed` (canonical JSON) with `keys`; the file itself is written non-canonically
/// (pretty, with a space) on purpose: only the canonical form of `signed` is signed.
func envelope(_ signed: JSONValue, _ keys: [TestKey], extraSigs: [(String, String)] = []) -> [UInt8] {
    let msg = signed.canonicalBytes
    var sigs: [JSONValue] = keys.map { .object(["keyid": .string($0.keyid), "sig": .string($0.sign(msg))]) }
    for (k, s) in extraSigs { sigs.append(.object(["keyid": .string(k), "sig": .string(s)])) }
    let body = JSONValue.object(["signatures": .array(sigs), "signed": signed]).canonicalBytes
    return bytes("{ \"_\": 1, ") + body.dropFirst()
}

func common(_ type: String, _ version: Int64, _ expires: String) -> [String: JSONValue] {
    ["_type": .string(type), "version": .int(version), "spec_version": .string("1.0.31"), "expires": .string(expires)]
}

func roleJSON(_ keys: [TestKey], _ threshold: Int64 = 1) -> JSONValue {
    .object(["keyids": .array(keys.map { .string($0.keyid) }), "threshold": .int(threshold)])
}

/// A test repository: keys per top-level role and builders of each file.
struct Repo {
    var rootKeys = [TestKey()]
    var rootThreshold: Int64 = 1
    var timestampKeys = [TestKey()]
    var snapshotKeys = [TestKey()]
    var targetsKeys = [TestKey()]

    func rootSigned(version: Int64 = 1, expires: String = T.future) -> JSONValue {
        var keys: [String: JSONValue] = [:]
        for k in rootKeys + timestampKeys + snapshotKeys + targetsKeys { keys[k.keyid] = k.json }
        var o = common("root", version, expires)
        o["consistent_snapshot"] = .bool(true)
        o["keys"] = .object(keys)
        o["roles"] = .object([
            "root": roleJSON(rootKeys, rootThreshold), "timestamp": roleJSON(timestampKeys),
            "snapshot": roleJSON(snapshotKeys), "targets": roleJSON(targetsKeys),
        ])
        return .object(o)
    }

    func root(version: Int64 = 1, expires: String = T.future, signers: [TestKey]? = nil) -> [UInt8] {
        envelope(rootSigned(version: version, expires: expires), signers ?? rootKeys)
    }

    func timestamp(
        version: Int64 = 1, snapshotVersion: Int64 = 1, snapshot: [UInt8]? = nil, expires: String = T.future,
        signers: [TestKey]? = nil
    ) -> [UInt8] {
        var meta: [String: JSONValue] = ["version": .int(snapshotVersion)]
        if let snapshot {
            meta["length"] = .int(Int64(snapshot.count))
            meta["hashes"] = .object(["sha256": .string(Hex.encode(SHA256.hash(data: snapshot)))])
        }
        var o = common("timestamp", version, expires)
        o["meta"] = .object(["snapshot.json": .object(meta)])
        return envelope(.object(o), signers ?? timestampKeys)
    }

    /// `meta`: role file name → (version, bytes to hash or nil).
    func snapshot(
        version: Int64 = 1, meta: [String: (Int64, [UInt8]?)] = ["targets.json": (1, nil)], expires: String = T.future
    ) -> [UInt8] {
        var m: [String: JSONValue] = [:]
        for (name, (v, b)) in meta {
            var e: [String: JSONValue] = ["version": .int(v)]
            if let b {
                e["length"] = .int(Int64(b.count))
                e["hashes"] = .object(["sha256": .string(Hex.encode(SHA256.hash(data: b)))])
            }
            m[name] = .object(e)
        }
        var o = common("snapshot", version, expires)
        o["meta"] = .object(m)
        return envelope(.object(o), snapshotKeys)
    }
}

/// A targets payload: `files` path → content; `delegations` as JSON.
func targetsFile(
    version: Int64 = 1, expires: String = T.future, files: [String: [UInt8]] = [:],
    delegations: JSONValue? = nil, signers: [TestKey]
) -> [UInt8] {
    var t: [String: JSONValue] = [:]
    for (p, b) in files {
        t[p] = .object([
            "length": .int(Int64(b.count)), "hashes": .object(["sha256": .string(Hex.encode(SHA256.hash(data: b)))]),
        ])
    }
    var o = common("targets", version, expires)
    o["targets"] = .object(t)
    if let delegations { o["delegations"] = delegations }
    return envelope(.object(o), signers)
}

/// A `delegations` object listing `roles` (name, keys, terminating, paths or hash prefixes).
func delegationsJSON(
    _ roles: [(name: String, keys: [TestKey], terminating: Bool, paths: [String]?, prefixes: [String]?)]
) -> JSONValue {
    var keys: [String: JSONValue] = [:]
    var list: [JSONValue] = []
    for r in roles {
        for k in r.keys { keys[k.keyid] = k.json }
        var o: [String: JSONValue] = [
            "name": .string(r.name), "keyids": .array(r.keys.map { .string($0.keyid) }),
            "threshold": .int(1), "terminating": .bool(r.terminating),
        ]
        if let p = r.paths { o["paths"] = .array(p.map { .string($0) }) }
        if let p = r.prefixes { o["path_hash_prefixes"] = .array(p.map { .string($0) }) }
        list.append(.object(o))
    }
    return .object(["keys": .object(keys), "roles": .array(list)])
}
