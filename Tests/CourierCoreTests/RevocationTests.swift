import CourierCore
import Foundation
import Testing

/// Revocation is by key, not by the id a signature declares (issue #11.4): a signature by a
/// revoked key refuses the package whatever `keyid` it is filed under, as long as the trust
/// store knows the revoked public key; a declared id is compared case-insensitively.
@Suite struct RevocationTests {
    let good = SigningKey(), gone = SigningKey()

    /// A signatures entry with each (declared id, signing key) pair, written by hand.
    func signatures(_ sigs: [(String, SigningKey)], over manifest: [UInt8]) -> [UInt8] {
        let items = sigs.map { id, k in
            let s = Data(k.sign(SignatureSet.message(for: manifest))).base64EncodedString()
            return "{\"algorithm\":\"ed25519\",\"keyid\":\"\(id)\",\"signature\":\"\(s)\"}"
        }
        return bytes("{\"format\":1,\"signatures\":[" + items.joined(separator: ",") + "]}")
    }

    func package(_ w: Workspace, _ sigs: [(String, SigningKey)]) throws -> String {
        let content = bytes("defs\n")
        let m = Manifest(
            type: "virus-defs", revision: 20_260_921_001, kind: .full, created: testNow, expires: testNow + 86400,
            provenance: [:], files: [entry("main.db", content)])
        let mb = m.encoded()
        let path = w.path("p-\(UUID().uuidString.prefix(6)).cpkg")
        try craftPackage(at: path, manifest: m, key: good, manifestBytes: mb, skipSignatures: true) { wr in
            try wr.writeFile(path: PackageReader.signaturesEntry, bytes: signatures(sigs, over: mb))
            try wr.writeFile(path: "payload/main.db", bytes: content)
        }
        return path
    }

    /// A trust directory with `good.pub`, and `gone` revoked the way `how` says.
    func trustDir(_ w: Workspace, _ how: String) throws -> String {
        let dir = w.mkdir("trust-\(how)")
        try good.publicKey.fileText.write(toFile: dir + "/good.pub", atomically: true, encoding: .utf8)
        switch how {
        case "line":  // the public key line in the revoked file
            try "# compromised\n\(gone.publicKey.fileText)".write(
                toFile: dir + "/revoked", atomically: true, encoding: .utf8)
        case "dir":  // revoked/*.pub
            _ = w.mkdir("trust-\(how)/revoked")
            try gone.publicKey.fileText.write(toFile: dir + "/revoked/gone.pub", atomically: true, encoding: .utf8)
        case "idWithPub":  // only the id is listed, but the .pub is still in the trust directory
            try gone.publicKey.fileText.write(toFile: dir + "/gone.pub", atomically: true, encoding: .utf8)
            try "\(gone.keyID.uppercased())\n".write(toFile: dir + "/revoked", atomically: true, encoding: .utf8)
        default:  // "idOnly": the id alone, upper-case; the key itself unknown
            try "\(gone.keyID.uppercased())  # retired\n".write(
                toFile: dir + "/revoked", atomically: true, encoding: .utf8)
        }
        return dir
    }

    func verify(_ pkg: String, _ trust: String) throws {
        var o = VerifyOptions(trust: try TrustStore.load(trust), limits: Limits(), now: testNow + 60)
        o.limits = Limits()
        _ = try PackageVerifier.verify(path: pkg, options: o)
    }

    @Test(arguments: ["line", "dir", "idWithPub"])
    func aRevokedKeysSignatureRefusesWhateverIdItIsFiledUnder(how: String) throws {
        let w = Workspace("revoked-\(how)")
        let trust = try trustDir(w, how)
        // The honest form still works.
        try verify(try package(w, [(good.keyID, good)]), trust)
        expectCourierError(.revokedKey, "revoked key") {
            try verify(try package(w, [(good.keyID, good), (gone.keyID, gone)]), trust)
        }
        // Mislabelled: upper-case id, the trusted key's id, an unknown id.
        for declared in [gone.keyID.uppercased(), good.keyID, "0123456789abcdef", "not even hex"] {
            expectCourierError(.revokedKey, "revoked key") {
                try verify(try package(w, [(good.keyID, good), (declared, gone)]), trust)
            }
        }
    }

    /// With only the id listed (the key unknown), the declared id still counts, in any case; a
    /// mislabelled signature cannot be recognised (docs/OPERATIONS.md says to list the key line).
    @Test func anIdOnlyListMatchesDeclaredIdsCaseInsensitively() throws {
        let w = Workspace("revoked-id")
        let trust = try trustDir(w, "idOnly")
        let store = try TrustStore.load(trust)
        #expect(store.revoked == [gone.keyID])
        for declared in [gone.keyID, gone.keyID.uppercased()] {
            expectCourierError(.revokedKey, "revoked key") {
                try verify(try package(w, [(good.keyID, good), (declared, gone)]), trust)
            }
        }
        try verify(try package(w, [(good.keyID, good), (good.keyID, gone)]), trust)
    }
}
