import CourierCore
import Foundation
import Testing

/// Packages altered after signing, signed by the wrong key, or out of date: each refused with
/// its own reason before anything is extracted.
@Suite struct TamperTests {
    let key = SigningKey()
    let content = bytes("signature database v1\n")

    func manifest(revision: UInt64 = 20_260_921_001, created: Int64 = testNow, life: Int64 = 86400) -> Manifest {
        Manifest(
            type: "virus-defs", revision: revision, kind: .full, created: created, expires: created + life,
            provenance: [:], files: [entry("main.db", content)])
    }

    func goodEntries(_ w: ArchiveWriter) throws { try w.writeFile(path: "payload/main.db", bytes: content) }

    func verify(_ path: String, _ opts: VerifyOptions? = nil) throws {
        _ = try PackageVerifier.verify(path: path, options: opts ?? verifyOptions([key.publicKey]))
    }

    @Test func untouchedCraftedPackageVerifies() throws {
        let w = Workspace("tamper")
        try craftPackage(at: w.path("p.cpkg"), manifest: manifest(), key: key, entries: goodEntries)
        try verify(w.path("p.cpkg"))
    }

    @Test func manifestAlteredAfterSigning() throws {
        let w = Workspace("tamper")
        let signed = manifest().encoded()
        var altered = manifest()
        altered.revision = 20_990_101_001
        // Sign the original bytes, ship the altered ones.
        let fd = open(w.path("p.cpkg"), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let wr = try ArchiveWriter(fd: fd, display: "p", compression: .gzip)
        try wr.writeFile(path: PackageReader.manifestEntry, bytes: altered.encoded())
        try wr.writeFile(path: PackageReader.signaturesEntry, bytes: SignatureSet.sign(signed, with: [key]).encoded())
        try goodEntries(wr)
        try wr.finish()
        close(fd)
        expectCourierError(.signature, "signature does not verify") { try verify(w.path("p.cpkg")) }
    }

    @Test func signatureAltered() throws {
        let w = Workspace("tamper")
        let mb = manifest().encoded()
        var sigs = SignatureSet.sign(mb, with: [key])
        var raw = Array(Data(base64Encoded: sigs.signatures[0].signature)!)
        raw[10] ^= 0x01
        sigs.signatures[0].signature = Data(raw).base64EncodedString()
        let fd = open(w.path("p.cpkg"), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let wr = try ArchiveWriter(fd: fd, display: "p")
        try wr.writeFile(path: PackageReader.manifestEntry, bytes: mb)
        try wr.writeFile(path: PackageReader.signaturesEntry, bytes: sigs.encoded())
        try goodEntries(wr)
        try wr.finish()
        close(fd)
        expectCourierError(.signature, "signature does not verify") { try verify(w.path("p.cpkg")) }
    }

    @Test func payloadByteFlippedOnDisk() throws {
        let w = Workspace("tamper")
        let tree = w.tree("t", ["main.db": content])
        _ = w.mkdir("o")
        try PackageBuilder.buildFull(tree: tree, to: w.path("o/p.cpkg"), options: options(key, compression: .none))
        var data = Array(FileManager.default.contents(atPath: w.path("o/p.cpkg"))!)
        let needle = Array("database v1".utf8)
        let at = (0...(data.count - needle.count)).first { Array(data[$0..<$0 + needle.count]) == needle }!
        data[at + 3] ^= 0x20
        try Data(data).write(to: URL(fileURLWithPath: w.path("o/p.cpkg")))
        expectCourierError(.integrity, "SHA-256") { try verify(w.path("o/p.cpkg")) }
        let target = w.mkdir("x")
        expectCourierError(.integrity, "does not match the manifest") {
            try SafeExtractor.extract(
                PackageReader(path: w.path("o/p.cpkg"), options: verifyOptions([key.publicKey])), into: target)
        }
        #expect(w.listing("x").isEmpty, "a refused extraction leaves nothing behind")
    }

    @Test func entryOrderSignaturesFirst() throws {
        let w = Workspace("tamper")
        let mb = manifest().encoded()
        let fd = open(w.path("p.cpkg"), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let wr = try ArchiveWriter(fd: fd, display: "p")
        try wr.writeFile(path: PackageReader.signaturesEntry, bytes: SignatureSet.sign(mb, with: [key]).encoded())
        try wr.writeFile(path: PackageReader.manifestEntry, bytes: mb)
        try goodEntries(wr)
        try wr.finish()
        close(fd)
        expectCourierError(.malformed, "first entry must be courier-manifest.json, found 'courier-signatures.json'") {
            try verify(w.path("p.cpkg"))
        }
    }

    @Test func entryOrderPayloadBeforeSignatures() throws {
        let w = Workspace("tamper")
        try craftPackage(at: w.path("p.cpkg"), manifest: manifest(), key: key, skipSignatures: true) { wr in
            try goodEntries(wr)
            try wr.writeFile(
                path: PackageReader.signaturesEntry,
                bytes: SignatureSet.sign(manifest().encoded(), with: [key]).encoded())
        }
        expectCourierError(.malformed, "second entry must be courier-signatures.json, found 'payload/main.db'") {
            try verify(w.path("p.cpkg"))
        }
    }

    @Test func wrongKey() throws {
        let w = Workspace("tamper")
        try craftPackage(at: w.path("p.cpkg"), manifest: manifest(), key: SigningKey(), entries: goodEntries)
        expectCourierError(.signature, "no valid signature by a trusted key") { try verify(w.path("p.cpkg")) }
        expectCourierError(.signature, "not a trusted key") { try verify(w.path("p.cpkg")) }
    }

    @Test func revokedKey() throws {
        let w = Workspace("tamper")
        try craftPackage(at: w.path("p.cpkg"), manifest: manifest(), key: key, entries: goodEntries)
        let other = SigningKey()
        expectCourierError(.revokedKey, "revoked key \(key.keyID)") {
            try verify(w.path("p.cpkg"), verifyOptions([other.publicKey], revoked: [key.keyID]))
        }
    }

    @Test func thresholdOfTwoNeedsTwoKeys() throws {
        let w = Workspace("tamper")
        let second = SigningKey()
        try craftPackage(at: w.path("p.cpkg"), manifest: manifest(), key: key, entries: goodEntries)
        var o = verifyOptions([key.publicKey, second.publicKey])
        o.trust.threshold = 2
        expectCourierError(.signature, "1 valid signature(s), 2 required") { try verify(w.path("p.cpkg"), o) }
    }

    @Test func expiredAndFuturePackages() throws {
        let w = Workspace("tamper")
        try craftPackage(
            at: w.path("old.cpkg"), manifest: manifest(created: testNow - 10 * 86400), key: key, entries: goodEntries)
        expectCourierError(.expired, "package expired at") { try verify(w.path("old.cpkg")) }
        // Inside the clock skew it is still fine; past it, not.
        var o = verifyOptions([key.publicKey], now: testNow + 86400 + 200)
        try craftPackage(at: w.path("p.cpkg"), manifest: manifest(), key: key, entries: goodEntries)
        try verify(w.path("p.cpkg"), o)
        o.clockSkew = 100
        expectCourierError(.expired, "package expired at") { try verify(w.path("p.cpkg"), o) }
        try craftPackage(
            at: w.path("future.cpkg"), manifest: manifest(created: testNow + 3600), key: key, entries: goodEntries)
        expectCourierError(.expired, "created in the future") { try verify(w.path("future.cpkg")) }
    }

    @Test func wrongContentType() throws {
        let w = Workspace("tamper")
        try craftPackage(at: w.path("p.cpkg"), manifest: manifest(), key: key, entries: goodEntries)
        var o = verifyOptions([key.publicKey])
        o.expectedType = "ips-rules"
        expectCourierError(.wrongType, "type 'virus-defs', expected 'ips-rules'") { try verify(w.path("p.cpkg"), o) }
    }

    @Test func truncatedNotAnArchiveAndEmptyFiles() throws {
        let w = Workspace("tamper")
        let tree = w.tree("t", ["big.db": randomBytes(2_000_000, seed: 4)])
        _ = w.mkdir("o")
        try PackageBuilder.buildFull(tree: tree, to: w.path("o/p.cpkg"), options: options(key))
        let data = FileManager.default.contents(atPath: w.path("o/p.cpkg"))!
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: w.path("o/half.cpkg")))
        expectCourierError(.malformed, "damaged archive") { try verify(w.path("o/half.cpkg")) }
        try Data(randomBytes(4096, seed: 5)).write(to: URL(fileURLWithPath: w.path("o/noise.cpkg")))
        expectCourierError(.malformed) { try verify(w.path("o/noise.cpkg")) }
        try Data().write(to: URL(fileURLWithPath: w.path("o/empty.cpkg")))
        expectCourierError(.malformed) { try verify(w.path("o/empty.cpkg")) }
        expectCourierError(.io, "No such file") { try verify(w.path("o/missing.cpkg")) }
        expectCourierError(.malformed, "not a regular file") { try verify(w.path("o")) }
    }

    @Test func unsignedPackage() throws {
        let w = Workspace("tamper")
        try craftPackage(at: w.path("p.cpkg"), manifest: manifest(), key: key, skipSignatures: true) { wr in
            try wr.writeFile(path: PackageReader.signaturesEntry, bytes: bytes("{\"format\":1,\"signatures\":[]}"))
            try goodEntries(wr)
        }
        expectCourierError(.signature, "not signed") { try verify(w.path("p.cpkg")) }
    }
}
