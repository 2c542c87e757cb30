import CourierCore
import Testing

@Suite struct StrictJSONLimitTests {
    @Test func arraysAreCountedWhileScanning() throws {
        let doc = Array("{\"a\":[1,2,3],\"b\":[[4,5],[6]]}".utf8)
        try StrictJSON.check(doc, what: "doc", maxArrayElements: 3)
        expectCourierError(.limit, "doc: an array has more than 2 elements") {
            try StrictJSON.check(doc, what: "doc", maxArrayElements: 2)
        }
        expectCourierError(.limit, "manifest lists more than the limit of 1 files") {
            _ = try Manifest.decode(Array("{\"files\":[{},{}]}".utf8), maxFiles: 1)
        }
    }

    @Test func revokedKeysAreKeptFromEveryForm() throws {
        let a = SigningKey()
        let b = SigningKey()
        let s = TrustStore(keys: [a.publicKey, b.publicKey], revoked: [b.keyID.uppercased()])
        #expect(Set(s.trusted.keys) == [a.keyID])
        #expect(s.revoked == [b.keyID])
        #expect(s.revokedKeys.map(\.keyID) == [b.keyID])
    }
}
