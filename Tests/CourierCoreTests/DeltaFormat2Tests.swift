import CourierCore
import Crypto
import Foundation
import Testing

/// Format 2 deltas (FORMAT §3.5, issue #13): in-file patches, the digest instead of the list.
/// Every round trip applies the delta to a base extracted from the full package, as a client
/// does, and compares the result with the new tree byte for byte.
@Suite struct DeltaFormat2Tests {
    let key = SigningKey()

    /// Signature-like text: lines of a name and a hex pattern (ClamAV .ndb style).
    static func sigLines(_ n: Int, seed: UInt64) -> [String] {
        let r = randomBytes(n * 24, seed: seed)
        return (0..<n).map { i in
            let hex = r[i * 24..<(i + 1) * 24].map { String(format: "%02x", $0) }.joined()
            return "Win.Trojan.Agent-\(i):0:*:\(hex)\n"
        }
    }

    struct Built {
        let w: Workspace
        let full: String
        let delta: String
        let manifest: Manifest
    }

    /// Full package of `v1`, delta v1 → v2 (format 2, the given window cap).
    func build(_ w: Workspace, _ v1: String, _ v2: String, window: UInt64? = nil) throws -> Built {
        _ = w.mkdir("out")
        let full1 = try PackageBuilder.buildFull(
            tree: v1, to: w.path("out/full1.cpkg"), options: options(key, revision: 1))
        var o = options(key, revision: 2)
        if let window { o.limits.maxDeltaWindow = window }
        // As the stager does: the base files come out of the full package, not the source tree.
        try DeltaPatcher.extractBase(
            package: w.path("out/full1.cpkg"), verify: verifyOptions([key.publicKey]),
            baseFiles: Array(full1.files), target: try TreeScanner.scan(v2), into: w.path("basefiles"))
        let m = try PackageBuilder.buildDelta(
            baseRevision: 1, baseFiles: Array(full1.files), tree: v2, to: w.path("out/delta.cpkg"),
            options: o, baseTree: w.path("basefiles"))
        return Built(w: w, full: w.path("out/full1.cpkg"), delta: w.path("out/delta.cpkg"), manifest: m)
    }

    /// A client's base: the full package extracted.
    func clientBase(_ b: Built, _ name: String = "client/1") throws -> String {
        let base = b.w.mkdir(name)
        try SafeExtractor.extract(PackageReader(path: b.full, options: verifyOptions([key.publicKey])), into: base)
        return base
    }

    func apply(_ b: Built, base: String, to rel: String = "client/2", limits: Limits = Limits()) throws -> String {
        var vo = verifyOptions([key.publicKey])
        vo.limits = limits
        try DeltaApplier.apply(PackageReader(path: b.delta, options: vo), base: base, to: b.w.path(rel))
        return b.w.path(rel)
    }

    func size(_ p: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: p)[.size] as? Int) ?? -1 }

    @Test func fewLinesInTenOfAHundredTextFilesMakeOneSmallPatch() throws {
        let w = Workspace("f2-text")
        var files: [String: [UInt8]] = [:]
        for i in 0..<100 { files["sigs/d\(i % 5)/f\(i).ndb"] = bytes(Self.sigLines(120, seed: UInt64(i)).joined()) }
        let v1 = w.tree("v1", files)
        for i in stride(from: 0, to: 100, by: 10) {
            var lines = Self.sigLines(120, seed: UInt64(i))
            lines[7] = Self.sigLines(1, seed: UInt64(9000 + i))[0]
            lines[80] = Self.sigLines(1, seed: UInt64(9100 + i))[0]
            files["sigs/d\(i % 5)/f\(i).ndb"] = bytes(lines.joined())
        }
        let v2 = w.tree("v2", files)
        let b = try build(w, v1, v2)
        #expect(b.manifest.format == 2)
        #expect(b.manifest.files.isEmpty, "a format 2 delta does not list the tree")
        #expect(b.manifest.changes?.count == 10)
        #expect(b.manifest.patches?.count == 1, "small files share one patch")
        #expect(b.manifest.changes!.allSatisfy { $0.patch == 0 && $0.sha256 == nil })
        #expect(b.manifest.result?.files == 100)
        // Each file is ~7 KB; whole, the ten would be ~45 KB compressed. Patched, with the
        // manifest and signature: well under 3 KB.
        #expect(size(b.delta) < 3000, "delta is \(size(b.delta)) bytes")
        _ = try PackageVerifier.verify(path: b.delta, options: verifyOptions([key.publicKey]))
        let base = try clientBase(b)
        let before = readTree(base)
        let result = try apply(b, base: base)
        #expect(readTree(result) == readTree(v2))
        #expect(readTree(base) == before, "the base tree must not change")
    }

    @Test func aLargeBinaryWithScatteredChangesIsItsOwnPatch() throws {
        let w = Workspace("f2-binary")
        var blob = randomBytes(3 << 20, seed: 77)
        let v1 = w.tree("v1", ["db/main.bin": blob, "small.txt": bytes("x\n")])
        // 1 % of the bytes changed, in runs of up to 64 bytes.
        var changed = 0
        var k: UInt64 = 1
        let noise = randomBytes(1 << 16, seed: 78)
        while changed < blob.count / 100 {
            k = k &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let len = Int(k >> 58) + 1
            let at = Int((k >> 20) % UInt64(blob.count - 64))
            for j in 0..<len { blob[at + j] = noise[(at + j) % noise.count] }
            changed += len
        }
        blob += randomBytes(10_000, seed: 79)  // and some appended
        let v2 = w.tree("v2", ["db/main.bin": blob, "small.txt": bytes("x\n")])
        let b = try build(w, v1, v2)
        #expect(b.manifest.patches?.count == 1)
        #expect(b.manifest.changes?.first?.patch == 0)
        // The changed bytes are random: ~31 KB + 10 KB appended can't compress; the whole file is 3 MiB.
        #expect(size(b.delta) < 120_000, "delta is \(size(b.delta)) bytes")
        let result = try apply(b, base: try clientBase(b))
        #expect(readTree(result) == readTree(v2))
    }

    @Test func aRewrittenFileIsCarriedWholeNotPatched() throws {
        let w = Workspace("f2-whole")
        let v1 = w.tree(
            "v1", ["a.bin": randomBytes(200_000, seed: 1), "b.txt": bytes(Self.sigLines(50, seed: 3).joined())])
        // a.bin rewritten entirely: a patch would be no smaller than the file compressed alone.
        let v2 = w.tree(
            "v2", ["a.bin": randomBytes(200_000, seed: 2), "b.txt": bytes(Self.sigLines(50, seed: 3).joined())])
        let b = try build(w, v1, v2)
        #expect(b.manifest.patches?.isEmpty == true)
        #expect(b.manifest.changes?.first?.sha256 != nil)
        let result = try apply(b, base: try clientBase(b))
        #expect(readTree(result) == readTree(v2))
    }

    @Test func emptyFilesNewFilesRemovalsAndModes() throws {
        let w = Workspace("f2-edges")
        let text = bytes(Self.sigLines(200, seed: 5).joined())
        let v1 = w.tree(
            "v1",
            [
                "empty-then-full": [], "full-then-empty": text, "gone.txt": text, "keep.txt": text,
                "mode.txt": text, "dir/x": bytes("x"),
            ])
        var t2 = text
        t2[10] = 0x41
        let v2 = w.tree(
            "v2",
            [
                "empty-then-full": text, "full-then-empty": [], "keep.txt": t2, "mode.txt": text,
                "new/deep/file": bytes("n"), "dir/x": bytes("x"),
            ], modes: ["mode.txt": 0o600])
        let b = try build(w, v1, v2)
        let byPath = Dictionary(uniqueKeysWithValues: b.manifest.changes!.map { ($0.path, $0) })
        #expect(byPath["empty-then-full"]?.sha256 != nil, "no base content to patch from: whole")
        #expect(byPath["full-then-empty"]?.sha256 != nil, "empty result: whole")
        #expect(byPath["keep.txt"]?.patch != nil)
        #expect(byPath["mode.txt"]?.mode == "0600")
        #expect(b.manifest.removed == ["gone.txt"])
        let result = try apply(b, base: try clientBase(b))
        #expect(readTree(result) == readTree(v2))
        var st = stat()
        stat(result + "/mode.txt", &st)
        #expect(st.st_mode & 0o777 == 0o600)
    }

    @Test func aFileTurnedIntoADirectoryAndBack() throws {
        let w = Workspace("f2-filedir")
        let text = bytes(Self.sigLines(100, seed: 8).joined())
        let v1 = w.tree("v1", ["a": text, "b.txt": text])
        let v2 = w.tree("v2", ["a/inner.txt": text, "b.txt": text])
        let b12 = try build(w, v1, v2)
        #expect(b12.manifest.removed == ["a"])
        let r2 = try apply(b12, base: try clientBase(b12))
        #expect(readTree(r2) == readTree(v2))

        let w2 = Workspace("f2-dirfile")
        let u1 = w2.tree("v1", ["a/inner.txt": text, "b.txt": text])
        var back = text
        back[0] = 0x23
        let u2 = w2.tree("v2", ["a": back, "b.txt": text])
        let b21 = try build(w2, u1, u2)
        #expect(b21.manifest.changes?.first?.sha256 != nil, "a/inner.txt is no base for a: carried whole")
        let r1 = try apply(b21, base: try clientBase(b21))
        #expect(readTree(r1) == readTree(u2))
    }

    @Test func aChangedOrMissingBaseFileIsABaseMismatch() throws {
        let w = Workspace("f2-base")
        var files: [String: [UInt8]] = [:]
        for i in 0..<6 { files["f\(i).ndb"] = bytes(Self.sigLines(100, seed: UInt64(i)).joined()) }
        let v1 = w.tree("v1", files)
        files["f1.ndb"]![50] = 0x2a
        files["f4.ndb"]![20] = 0x2a
        let v2 = w.tree("v2", files)
        let b = try build(w, v1, v2)
        #expect(b.manifest.patches?.count == 1)

        // Same size, other content: the base digest catches it before decoding.
        let changed = try clientBase(b, "c1/1")
        var content = Array(FileManager.default.contents(atPath: changed + "/f4.ndb")!)
        content[0] ^= 1
        try Data(content).write(to: URL(fileURLWithPath: changed + "/f4.ndb"))
        expectCourierError(.baseMismatch, "differ from the ones it was built against") {
            _ = try apply(b, base: changed, to: "c1/2")
        }
        #expect(!FileManager.default.fileExists(atPath: w.path("c1/2")), "nothing is left behind")

        let missing = try clientBase(b, "c2/1")
        try FileManager.default.removeItem(atPath: missing + "/f1.ndb")
        expectCourierError(.baseMismatch, "f1.ndb is missing") { _ = try apply(b, base: missing, to: "c2/2") }

        let shorter = try clientBase(b, "c3/1")
        try Data(bytes("short")).write(to: URL(fileURLWithPath: shorter + "/f1.ndb"))
        expectCourierError(.baseMismatch, "is 5 bytes, the delta expects") {
            _ = try apply(b, base: shorter, to: "c3/2")
        }
    }

    @Test func theWindowCapIsHonouredOnBothSides() throws {
        let w = Workspace("f2-window")
        var big = randomBytes(1_500_000, seed: 11)
        let v1 = w.tree("v1", ["big.bin": big])
        big[1000] ^= 0xff
        let v2 = w.tree("v2", ["big.bin": big])
        // Stager side: base + new = 3 MB, above a 2 MiB cap: carried whole.
        let capped = try build(w, v1, v2, window: 2 << 20)
        #expect(capped.manifest.patches?.isEmpty == true)
        #expect(capped.manifest.changes?.first?.sha256 != nil)

        // Client side: a patch needing 3 MB is refused by a client with a 2 MiB cap, before
        // any payload is read.
        let w2 = Workspace("f2-window2")
        let u1 = w2.tree("v1", ["big.bin": readTree(v1)["big.bin"]!])
        let u2 = w2.tree("v2", ["big.bin": big])
        let b = try build(w2, u1, u2)
        #expect(b.manifest.patches?.count == 1)
        var small = Limits()
        small.maxDeltaWindow = 2 << 20
        expectCourierError(.limit, "delta_window") { _ = try apply(b, base: try clientBase(b), limits: small) }
        let ok = try apply(b, base: try clientBase(b, "client/1b"), to: "client/2b")
        #expect(readTree(ok) == readTree(u2))
    }

    @Test func unknownFormatsAndAlgorithmsSayToUpgrade() throws {
        let w = Workspace("f2-format")
        let v1 = w.tree("v1", ["a.txt": bytes(Self.sigLines(50, seed: 1).joined())])
        var t = bytes(Self.sigLines(50, seed: 1).joined())
        t[3] = 0x21
        let v2 = w.tree("v2", ["a.txt": t])
        let b = try build(w, v1, v2)
        var m3 = b.manifest
        m3.format = 3
        expectCourierError(.malformed, "upgrade Courier") { _ = try Manifest.decode(m3.encoded()) }
        var alg = b.manifest
        alg.patches![0].algorithm = "bsdiff"
        expectCourierError(.malformed, "upgrade Courier") { _ = try Manifest.decode(alg.encoded()) }
        // The manifest as written decodes to itself.
        #expect(try Manifest.decode(b.manifest.encoded()) == b.manifest)
    }

    @Test func theFrameWindowIsReadFromTheHeader() throws {
        // A real patch frame: its window must be what libzstd was told (and at least the data).
        let base = randomBytes(300_000, seed: 1)
        var new = base
        new[5] ^= 1
        let (frame, wlog) = try base.withUnsafeBytes { b in
            try new.withUnsafeBytes { try PatchCodec.compress(base: b, new: $0) }
        }
        #expect(wlog == 20)
        let declared = frame.withUnsafeBytes { PatchCodec.frameWindowSize($0) }
        #expect(declared != nil && declared! <= 1 << 20 && declared! >= 300_000)
        // Refused when the manifest allows less than the frame declares (here a single-segment
        // frame: its window is its content size, 300,000 > 2^18).
        expectCourierError(.integrity, "more than the 2^18") {
            _ = try frame.withUnsafeBytes { f in
                try base.withUnsafeBytes { b in
                    try PatchCodec.decompress(patch: f, base: b, resultSize: new.count, windowLog: 18, what: "patch 0")
                }
            }
        }
        // Hand-made headers: Window_Descriptor 0x58 = 2^(10+11) + 0; single segment with a
        // 2-byte content size (value + 256); a skippable frame and garbage are not frames.
        func window(_ b: [UInt8]) -> UInt64? { b.withUnsafeBytes { PatchCodec.frameWindowSize($0) } }
        #expect(window([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58]) == 1 << 21)
        #expect(window([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x5b]) == (1 << 21) + 3 * (1 << 18))
        #expect(window([0x28, 0xb5, 0x2f, 0xfd, 0x60, 0x10, 0x00]) == 16 + 256)
        #expect(window([0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]) == nil)
        #expect(window([0x28, 0xb5, 0x2f, 0xfd, 0x08, 0x58]) == nil, "reserved bit set")
    }

    @Test func theFileListDigestFollowsTheSpec() throws {
        // FORMAT §3.5: SHA-256 over "<mode> <size> <sha256> <path>\n", byte order of path.
        let a = FileEntry(path: "b/z", size: 3, sha256: String(repeating: "a", count: 64), mode: 0o644)
        let b = FileEntry(path: "b/\u{E9}", size: 0, sha256: String(repeating: "b", count: 64), mode: 0o600)
        let c = FileEntry(path: "a", size: 12, sha256: String(repeating: "c", count: 64), mode: 0o755)
        let text = "0755 12 \(c.sha256) a\n0644 3 \(a.sha256) b/z\n0600 0 \(b.sha256) b/\u{E9}\n"
        let expected = Hex.encode(SHA256.hash(data: Array(text.utf8)))
        let s = TreeDigest.summary(of: [a, b, c])
        #expect(s.digest == expected)
        #expect(s.files == 3 && s.bytes == 15)
    }
}
