import CourierCore
import Foundation
import Testing

@Suite struct KeyTests {
    @Test func keygenWritesSecretAt0600AndRefusesToOverwrite() throws {
        let w = Workspace("keys")
        let key = SigningKey()
        let pub = try key.write(to: w.path("stage.key"), comment: "test host")
        var st = stat()
        #expect(stat(w.path("stage.key"), &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(try SigningKey.load(w.path("stage.key")).keyID == pub.keyID)
        #expect(try PublicKey.load(w.path("stage.key.pub")) == pub)
        #expect(pub.keyID.count == 16)
        expectCourierError(.key, "already exists") { try SigningKey().write(to: w.path("stage.key")) }
        // The old key is untouched.
        #expect(try SigningKey.load(w.path("stage.key")).keyID == pub.keyID)
    }

    @Test func malformedKeyFilesAreRefusedWithTheirPath() throws {
        let w = Workspace("keys")
        w.tree("k", ["bad.pub": bytes("ssh-ed25519 AAAA"), "bad.key": bytes("courier-ed25519-secret-v1 !!")])
        expectCourierError(.key, "bad.pub: not a Courier public key") { _ = try PublicKey.load(w.path("k/bad.pub")) }
        expectCourierError(.key, "bad.key: not a Courier signing key") { _ = try SigningKey.load(w.path("k/bad.key")) }
    }

    @Test func trustDirectoryWithRotationAndRevocation() throws {
        let w = Workspace("trust")
        let old = SigningKey()
        let new = SigningKey()
        let gone = SigningKey()
        _ = w.mkdir("trust")
        try old.write(to: w.path("old.key"))
        try new.write(to: w.path("new.key"))
        try gone.write(to: w.path("gone.key"))
        for n in ["old", "new", "gone"] {
            try FileManager.default.copyItem(atPath: w.path("\(n).key.pub"), toPath: w.path("trust/\(n).pub"))
        }
        try "# compromised 2026-11\n\(gone.keyID)\n".write(
            toFile: w.path("trust/revoked"), atomically: true, encoding: .utf8)
        let store = try TrustStore.load(w.path("trust"))
        #expect(Set(store.trusted.keys) == [old.keyID, new.keyID])
        #expect(store.revoked == [gone.keyID])

        // A revoked directory of .pub files works too.
        try FileManager.default.removeItem(atPath: w.path("trust/revoked"))
        _ = w.mkdir("trust/revoked")
        try FileManager.default.copyItem(atPath: w.path("old.key.pub"), toPath: w.path("trust/revoked/old.pub"))
        let store2 = try TrustStore.load(w.path("trust"))
        #expect(Set(store2.trusted.keys) == [new.keyID, gone.keyID])

        try "not a key id\n".write(toFile: w.path("bad-revoked"), atomically: true, encoding: .utf8)
        _ = w.mkdir("t2")
        try FileManager.default.copyItem(atPath: w.path("new.key.pub"), toPath: w.path("t2/new.pub"))
        try FileManager.default.copyItem(atPath: w.path("bad-revoked"), toPath: w.path("t2/revoked"))
        expectCourierError(.key, "revoked:1: not a key id") { _ = try TrustStore.load(w.path("t2")) }
        expectCourierError(.key, "trust store not found") { _ = try TrustStore.load(w.path("nowhere")) }
        _ = w.mkdir("empty")
        expectCourierError(.key, "no usable public key") { _ = try TrustStore.load(w.path("empty")) }
    }
}
