import CourierCore
import Foundation
import Testing

/// A decoded manifest keeps its file list compact (FileList over CompactFileList, issue #13.2):
/// it must read, compare and refuse exactly as a list given in memory does, and the consuming
/// decoder (which gives the JSON's pages back as it goes) must produce the same manifest.
@Suite struct FileListTests {
    static func manyFiles(_ n: Int) -> [FileEntry] {
        (0..<n).map { (i: Int) -> FileEntry in
            let path = String(format: "rules/set-%03d/rule-%06d.yar", i / 1000, i)
            let mode: UInt32 = i % 5 == 0 ? 0o755 : 0o644
            return FileEntry(path: path, size: UInt64(i * 7), sha256: sha256Hex(Array("content \(i)".utf8)), mode: mode)
        }
    }

    @Test func decodedListEqualsTheListItWasWrittenFrom() throws {
        // Over a MiB of JSON, so that the consuming decoder releases pages while it parses.
        let files = Self.manyFiles(20_000)
        let m = Manifest(
            type: "rules", revision: 7, kind: .full, created: testNow, expires: testNow + 86400,
            provenance: ["files": "x"], files: files)
        let bytes = m.encoded()
        #expect(bytes.count > 2 << 20)
        let d = try Manifest.decode(bytes)
        #expect(d.files.isCompact)
        #expect(!m.files.isCompact)
        #expect(d == m)
        let sameList = Array(d.files) == files  // not inside #expect: a failure would diff 20,000 entries
        #expect(sameList)
        #expect(d.files.totalSize == files.reduce(0) { $0 + $1.size })
        #expect(d.files.index(ofPath: files[12_345].path) == 12_345)
        #expect(d.files.index(ofPath: files[0].path) == 0 && d.files.index(ofPath: files[19_999].path) == 19_999)
        #expect(d.files.index(ofPath: "rules/set-012/rule-012345.ya") == nil)
        var consumed = bytes  // shares the buffer with `bytes`, which must come through untouched
        let c = try Manifest.decode(consuming: &consumed)
        #expect(consumed.isEmpty)
        #expect(try Manifest.decode(bytes) == m)
        #expect(c == m)
        let sameBytes = c.encoded() == bytes
        #expect(sameBytes)
        // Writing an element turns the list back into entries, and validation sees the change.
        var e = d
        e.files[3].mode = "4755"
        #expect(!e.files.isCompact)
        expectCourierError(.malformed, "four octal digits") { try e.validate() }
    }

    /// The rules the compact path checks apart from the parser: path problems, a file that is
    /// also a directory, delta lists against files.
    @Test func decodedListsAreRefusedForTheSameReasons() throws {
        let h = String(repeating: "0", count: 64)
        func f(_ p: String) -> String { "{\"mode\":\"0644\",\"path\":\"\(p)\",\"sha256\":\"\(h)\",\"size\":1}" }
        func manifest(_ files: [String], delta: String = "") -> [UInt8] {
            let kind = delta.isEmpty ? "\"kind\":\"full\"" : "\"base\":1,\"kind\":\"delta\",\(delta)"
            return Array(
                """
                {"created":"2026-01-01T00:00:00Z","expires":"2027-01-01T00:00:00Z","files":[\(files.map(f).joined(separator: ","))],\
                "format":1,\(kind),"provenance":{},"revision":2,"type":"t"}
                """.utf8)
        }
        _ = try Manifest.decode(manifest(["a", "a-b", "a.b", "b/c"]))
        let cases: [([UInt8], String)] = [
            (manifest(["a", "a-b", "a/x"]), "listed as a file and as the directory of 'a/x'"),
            (manifest(["d", "d/e/f"]), "listed as a file and as the directory of 'd/e/f'"),
            (manifest(["../x"]), "file '../x'"),
            (manifest(["a//b"]), "file 'a//b'"),
            (manifest(["b", "a"]), "not sorted"),
            (manifest(["a"], delta: "\"changed\":[\"b\"],\"removed\":[]"), "changed path 'b' is not among files"),
            (manifest(["a"], delta: "\"changed\":[],\"removed\":[\"a\"]"), "removed path 'a' is also among files"),
        ]
        for (bytes, reason) in cases {
            expectCourierError(.malformed, reason) { _ = try Manifest.decode(bytes) }
            var b = bytes
            expectCourierError(.malformed, reason) { _ = try Manifest.decode(consuming: &b) }
        }
    }

    /// The verifier decodes with `keepManifestBytes: false`; the extractor keeps them. Both read
    /// a package of many files, and a changed byte of one file is still found.
    @Test func verifierAndReaderAgreeOnAPackageOfManyFiles() throws {
        let w = Workspace("filelist")
        var contents: [String: [UInt8]] = [:]
        for i in 0..<3_000 { contents[String(format: "r/%02d/f%05d.txt", i / 100, i)] = Array("rule \(i)\n".utf8) }
        let tree = w.tree("t", contents)
        _ = w.mkdir("out")
        let key = SigningKey()
        let pkg = w.path("out/rules_1.cpkg")
        let m = try PackageBuilder.buildFull(tree: tree, to: pkg, options: options(key, type: "rules", revision: 1))
        let v = try PackageVerifier.verify(path: pkg, options: verifyOptions([key.publicKey]))
        #expect(v.manifest == m)
        #expect(v.manifest.files.isCompact)
        let r = try PackageReader(path: pkg, options: verifyOptions([key.publicKey]))
        #expect(try Manifest.decode(r.manifestBytes) == m)
        let quiet = try PackageReader(path: pkg, options: verifyOptions([key.publicKey]), keepManifestBytes: false)
        #expect(quiet.manifestBytes.isEmpty)
        #expect(quiet.manifest == m)
    }
}
