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
        #expect(
            errorCode {
                _ = try TrustedMetadataSet(
                    rootBytes: repo.root(signers: [TestKey()]), referenceTime: T.now, limits: JSONValue.Limits())
            }
                == .signature)
        // An expired trusted root loads (expiry is the final root's business).
        _ = try TrustedMetadataSet(
            rootBytes: repo.root(expires: T.past), referenceTime: T.now, limits: JSONValue.Limits())
        #expect(
            errorCode {
                _ = try TrustedMetadataSet(rootBytes: bytes("{}"), referenceTime: T.now, limits: JSONValue.Limits())
            } == .malformed)
    }

    @Test func rootRotationNeedsOldAndNewThreshold() throws {
        var next = repo
        next.rootKeys = [TestKey()]
        let v2 = next.rootSigned(version: 2)
        var s = try fresh()
        #expect(errorCode { try s.updateRoot(envelope(v2, next.rootKeys)) } == .signature)  // new only
        #expect(errorCode { try s.updateRoot(envelope(v2, repo.rootKeys)) } == .signature)  // old only
        #expect(s.root.signed.version == 1)
        try s.updateRoot(envelope(v2, repo.rootKeys + next.rootKeys))
        #expect(s.root.signed.version == 2)
        // Now only the new keys count as "old".
        let v3 = next.rootSigned(version: 3)
        #expect(errorCode { try s.updateRoot(envelope(v3, repo.rootKeys)) } == .signature)
        try s.updateRoot(envelope(v3, next.rootKeys))
        #expect(s.root.signed.version == 3)
    }

    @Test func rootVersionMustBeNextOne() throws {
        var s = try fresh()
        #expect(errorCode { try s.updateRoot(repo.root(version: 1)) } == .rollback)
        #expect(errorCode { try s.updateRoot(repo.root(version: 3)) } == .rollback)
        try s.updateRoot(repo.root(version: 2))
        #expect(errorCode { try s.updateRoot(repo.root(version: 2)) } == .rollback)
    }

    @Test func rootThresholdChange() throws {
        var next = repo
        next.rootKeys = repo.rootKeys + [TestKey(), TestKey()]
        next.rootThreshold = 2
        var s = try fresh()
        // v2 must meet v1's threshold (1 of the old key) and its own (2 of 3).
        #expect(errorCode { try s.updateRoot(envelope(next.rootSigned(version: 2), [next.rootKeys[0]])) } == .signature)
        try s.updateRoot(envelope(next.rootSigned(version: 2), [next.rootKeys[0], next.rootKeys[2]]))
        #expect(errorCode { try s.updateRoot(envelope(next.rootSigned(version: 3), [next.rootKeys[1]])) } == .signature)
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
        #expect(
            errorCode { _ = try TrustedMetadataSet(rootBytes: dup, referenceTime: T.now, limits: JSONValue.Limits()) }
                == .malformed)
        // A signature by a key not in the role, or not hex, does not count.
        let stranger = TestKey()
        let bad = envelope(
            signed, [one],
            extraSigs: [(stranger.keyid, stranger.sign(signed.canonicalBytes)), (r.rootKeys[1].keyid, "zz")])
        #expect(
            errorCode { _ = try TrustedMetadataSet(rootBytes: bad, referenceTime: T.now, limits: JSONValue.Limits()) }
                == .signature)
        _ = try TrustedMetadataSet(
            rootBytes: envelope(signed, r.rootKeys), referenceTime: T.now, limits: JSONValue.Limits())
    }

    @Test func rootCannotChangeAfterTimestamp() throws {
        var s = try fresh()
        try s.updateTimestamp(repo.timestamp())
        #expect(errorCode { try s.updateRoot(repo.root(version: 2)) } == .tufOrder)
    }

    @Test func expiredFinalRootStopsTimestamp() throws {
        var s = try TrustedMetadataSet(
            rootBytes: repo.root(expires: T.past), referenceTime: T.now, limits: JSONValue.Limits())
        #expect(errorCode { try s.checkRootNotExpired() } == .expired)
        #expect(errorCode { try s.updateTimestamp(repo.timestamp()) } == .expired)
        try s.updateRoot(repo.root(version: 2))
        try s.checkRootNotExpired()
        try s.updateTimestamp(repo.timestamp())
    }

    @Test func expiryIsAgainstTheFixedReferenceTime() throws {
        // Expires exactly at the reference time: expired (python-tuf: reference >= expires).
        let at = TUFTime.format(T.now)
        var s = try fresh()
        #expect(errorCode { try s.updateTimestamp(repo.timestamp(expires: at)) } == .expired)
        var s2 = try TrustedMetadataSet(rootBytes: repo.root(), referenceTime: T.now - 1, limits: JSONValue.Limits())
        try s2.updateTimestamp(repo.timestamp(expires: at))
    }

    @Test func timestampRollbackEqualAndSnapshotRollback() throws {
        var s = try fresh()
        try s.updateTimestamp(repo.timestamp(version: 2, snapshotVersion: 5))
        #expect(errorCode { try s.updateTimestamp(repo.timestamp(version: 1, snapshotVersion: 5)) } == .rollback)
        #expect(errorCode { try s.updateTimestamp(repo.timestamp(version: 2, snapshotVersion: 6)) } == .tufEqualVersion)
        #expect(errorCode { try s.updateTimestamp(repo.timestamp(version: 3, snapshotVersion: 4)) } == .rollback)
        #expect(s.timestamp?.signed.version == 2)
        try s.updateTimestamp(repo.timestamp(version: 3, snapshotVersion: 5))
        #expect(s.timestamp?.signed.version == 3)
    }

    @Test func expiredTimestampIsKeptAsRollbackBaseline() throws {
        var s = try fresh()
        #expect(errorCode { try s.updateTimestamp(repo.timestamp(version: 4, expires: T.past)) } == .expired)
        #expect(s.timestamp?.signed.version == 4)
        #expect(errorCode { try s.updateSnapshot(repo.snapshot()) } == .expired)
        #expect(errorCode { try s.updateTimestamp(repo.timestamp(version: 3)) } == .rollback)
        try s.updateTimestamp(repo.timestamp(version: 5))
    }

    @Test func snapshotAgainstTimestampMeta() throws {
        let snap = repo.snapshot()
        let other = repo.snapshot(meta: ["targets.json": (1, nil), "x.json": (1, nil)])
        var s = try fresh()
        try s.updateTimestamp(repo.timestamp(snapshot: other))
        #expect(errorCode { try s.updateSnapshot(snap) } == .signature)  // length and hash
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
        #expect(errorCode { try s.updateSnapshot(tampered) } == .signature)
        try s.updateSnapshot(snap)
    }

    @Test func snapshotVersionMustMatchTimestampAndNotRollBack() throws {
        var s = try fresh()
        try s.updateTimestamp(repo.timestamp(snapshotVersion: 2))
        #expect(errorCode { try s.updateSnapshot(repo.snapshot(version: 1)) } == .rollback)
        #expect(s.snapshot?.signed.version == 1)  // stored as intermediate
        #expect(errorCode { try s.updateTargets(targetsFile(signers: repo.targetsKeys)) } == .rollback)
        // A role disappearing or going down against the old snapshot.
        #expect(
            errorCode { try s.updateSnapshot(repo.snapshot(version: 2, meta: ["other.json": (1, nil)])) } == .rollback)
        var s2 = try fresh()
        try s2.updateTimestamp(repo.timestamp(snapshotVersion: 2))
        #expect(
            errorCode { try s2.updateSnapshot(repo.snapshot(version: 1, meta: ["targets.json": (3, nil)])) }
                == .rollback)
        #expect(
            errorCode { try s2.updateSnapshot(repo.snapshot(version: 2, meta: ["targets.json": (2, nil)])) }
                == .rollback)
        try s2.updateSnapshot(repo.snapshot(version: 2, meta: ["targets.json": (3, nil)]))
    }

    @Test func expiredSnapshotStopsTargets() throws {
        var s = try fresh()
        try s.updateTimestamp(repo.timestamp())
        #expect(errorCode { try s.updateSnapshot(repo.snapshot(expires: T.past)) } == .expired)
        #expect(errorCode { try s.updateTargets(targetsFile(signers: repo.targetsKeys)) } == .expired)
    }

    @Test func targetsAgainstSnapshotMeta() throws {
        let t1 = targetsFile(signers: repo.targetsKeys)
        let t2 = targetsFile(version: 2, signers: repo.targetsKeys)
        var s = try fresh()
        let snap = repo.snapshot(meta: ["targets.json": (1, t1)])
        try s.updateTimestamp(repo.timestamp(snapshot: snap))
        try s.updateSnapshot(snap)
        #expect(errorCode { try s.updateTargets(t2) } == .signature)  // hash/length
        #expect(errorCode { try s.updateTargets(targetsFile(signers: [TestKey()])) } == .signature)
        try s.updateTargets(t1)
        #expect(s.contains(role: "targets", delegator: "root"))
        #expect(errorCode { try s.updateSnapshot(snap) } == .tufOrder)
    }

    @Test func targetsMixAndMatchAndExpiry() throws {
        var s = try fresh()
        let snap = repo.snapshot(meta: ["targets.json": (2, nil)])
        try s.updateTimestamp(repo.timestamp(snapshot: snap))
        try s.updateSnapshot(snap)
        #expect(errorCode { try s.updateTargets(targetsFile(version: 1, signers: repo.targetsKeys)) } == .rollback)
        #expect(
            errorCode { try s.updateTargets(targetsFile(version: 2, expires: T.past, signers: repo.targetsKeys)) }
                == .expired)
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
        #expect(errorCode { try s.updateDelegatedTargets(a, role: "a", delegator: "targets") } == .tufOrder)
        try s.updateTargets(t)
        #expect(
            errorCode {
                try s.updateDelegatedTargets(targetsFile(signers: [TestKey()]), role: "a", delegator: "targets")
            } == .signature)
        // Not in snapshot.
        #expect(errorCode { try s.updateDelegatedTargets(a, role: "b", delegator: "targets") } == .signature)
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
        #expect(errorCode { try s2.updateTimestamp(bytes(stripped)) } == .signature)
    }

    @Test func wrongTypeAndBadFields() throws {
        var s = try fresh()
        #expect(errorCode { try s.updateTimestamp(repo.snapshot()) } == .malformed)
        var o = common("timestamp", 1, T.future)
        o["meta"] = .object([:])
        #expect(errorCode { try s.updateTimestamp(envelope(.object(o), repo.timestampKeys)) } == .malformed)
        o = common("timestamp", 1, T.future)
        o["spec_version"] = .string("2.0")
        o["meta"] = .object(["snapshot.json": .object(["version": .int(1)])])
        #expect(errorCode { try s.updateTimestamp(envelope(.object(o), repo.timestampKeys)) } == .malformed)
        o["spec_version"] = .string("1.0")
        o["meta"] = .object(["snapshot.json": .object(["version": .int(1), "hashes": .object([:])])])
        #expect(errorCode { try s.updateTimestamp(envelope(.object(o), repo.timestampKeys)) } == .malformed)
        o["meta"] = .object(["snapshot.json": .object(["version": .int(1), "length": .int(-1)])])
        #expect(errorCode { try s.updateTimestamp(envelope(.object(o), repo.timestampKeys)) } == .malformed)
        o["meta"] = .object(["snapshot.json": .object(["version": .int(1)])])
        try s.updateTimestamp(envelope(.object(o), repo.timestampKeys))
    }

    @Test func messagesNameRoleAndEscapeUntrustedStrings() throws {
        var s = try fresh()
        var o = common("time\u{202E}stamp", 1, T.future)
        o["meta"] = .object(["snapshot.json": .object(["version": .int(1)])])
        do {
            try s.updateTimestamp(envelope(.object(o), repo.timestampKeys))
            Issue.record("accepted a wrong _type")
        } catch let e as CourierError {
            #expect(e.message.contains("'time\\u{"))
            #expect(!e.message.contains("\u{202E}"))
        }
        do {
            try s.updateTimestamp(repo.timestamp(signers: [TestKey()]))
        } catch let e as CourierError {
            #expect(e.message.contains("timestamp"))
            #expect(e.message.contains("0/1"))
        }
    }
}
