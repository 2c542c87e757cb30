import CourierCore
import Foundation
import Testing

/// The byte-level reader of a manifest's `files` (CompactFileList) must see exactly what
/// JSONDecoder sees in `Manifest.decode`, and refuse what the format refuses.
@Suite struct CompactFileListTests {
    static func digest(_ s: String) -> [UInt8] {
        let u = Array(s.utf8)
        return stride(from: 0, to: u.count, by: 2).map {
            UInt8(String(decoding: u[$0..<($0 + 2)], as: UTF8.self), radix: 16)!
        }
    }

    @Test func agreesWithTheManifestDecoder() throws {
        var files: [FileEntry] = []
        let names = [
            "a.txt", "caf\u{E9}/x", "cafe\u{301}/x", "dir/\u{1F600}.yar", "quo\"te", "sp ace",
            "z/del",
        ]
        for (i, n) in names.enumerated() {
            files.append(
                FileEntry(
                    path: n, size: UInt64(i * 1000 + 7), sha256: sha256Hex(Array(n.utf8)),
                    mode: i % 2 == 0 ? 0o644 : 0o755))
        }
        let m = Manifest(
            type: "virus-defs", revision: 20_260_921_001, kind: .full, created: testNow, expires: testNow + 86400,
            provenance: ["files": "not this one"], files: files)
        let bytes = m.encoded()
        let decoded = try Manifest.decode(bytes)
        let t = try CompactFileList.parse(bytes)
        let list = FileList(table: t)
        #expect(t.count == decoded.files.count)
        for (i, f) in decoded.files.enumerated() {
            #expect(Array(t.path(i)) == Array(f.path.utf8))
            #expect(t.size(i) == f.size)
            #expect(t.mode(i) == f.permissions)
            #expect(Array(t.digest(i)) == Self.digest(f.sha256))
            #expect(list.index(ofPath: f.path) == i)
        }
        #expect(list.index(ofPath: "nope") == nil)
        #expect(t.totalBytes == decoded.files.reduce(0) { $0 + $1.size })
    }

    /// Escapes, key order, whitespace and unknown keys as another writer may produce them.
    @Test func handWrittenJSON() throws {
        let h = String(repeating: "ab", count: 32)
        let json = """
            { "format": 1, "extra": {"nested": [1, true, false, "x", {"files": []}]},
              "files": [ {"mode": "0600", "sha256": "\(h)", "unknown": [1,2], "size": 0, "path": "a\\u00e9\\/b"},
                         {"path": "b\\ud83d\\ude00", "size": 18446744073709551615, "sha256": "\(h)", "mode": "0777"} ],
              "type": "t" }
            """
        let t = try CompactFileList.parse(Array(json.utf8))
        #expect(t.count == 2)
        #expect(Array(t.path(0)) == Array("a\u{E9}/b".utf8))
        #expect(Array(t.path(1)) == Array("b\u{1F600}".utf8))
        #expect(t.size(1) == UInt64.max)
        #expect(t.mode(0) == 0o600)
        #expect(t.mode(1) == 0o777)
    }

    @Test func refusals() {
        let h = String(repeating: "0", count: 64)
        func f(_ path: String, sha: String = h, mode: String = "0644", size: String = "1") -> String {
            "{\"path\":\"\(path)\",\"size\":\(size),\"sha256\":\"\(sha)\",\"mode\":\"\(mode)\"}"
        }
        let cases: [(String, String)] = [
            ("{\"files\":[\(f("b")),\(f("a"))]}", "not sorted"),
            ("{\"files\":[\(f("a")),\(f("a"))]}", "listed twice"),
            ("{\"files\":[\(f("a", sha: String(repeating: "A", count: 64)))]}", "sha256"),
            ("{\"files\":[\(f("a", sha: "00"))]}", "sha256"),
            ("{\"files\":[\(f("a", mode: "1644"))]}", "mode"),
            ("{\"files\":[\(f("a", mode: "0648"))]}", "mode"),
            ("{\"files\":[\(f("a", size: "18446744073709551616"))]}", "too large"),
            ("{\"files\":[{\"path\":\"a\",\"size\":1,\"mode\":\"0644\"}]}", "needs path, size, sha256 and mode"),
            ("{\"files\":[\(f("\\ud800x"))]}", "lone surrogate"),
            ("{\"type\":\"t\"}", "no files array"),
            ("{\"files\":[\(f("a"))", "unexpected end"),
        ]
        for (json, reason) in cases {
            expectCourierError(.malformed, reason) { _ = try CompactFileList.parse(Array(json.utf8)) }
        }
        expectCourierError(.limit, "limit of 1") {
            _ = try CompactFileList.parse(Array("{\"files\":[\(f("a")),\(f("b"))]}".utf8), maxFiles: 1)
        }
    }
}
