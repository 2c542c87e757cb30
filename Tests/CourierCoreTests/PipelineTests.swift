import CArchive
import CourierCore
import Foundation
import Testing

/// The pipelined reader (decompression on its own thread, a ring of 4 × 1 MiB ahead of the
/// hashing thread) and the threaded writer (zstd workers). The hostile-archive suites already run
/// every refusal through the pipeline with small packages; these use packages larger than the
/// ring, so that the decoder thread is blocked on a full ring when the reader refuses, and check
/// that it stops, that nothing is trusted early, and that threaded compression writes the same
/// tar stream.
@Suite struct PipelineTests {
    let key = SigningKey()

    /// ~10 MiB over 7 files: text that compresses, random bytes that do not, an empty file, and
    /// sizes that straddle the ring's 1 MiB slots.
    static let contents: [(String, [UInt8])] = {
        var text: [UInt8] = []
        var n = 0
        while text.count < 3_000_000 {
            text += Array(
                "Win.Trojan.Agent-\(n):0:*:\(String(n &* 2_654_435_761 % 1_000_003, radix: 16))deadbeefcafe\n".utf8)
            n += 1
        }
        return [
            ("a/text.ndb", text), ("a/blob.cdb", randomBytes(3 << 20, seed: 11)), ("b/empty", []),
            ("b/one", [0x41]), ("b/slot", randomBytes(1 << 20, seed: 12)),
            ("c/straddle", randomBytes((1 << 20) + 511, seed: 13)), ("c/tail.txt", Array(text.prefix(700_000))),
        ]
    }()

    func build(_ w: Workspace) throws -> String {
        let tree = w.tree("tree", Dictionary(uniqueKeysWithValues: Self.contents))
        try PackageBuilder.buildFull(tree: tree, to: w.path("p.cpkg"), options: options(key))
        return w.path("p.cpkg")
    }

    func verify(_ path: String, limits: Limits = Limits()) throws {
        var o = verifyOptions([key.publicKey])
        o.limits = limits
        _ = try PackageVerifier.verify(path: path, options: o)
    }

    @Test func largePackageVerifiesAndExtractsExactly() throws {
        let w = Workspace("pipe")
        let pkg = try build(w)
        try verify(pkg)
        let target = w.mkdir("x")
        try SafeExtractor.extract(PackageReader(path: pkg, options: verifyOptions([key.publicKey])), into: target)
        #expect(readTree(target) == Dictionary(uniqueKeysWithValues: Self.contents))
    }

    /// Bytes after the compressed stream of a package larger than the ring.
    @Test func trailingBytesAfterALargePackage() throws {
        let w = Workspace("pipe-tail")
        let pkg = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try build(w))))
        for (name, tail) in [("garbage", randomBytes(3000, seed: 5)), ("zeros", [UInt8](repeating: 0, count: 512))] {
            try Data(pkg + tail).write(to: URL(fileURLWithPath: w.path(name)))
            expectCourierError(.malformed) { try verify(w.path(name)) }
        }
    }

    /// A package cut short, at several points (inside the manifest's frame data, mid-payload, near the end).
    @Test func truncatedLargePackage() throws {
        let w = Workspace("pipe-cut")
        let pkg = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try build(w))))
        for cut in [pkg.count / 3, pkg.count / 2, pkg.count - 100, pkg.count - 1] {
            try Data(pkg.prefix(cut)).write(to: URL(fileURLWithPath: w.path("cut")))
            expectCourierError(.malformed) { try verify(w.path("cut")) }
        }
    }

    /// A wrong hash on the first of several large entries: the reader refuses while the decoder
    /// thread waits on a full ring; it must be stopped (the test would hang otherwise), and
    /// nothing of the entry stays in the target.
    @Test func badHashEarlyInALargePackage() throws {
        let w = Workspace("pipe-hash")
        let big = randomBytes(6 << 20, seed: 21)
        var altered = big
        altered[5 << 20] ^= 1
        let files = [entry("a.bin", big), entry("b.bin", big), entry("c.bin", big)]
        let m = Manifest(
            type: "virus-defs", revision: 20_260_921_001, kind: .full, created: testNow, expires: testNow + 86400,
            provenance: [:], files: files)
        try craftPackage(at: w.path("p.cpkg"), manifest: m, key: key) { wr in
            try wr.writeFile(path: "payload/a.bin", bytes: altered)
            try wr.writeFile(path: "payload/b.bin", bytes: big)
            try wr.writeFile(path: "payload/c.bin", bytes: big)
        }
        expectCourierError(.integrity, "does not match the manifest") { try verify(w.path("p.cpkg")) }
        let target = w.mkdir("x")
        expectCourierError(.integrity, "payload/a.bin") {
            try SafeExtractor.extract(
                PackageReader(path: w.path("p.cpkg"), options: verifyOptions([key.publicKey])), into: target)
        }
        #expect(w.listing("x").isEmpty)
        // Opened and dropped without reading the payload: the decoder thread stops too.
        for _ in 0..<20 { _ = try PackageReader(path: w.path("p.cpkg"), options: verifyOptions([key.publicKey])) }
    }

    /// A compression bomb larger than the ring is refused by the ratio bound as it streams.
    @Test func expansionBoundWithTheDecoderAhead() throws {
        let w = Workspace("pipe-bomb")
        let zeros = [UInt8](repeating: 0, count: 96 << 20)
        let m = Manifest(
            type: "virus-defs", revision: 20_260_921_001, kind: .full, created: testNow, expires: testNow + 86400,
            provenance: [:], files: [entry("z", zeros)])
        try craftPackage(at: w.path("p.cpkg"), manifest: m, key: key) { wr in
            try wr.writeFile(path: "payload/z", bytes: zeros)
        }
        var l = Limits()
        l.maxExpansionRatio = 100
        expectCourierError(.limit, "compression bomb") { try verify(w.path("p.cpkg"), limits: l) }
        l.maxExpansionRatio = 1 << 40
        try verify(w.path("p.cpkg"), limits: l)
    }

    /// A delta carrying two of many files: the index finds carried paths by bytes and refuses the rest.
    @Test func deltaCarriesOnlyChangedPaths() throws {
        let w = Workspace("pipe-delta")
        let a = bytes("one\n")
        let b = bytes("two\n")
        let c = bytes("three\n")
        let base = [entry("a", a), entry("b", bytes("old\n")), entry("c", c)]
        let tree = w.tree("t", ["a": a, "b": b, "c": c, "d/e": c])
        var o = options(key)
        o.revision = 20_260_921_002
        o.deltaFormat = 1  // the format 1 index: carried paths among the whole list (format 2: DeltaFormat2Tests)
        try PackageBuilder.buildDelta(
            baseRevision: 20_260_921_001, baseFiles: base, tree: tree, to: w.path("d.cpkg"), options: o)
        try verify(w.path("d.cpkg"))
        // A delta that carries an unchanged file besides the changed ones.
        let m = Manifest(
            type: "virus-defs", revision: 20_260_921_002, kind: .delta, base: 20_260_921_001, created: testNow,
            expires: testNow + 86400, provenance: [:], files: [entry("a", a), entry("b", b), entry("c", c)],
            changed: ["b"], removed: [])
        try craftPackage(at: w.path("x.cpkg"), manifest: m, key: key) { wr in
            try wr.writeFile(path: "payload/b", bytes: b)
            try wr.writeFile(path: "payload/c", bytes: c)
        }
        expectCourierError(.unsafeEntry, "not in the manifest") { try verify(w.path("x.cpkg")) }
    }

    /// Threaded zstd writes the same tar stream as inline zstd (only the frame's bytes differ),
    /// and both verify.
    @Test func threadedCompressionWritesTheSameTarStream() throws {
        let w = Workspace("pipe-threads")
        var streams: [[UInt8]] = []
        for threads in [0, 1, 2, 4] {
            let path = w.path("t\(threads).tar.zst")
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            let wr = try ArchiveWriter(fd: fd, display: path, compression: .zstd, threads: threads)
            for (p, data) in Self.contents { try wr.writeFile(path: "payload/" + p, bytes: data, mtime: testNow) }
            try wr.finish()
            close(fd)
            streams.append(try decompressed(path))
        }
        #expect(streams[0].count > 8 << 20)
        for s in streams.dropFirst() { #expect(s == streams[0]) }

        // And a package built by PackageBuilder (threads: one per core) verifies.
        let pkg = try build(w)
        try verify(pkg)
    }

    /// Very repetitive content (48 MiB, one changing byte per 4 KiB, as InboxdE2ETests builds)
    /// compresses beyond the readers' default expansion bound in 4 MiB frames; the threaded
    /// writer pads such frames with skippable frames, so its own package verifies with the
    /// default limits, and the tar stream is unchanged.
    @Test func repetitiveContentStaysUnderTheExpansionBound() throws {
        let w = Workspace("pipe-ratio")
        var big = [UInt8](repeating: 0, count: 48 << 20)
        for j in stride(from: 0, to: big.count, by: 4096) { big[j] = UInt8(truncatingIfNeeded: j / 4096 &* 31 &+ 1) }
        let path = w.path("r.tar.zst")
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let wr = try ArchiveWriter(fd: fd, display: path, compression: .zstd, threads: 2)
        try wr.writeFile(path: "payload/main.cvd", bytes: big, mtime: testNow)
        try wr.finish()
        close(fd)
        #expect(try decompressed(path).count > 48 << 20)
        let tree = w.tree("t", ["main.cvd": big, "daily.ndb": bytes("revision 1\n")])
        try PackageBuilder.buildFull(tree: tree, to: w.path("p.cpkg"), options: options(key))
        try verify(w.path("p.cpkg"))
    }

    /// The decompressed bytes of a file, through libarchive's raw format.
    func decompressed(_ path: String) throws -> [UInt8] {
        let a = archive_read_new()!
        defer { archive_read_free(a) }
        archive_read_support_format_raw(a)
        archive_read_support_filter_zstd(a)
        guard archive_read_open_filename(a, path, 1 << 16) == ARCHIVE_OK else {
            throw CourierError(.io, "open \(path)")
        }
        var e: OpaquePointer? = nil
        guard archive_read_next_header(a, &e) == ARCHIVE_OK else { throw CourierError(.io, "header \(path)") }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buf.withUnsafeMutableBytes { archive_read_data(a, $0.baseAddress, $0.count) }
            if n < 0 { throw CourierError(.io, "read \(path)") }
            if n == 0 { return out }
            out += buf[0..<n]
        }
    }
}
