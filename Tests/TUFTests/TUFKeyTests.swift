import CourierCore
import Testing

@testable import CourierTUF

/// Keys and signatures made by securesystemslib's CryptoSigner (Fixtures/tuf/keys.json, written
/// by Fixtures/tuf/make_key_fixtures.py): ed25519, ecdsa P-256, RSA-PSS (salt = digest length)
/// and RSA PKCS#1 v1.5.
@Suite struct TUFKeyTests {
    struct Entry {
        let name: String
        let keyid: String
        let key: TUFKey
        let message: [UInt8]
        let sig: [UInt8]
    }

    static func entries() throws -> [Entry] {
        let j = try JSONValue.parse(try fixture("keys.json"), limits: .init())
        return try j.arrayValue!.map { e in
            let id = e[field: "keyid"]!.stringValue!
            return Entry(
                name: e[field: "name"]!.stringValue!, keyid: id,
                key: try TUFKey(json: e[field: "key"]!, keyid: id),
                message: Hex.decode(e[field: "message"]!.stringValue!)!,
                sig: Hex.decode(e[field: "sig"]!.stringValue!)!)
        }
    }

    @Test func pythonSignaturesVerify() throws {
        let all = try Self.entries()
        #expect(all.count == 4)
        for e in all {
            #expect(e.key.verify(signature: e.sig, message: e.message), "\(e.name)")
        }
    }

    @Test func tamperedMessageOrSignatureFails() throws {
        for e in try Self.entries() {
            var m = e.message
            m[0] ^= 1
            #expect(!e.key.verify(signature: e.sig, message: m), "\(e.name) message")
            var s = e.sig
            s[s.count / 2] ^= 0x40
            #expect(!e.key.verify(signature: s, message: e.message), "\(e.name) signature")
            #expect(!e.key.verify(signature: [], message: e.message), "\(e.name) empty")
        }
    }

    @Test func keyOfAnotherTypeDoesNotVerify() throws {
        let all = try Self.entries()
        for a in all {
            for b in all where a.name != b.name {
                #expect(!a.key.verify(signature: b.sig, message: b.message), "\(a.name) with \(b.name)'s signature")
            }
        }
    }

    /// securesystemslib's default key id is SHA-256 of the canonical JSON of the key: the PEM
    /// keys have newlines, so this also checks the canonical encoder on real data.
    @Test func defaultKeyIDMatchesSecuresystemslib() throws {
        for e in try Self.entries() { #expect(e.key.defaultKeyID == e.keyid, "\(e.name)") }
    }

    @Test func unknownPairIsRefusedKnownButUnverifiableCountsAsNoSignature() throws {
        let weird = JSONValue.object([
            "keytype": .string("weird"), "scheme": .string("x"), "keyval": .object(["public": .string("00")]),
        ])
        expectCourierError(.malformed) { _ = try TUFKey(json: weird, keyid: "k") }
        let mismatched = JSONValue.object([
            "keytype": .string("rsa"), "scheme": .string("ed25519"), "keyval": .object(["public": .string("00")]),
        ])
        expectCourierError(.malformed) { _ = try TUFKey(json: mismatched, keyid: "k") }
        let noPublic = JSONValue.object([
            "keytype": .string("ed25519"), "scheme": .string("ed25519"), "keyval": .object(["private": .string("00")]),
        ])
        expectCourierError(.malformed) { _ = try TUFKey(json: noPublic, keyid: "k") }
        let mldsa = JSONValue.object([
            "keytype": .string("mldsa"), "scheme": .string("mldsa-65-1"), "keyval": .object(["public": .string("00")]),
        ])
        let k = try TUFKey(json: mldsa, keyid: "k")
        #expect(!k.verify(signature: [1, 2, 3], message: [4]))
        // A public value that is not a key never verifies and never crashes.
        let badPEM = JSONValue.object([
            "keytype": .string("ecdsa"), "scheme": .string("ecdsa-sha2-nistp256"),
            "keyval": .object(["public": .string("nope")]),
        ])
        #expect(!(try TUFKey(json: badPEM, keyid: "k")).verify(signature: [1], message: [2]))
    }

    @Test func swiftEd25519KeysVerify() throws {
        let k = TestKey()
        let key = try TUFKey(json: k.json, keyid: k.keyid)
        let sig = Hex.decode(k.sign(bytes("hello")))!
        #expect(key.verify(signature: sig, message: bytes("hello")))
        #expect(!key.verify(signature: sig, message: bytes("hellp")))
    }
}
