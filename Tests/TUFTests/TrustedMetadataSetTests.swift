import CourierCore
import Crypto
import Foundation
import Testing

@testable import CourierTUF

/// The state machine on metadata built and signed here (ed25519), one rule per test.
@Suite struct TrustedMetadataSetTests {
    let repo = Repo()

    func fresh(_ r: Repo? = nil) throws -> TrustedMetadataSet {
        try TrustedMetadataSet(rootBytes: (r ?? repo).root(), referenceTime: T.now, limits: JSONValue.Limits())
    }

    /// A set with timestamp, snapshot and top-level targets loaded (targets v1 with `files`).
    func loaded(files: [String: [UInt8]] = [:], delegations: JSONValue? = nil) throws -> TrustedMetadataSet {
        var s = try fresh()
        let t = targetsFile(files: files, delegations: delegations, signers: repo.targetsKeys)
        let snap = repo.snapshot(meta: ["targets.json": (1, t)])
        try s.updateTimestamp(repo.timestamp(snapshot: snap))
        try s.updateSnapshot(snap)
        try s.updateTargets(t)
        return s
    }

    @Test func initialRootMustBeSignedByItself() throws {
        _ = try fresh()
        expectCourierError(.signature) {
            _ = try TrustedMetadataSet(
                rootBytes: repo.root(signers: [TestKey()]), referenceTime: T.now, limits: JSONValue.Limits())
        }
        // An expired trusted root loads (expiry is the final root's business).
        _ = try TrustedMetadataSet(
            rootBytes: repo.root(expires: T.past), referenceTime: T.now, limits: JSONValue.Limits())
        expectCourierError(.malformed) {
            _ = try TrustedMetadataSet(rootBytes: bytes("{}"), referenceTime: T.now, limits: JSONValue.Limits())
        }
    }

    @Test func rootRotationNeedsOldAndNewThreshold() throws {
        var next = repo
        next.rootKeys = [TestKey()]
        let v2 = next.rootSigned(version: 2)
        var s = try fresh()
        expectCourierError(.signature) { try s.updateRoot(envelope(v2, next.rootKeys)) }  // new only
        expectCourierError(.signature) { try s.updateRoot(envelope(v2, repo.rootKeys)) }  // old only
        #expect(s.root.signed.version == 1)
        try s.updateRoot(envelope(v2, repo.rootKeys + next.rootKeys))
        #expect(s.root.signed.version == 2)
        // Now only the new keys count as "old".
        let v3 = next.rootSigned(version: 3)
        expectCourierError(.signature) { try s.updateRoot(envelope(v3, repo.rootKeys)) }
        try s.updateRoot(envelope(v3, next.rootKeys))
        #expect(s.root.signed.version == 3)
    }

    @Test func rootVersionMustBeNextOne() throws {
        var s = try fresh()
        expectCourierError(.rollback) { try s.updateRoot(repo.root(version: 1)) }
        expectCourierError(.rollback) { try s.updateRoot(repo.root(version: 3)) }
        try s.updateRoot(repo.root(version: 2))
        expectCourierError(.rollback) { try s.updateRoot(repo.root(version: 2)) }
    }

    @Test func rootThresholdChange() throws {
        var next = repo
        next.rootKeys = repo.rootKeys + [TestKey(), TestKey()]
        next.rootThreshold = 2
        var s = try fresh()
        // v2 must meet v1's threshold (1 of the old key) and its own (2 of 3).
        expectCourierError(.signature) { try s.updateRoot(envelope(next.rootSigned(version: 2), [next.rootKeys[0]])) }
        try s.updateRoot(envelope(next.rootSigned(version: 2), [next.rootKeys[0], next.rootKeys[2]]))
        expectCourierError(.signature) { try s.updateRoot(envelope(next.rootSigned(version: 3), [next.rootKeys[1]])) }
        try s.updateRoot(envelope(next.rootSigned(version: 3), [next.rootKeys[1], next.rootKeys[2]]))
        #expect(s.root.signed.version == 3)
    }

    @Test func signaturesThatDoNotCount() throws {
        var r = repo
        r.rootKeys = [TestKey(), TestKey()]
        r.rootThreshold = 2
        let signed = r.rootSigned()
        // The same key twice is refused as a duplicate keyid, not counted twice.
        let one = r.rootKeys[0]
        let dup = envelope(signed, [one], extraSigs: [(one.keyid, one.sign(signed.canonicalBytes))])
        expectCourierError(.malformed) {
            _ = try TrustedMetadataSet(rootBytes: dup, referenceTime: T.now, limits: JSONValue.Limits())
        }
        // A signature by a key not in the role, or not hex, does not count.
        let stranger = TestKey()
        let bad = envelope(
            signed, [one],
            extraSigs: [(stranger.keyid, stranger.sign(signed.canonicalBytes)), (r.rootKeys[1].keyid, "zz")])
        expectCourierError(.signature) {
            _ = try TrustedMetadataSet(rootBytes: bad, referenceTime: T.now, limits: JSONValue.Limits())
        }
        _ = try TrustedMetadataSet(
            rootBytes: envelope(signed, r.rootKeys), referenceTime: T.now, limits: JSONValue.Limits())
    }

    @Test func rootCannotChangeAfterTimestamp() throws {
        var s = try fresh()
        try s.updateTimestamp(repo.timestamp())
        expectCourierError(.tufOrder) { try s.updateRoot(repo.root(version: 2)) }
    }

    @Test func expiredFinalRootStopsTimestamp() throws {
        var s = try TrustedMetadataSet(
            rootBytes: repo.root(expires: T.past), referenceTime: T.now, limits: JSONValue.Limits())
        expectCourierError(.expired) { try s.checkRootNotExpired() }
        expectCourierError(.expired) { try s.updateTimestamp(repo.timestamp()) }
        try s.updateRoot(repo.root(version: 2))
        try s.checkRootNotExpired()
        try s.updateTimestamp(repo.timestamp())
    }

    @Test func expiryIsAgainstTheFixedReferenceTime() throws {
        // Expires exactly at the reference time: expired (python-tuf: reference >= expires).
        let at = TUFTime.format(T.now)
        var s = try fresh()
        expectCourierError(.expired) { try s.updateTimestamp(repo.timestamp(expires: at)) }
        var s2 = try TrustedMetadataSet(rootBytes: repo.root(), referenceTime: T.now - 1, limits: JSONValue.Limits())
        try s2.updateTimestamp(repo.timestamp(expires: at))
    }

    @Test func timestampRollbackEqualAndSnapshotRollback() throws {
        var s = try fresh()
        try s.updateTimestamp(repo.timestamp(version: 2, snapshotVersion: 5))
        expectCourierError(.rollback) { try s.updateTimestamp(repo.timestamp(version: 1, snapshotVersion: 5)) }
        expectCourierError(.tufEqualVersion) { try s.updateTimestamp(repo.timestamp(version: 2, snapshotVersion: 6)) }
        expectCourierError(.rollback) { try s.updateTimestamp(repo.timestamp(version: 3, snapshotVersion: 4)) }
        #expect(s.timestamp?.signed.version == 2)
        try s.updateTimestamp(repo.timestamp(version: 3, snapshotVersion: 5))
        #expect(s.timestamp?.signed.version == 3)
    }

    @Test func expiredTimestampIsKeptAsRollbackBaseline() throws {
        var s = try fresh()
        expectCourierError(.expired) { try s.updateTimestamp(repo.timestamp(version: 4, expires: T.past)) }
        #expect(s.timestamp?.signed.version == 4)
        expectCourierError(.expired) { try s.updateSnapshot(repo.snapshot()) }
        expectCourierError(.rollback) { try s.updateTimestamp(repo.timestamp(version: 3)) }
        try s.updateTimestamp(repo.timestamp(version: 5))
    }

    @Test func snapshotAgainstTimestampMeta() throws {
        let snap = repo.snapshot()
        let other = repo.snapshot(meta: ["targets.json": (1, nil), "x.json": (1, nil)])
        var s = try fresh()
        try s.updateTimestamp(repo.timestamp(snapshot: other))
        expectCourierError(.signature) { try s.updateSnapshot(snap) }  // length and hash
        #expect(s.snapshot == nil)
        try s.updateSnapshot(snap, trusted: true)  // local copy: no hash check
        #expect(s.snapshot?.signed.version == 1)
    }

    @Test func snapshotHashOnlyMismatch() throws {
        let snap = repo.snapshot()
        // Same length, different bytes: flip one hex digit of the signature area.
        var tampered = snap
        let i = tampered.lastIndex(of: 0x22)! - 3
        tampered[i] = tampered[i] == 0x30 ? 0x31 : 0x30
        var s = try fresh()
        try s.updateTimestamp(repo.timestamp(snapshot: snap))
        expectCourierError(.signature) { try s.updateSnapshot(tampered) }
        try s.updateSnapshot(snap)
    }

    @Test func snapshotVersionMustMatchTimestampAndNotRollBack() throws {
        var s = try fresh()
        try s.updateTimestamp(repo.timestamp(snapshotVersion: 2))
        expectCourierError(.rollback) { try s.updateSnapshot(repo.snapshot(version: 1)) }
        #expect(s.snapshot?.signed.version == 1)  // stored as intermediate
        expectCourierError(.rollback) { try s.updateTargets(targetsFile(signers: repo.targetsKeys)) }
        // A role disappearing or going down against the old snapshot.
        expectCourierError(.rollback) {
            try s.updateSnapshot(repo.snapshot(version: 2, meta: ["other.json": (1, nil)]))
        }
        var s2 = try fresh()
        try s2.updateTimestamp(repo.timestamp(snapshotVersion: 2))
        expectCourierError(.rollback) {
            try s2.updateSnapshot(repo.snapshot(version: 1, meta: ["targets.json": (3, nil)]))
        }
        expectCourierError(.rollback) {
            try s2.updateSnapshot(repo.snapshot(version: 2, meta: ["targets.json": (2, nil)]))
        }
        try s2.updateSnapshot(repo.snapshot(version: 2, meta: ["targets.json": (3, nil)]))
    }

    @Test func expiredSnapshotStopsTargets() throws {
        var s = try fresh()
        try s.updateTimestamp(repo.timestamp())
        expectCourierError(.expired) { try s.updateSnapshot(repo.snapshot(expires: T.past)) }
        expectCourierError(.expired) { try s.updateTargets(targetsFile(signers: repo.targetsKeys)) }
    }

    @Test func targetsAgainstSnapshotMeta() throws {
        let t1 = targetsFile(signers: repo.targetsKeys)
        let t2 = targetsFile(version: 2, signers: repo.targetsKeys)
        var s = try fresh()
        let snap = repo.snapshot(meta: ["targets.json": (1, t1)])
        try s.updateTimestamp(repo.timestamp(snapshot: snap))
        try s.updateSnapshot(snap)
        expectCourierError(.signature) { try s.updateTargets(t2) }  // hash/length
        expectCourierError(.signature) { try s.updateTargets(targetsFile(signers: [TestKey()])) }
        try s.updateTargets(t1)
        #expect(s.contains(role: "targets", delegator: "root"))
        expectCourierError(.tufOrder) { try s.updateSnapshot(snap) }
    }

    @Test func targetsMixAndMatchAndExpiry() throws {
        var s = try fresh()
        let snap = repo.snapshot(meta: ["targets.json": (2, nil)])
        try s.updateTimestamp(repo.timestamp(snapshot: snap))
        try s.updateSnapshot(snap)
        expectCourierError(.rollback) { try s.updateTargets(targetsFile(version: 1, signers: repo.targetsKeys)) }
        expectCourierError(.expired) {
            try s.updateTargets(targetsFile(version: 2, expires: T.past, signers: repo.targetsKeys))
        }
        #expect(s.targets == nil)
        try s.updateTargets(targetsFile(version: 2, signers: repo.targetsKeys))
    }

    @Test func delegatedRoleNeedsDelegatorSnapshotAndKeys() throws {
        let dk = TestKey()
        let deleg = delegationsJSON([("a", [dk], false, ["*"], nil)])
        var s = try fresh()
        let t = targetsFile(delegations: deleg, signers: repo.targetsKeys)
        let a = targetsFile(files: ["f": bytes("x")], signers: [dk])
        let snap = repo.snapshot(meta: ["targets.json": (1, t), "a.json": (1, a)])
        try s.updateTimestamp(repo.timestamp(snapshot: snap))
        try s.updateSnapshot(snap)
        expectCourierError(.tufOrder) { try s.updateDelegatedTargets(a, role: "a", delegator: "targets") }
        try s.updateTargets(t)
        expectCourierError(.signature) {
            try s.updateDelegatedTargets(targetsFile(signers: [TestKey()]), role: "a", delegator: "targets")
        }
        // Not in snapshot.
        expectCourierError(.signature) { try s.updateDelegatedTargets(a, role: "b", delegator: "targets") }
        try s.updateDelegatedTargets(a, role: "a", delegator: "targets")
        #expect(s.contains(role: "a", delegator: "targets"))
        #expect(!s.contains(role: "a", delegator: "root"))
        #expect(s.delegated["a"]?.signed.target("f")?.length == 1)
    }

    @Test func unknownFieldsAreSignedAndKept() throws {
        var o = common("timestamp", 1, T.future)
        o["meta"] = .object(["snapshot.json": .object(["version": .int(1), "x-note": .string("é")])])
        o["x-extra"] = .object(["b": .array([.int(1), .null]), "a": .bool(true)])
        let file = envelope(.object(o), repo.timestampKeys)
        var s = try fresh()
        let ts = try s.updateTimestamp(file)
        #expect(ts.signedBytes == JSONValue.object(o).canonicalBytes)
        // Removing the unknown field after signing breaks the signature.
        var s2 = try fresh()
        let stripped = String(decoding: file, as: UTF8.self).replacingOccurrences(
            of: #","x-extra":{"a":true,"b":[1,null]}"#, with: "")
        #expect(stripped.utf8.count < file.count)
        expectCourierError(.signature) { try s2.updateTimestamp(bytes(stripped)) }
    }

    @Test func wrongTypeAndBadFields() throws {
        var s = try fresh()
        expectCourierError(.malformed) { try s.updateTimestamp(repo.snapshot()) }
        var o = common("timestamp", 1, T.future)
        o["meta"] = .object([:])
        expectCourierError(.malformed) { try s.updateTimestamp(envelope(.object(o), repo.timestampKeys)) }
        o = common("timestamp", 1, T.future)
        o["spec_version"] = .string("2.0")
        o["meta"] = .object(["snapshot.json": .object(["version": .int(1)])])
        expectCourierError(.malformed) { try s.updateTimestamp(envelope(.object(o), repo.timestampKeys)) }
        o["spec_version"] = .string("1.0")
        o["meta"] = .object(["snapshot.json": .object(["version": .int(1), "hashes": .object([:])])])
        expectCourierError(.malformed) { try s.updateTimestamp(envelope(.object(o), repo.timestampKeys)) }
        o["meta"] = .object(["snapshot.json": .object(["version": .int(1), "length": .int(-1)])])
        expectCourierError(.malformed) { try s.updateTimestamp(envelope(.object(o), repo.timestampKeys)) }
        o["meta"] = .object(["snapshot.json": .object(["version": .int(1)])])
        try s.updateTimestamp(envelope(.object(o), repo.timestampKeys))
    }

    @Test func messagesNameRoleAndEscapeUntrustedStrings() throws {
        var s = try fresh()
        var o = common("time\u{202E}stamp", 1, T.future)
        o["meta"] = .object(["snapshot.json": .object(["version": .int(1)])])
        let wrongType = expectCourierError(nil, "'time\\u{") {
            try s.updateTimestamp(envelope(.object(o), repo.timestampKeys))
        }
        #expect(wrongType?.message.contains("\u{202E}") == false)
        let unsigned = expectCourierError(nil, "0/1") { try s.updateTimestamp(repo.timestamp(signers: [TestKey()])) }
        #expect(unsigned?.message.contains("timestamp") == true)
    }
}
