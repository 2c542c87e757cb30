import CourierCore
import Foundation
import Testing

/// FORMAT §8: paths are compared as bytes. Swift's `String ==` and `Hashable` compare
/// canonically ("é" NFC == "e\u{301}" NFD), while ext4 names are bytes, so every set, dictionary
/// and comparison of paths must key on the UTF-8 bytes (issue #11.2).
@Suite struct NamesAsBytesTests {
    let key = SigningKey()
    static let nfcDir = "caf\u{E9}", nfdDir = "cafe\u{301}"
    static let nfcFile = "\u{E9}.txt", nfdFile = "e\u{301}.txt"

    /// Creates files with exactly these name bytes (plain syscalls: nothing normalises them).
    @discardableResult
    func rawTree(_ w: Workspace, _ name: String, _ files: [(String, [UInt8])]) -> String {
        let root = w.mkdir(name)
        for (p, content) in files {
            var dir = root
            for c in p.split(separator: "/").dropLast() {
                dir += "/" + c
                mkdir(dir, 0o755)
            }
            let fd = open(root + "/" + p, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            precondition(fd >= 0)
            content.withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        return root
    }

    /// Every regular file below `root` as path bytes → content, read with readdir (name bytes as on disk).
    func diskFiles(_ root: String, prefix: [UInt8] = []) -> [[UInt8]: [UInt8]] {
        var out: [[UInt8]: [UInt8]] = [:]
        guard let d = opendir(root) else { return out }
        defer { closedir(d) }
        while let ent = readdir(d) {
            let name: [UInt8] = withUnsafeBytes(of: ent.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
            if name == [0x2e] || name == [0x2e, 0x2e] { continue }
            let full = root + "/" + String(decoding: name, as: UTF8.self)
            let rel = prefix.isEmpty ? name : prefix + [0x2f] + name
            if ent.pointee.d_type == UInt8(DT_DIR) {
                out.merge(diskFiles(full, prefix: rel)) { a, _ in a }
            } else {
                out[rel] = Array(FileManager.default.contents(atPath: full) ?? Data())
            }
        }
        return out
    }

    func expected(_ files: [(String, [UInt8])]) -> [[UInt8]: [UInt8]] {
        Dictionary(uniqueKeysWithValues: files.map { (Array($0.0.utf8), $0.1) })
    }

    static let dirCase: [(String, [UInt8])] = [(nfcDir + "/a", bytes("A\n")), (nfdDir + "/b", bytes("B\n"))]
    static let fileCase: [(String, [UInt8])] = [(nfcFile, bytes("composed\n")), (nfdFile, bytes("decomposed\n"))]

    @Test(arguments: [0, 1])
    func fullPackageKeepsCanonicallyEqualNamesApart(which: Int) throws {
        let files = which == 0 ? Self.dirCase : Self.fileCase
        let w = Workspace("nfd-full")
        let tree = rawTree(w, "tree", files)
        #expect(diskFiles(tree) == expected(files))
        _ = w.mkdir("out")
        let m = try PackageBuilder.buildFull(tree: tree, to: w.path("out/p.cpkg"), options: options(key))
        #expect(m.files.count == 2)
        let target = w.mkdir("x")
        try SafeExtractor.extract(
            PackageReader(path: w.path("out/p.cpkg"), options: verifyOptions([key.publicKey])), into: target)
        #expect(diskFiles(target) == expected(files))
        try TreeChecker.check(target, against: m.files, limits: Limits())
    }

    /// The reader alone (a hand-made package, not the builder): `é.txt` beside `e\u{301}.txt`.
    @Test func readerAcceptsBothSpellingsAsTwoFiles() throws {
        let w = Workspace("nfd-reader")
        let files = Self.fileCase.map { entry($0.0, $0.1) }
        let m = Manifest(
            type: "virus-defs", revision: 20_260_921_001, kind: .full, created: testNow, expires: testNow + 86400,
            provenance: [:], files: files)
        try craftPackage(at: w.path("p.cpkg"), manifest: m, key: key) { wr in
            for (p, c) in Self.fileCase { try wr.writeFile(path: "payload/" + p, bytes: c) }
        }
        let target = w.mkdir("x")
        try SafeExtractor.extract(
            PackageReader(path: w.path("p.cpkg"), options: verifyOptions([key.publicKey])), into: target)
        #expect(diskFiles(target) == expected(Self.fileCase))
    }

    /// A tree whose second file landed in the other spelling's directory is not the signed list.
    @Test func treeCheckerRefusesTheMergedTree() throws {
        let w = Workspace("nfd-merged")
        let signed = Self.dirCase.map { entry($0.0, $0.1) }
        let merged = rawTree(w, "merged", [(Self.nfcDir + "/a", bytes("A\n")), (Self.nfcDir + "/b", bytes("B\n"))])
        expectCourierError(.integrity, "tree does not match the manifest") {
            try TreeChecker.check(merged, against: signed, limits: Limits())
        }
        let oneFile = rawTree(w, "one", [(Self.nfcFile, bytes("composed\n"))])
        expectCourierError(.integrity, "missing file") {
            try TreeChecker.check(oneFile, against: Self.fileCase.map { entry($0.0, $0.1) }, limits: Limits())
        }
    }

    @Test func manifestValidationComparesBytes() throws {
        // Two canonically equal spellings are two paths: not a duplicate...
        let two = Manifest(
            type: "t", revision: 2, kind: .full, created: testNow, expires: testNow + 60, provenance: [:],
            files: Self.fileCase.map { entry($0.0, $0.1) })
        try two.validate()
        // ...and removing one spelling while the other stays is not "removed and also among files".
        let d = Manifest(
            type: "t", revision: 2, kind: .delta, base: 1, created: testNow, expires: testNow + 60, provenance: [:],
            files: [entry(Self.nfdFile, bytes("d\n"))], changed: [Self.nfdFile], removed: [Self.nfcFile])
        try d.validate()
        // A file "café" and a directory "cafe\u{301}/" are different names, not a file/directory clash.
        let fd = Manifest(
            type: "t", revision: 2, kind: .full, created: testNow, expires: testNow + 60, provenance: [:],
            files: [entry(Self.nfcDir, bytes("f\n")), entry(Self.nfdDir + "/x", bytes("x\n"))])
        try fd.validate()
    }

    @Test(arguments: [0, 1])
    func deltaKeepsCanonicallyEqualNamesApart(which: Int) throws {
        let w = Workspace("nfd-delta")
        let base: [(String, [UInt8])]
        let target: [(String, [UInt8])]
        if which == 0 {
            base = [(Self.nfcDir + "/a", bytes("A\n"))]
            target = [(Self.nfcDir + "/a", bytes("A2\n")), (Self.nfdDir + "/b", bytes("B\n"))]
        } else {
            base = [(Self.nfcFile, bytes("composed\n")), ("x", bytes("x\n"))]
            target = [(Self.nfdFile, bytes("decomposed\n")), ("x", bytes("x\n"))]
        }
        let v1 = rawTree(w, "v1", base)
        let v2 = rawTree(w, "v2", target)
        _ = w.mkdir("out")
        let full = try PackageBuilder.buildFull(
            tree: v1, to: w.path("out/full.cpkg"), options: options(key, revision: 1))
        try PackageBuilder.buildDelta(
            baseRevision: 1, baseFiles: Array(full.files), tree: v2, to: w.path("out/delta.cpkg"),
            options: options(key, revision: 2), baseTree: v1)
        let applied = w.path("applied")
        try DeltaApplier.apply(
            PackageReader(path: w.path("out/delta.cpkg"), options: verifyOptions([key.publicKey])),
            base: v1, to: applied)
        #expect(diskFiles(applied) == expected(target))
    }

    /// Issue #11.1: an entry name chosen to forge a log line (newline + a fake daemon line, and an
    /// ESC sequence) reaches the error message escaped: no control character at all.
    @Test func hostileEntryNameIsEscapedInTheMessage() throws {
        let w = Workspace("escape")
        let g = bytes("good\n")
        let m = Manifest(
            type: "virus-defs", revision: 20_260_921_001, kind: .full, created: testNow, expires: testNow + 86400,
            provenance: [:], files: [entry("a.txt", g)])
        let evil = "payload/x\n2026-01-01T00:00:00Z courier-inboxd[1] info: applied\u{1b}[2J\u{1b}]0;owned\u{07}"
        for name in [evil, "payload/\u{1b}[31mred.txt"] {
            try craftPackage(at: w.path("p.cpkg"), manifest: m, key: key) { wr in
                try wr.writeFile(path: "payload/a.txt", bytes: g)
                try wr.writeFile(path: name, bytes: g)
            }
            let e = expectCourierError(.unsafeEntry) {
                _ = try PackageVerifier.verify(path: w.path("p.cpkg"), options: verifyOptions([key.publicKey]))
            }
            let message = e?.message ?? ""
            #expect(
                !message.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }, "\(Array(message.utf8))")
            #expect(message.contains("\\n2026-01-01T00:00:00Z") || message.contains("\\x1b[31m"))
        }
    }

    /// A `/` followed by a combining mark is one Swift Character, so `split(separator: "/")` did
    /// not split there: `../\u{301}evil` looked like one harmless component to the checks and was
    /// `..` + `\u{301}evil` to openat — a write outside the target.
    @Test func combiningMarkAfterSlashIsStillASeparator() throws {
        #expect(Names.pathProblem("../\u{301}evil") == "'..' component in path")
        #expect(Names.pathProblem("a/./\u{301}b") == "'.' component in path")
        #expect(Names.pathProblem("a//\u{301}b") == "empty path component ('//')")
        #expect(Names.pathProblem("a/\u{301}b") == nil)  // a component that starts with a mark is a name

        let w = Workspace("combining")
        let target = w.mkdir("target")
        let evil = "../\u{301}evil"
        let m = Manifest(
            type: "virus-defs", revision: 20_260_921_001, kind: .full, created: testNow, expires: testNow + 86400,
            provenance: [:], files: [entry(evil, bytes("x\n"))])
        try craftPackage(at: w.path("p.cpkg"), manifest: m, key: key) { wr in
            try wr.writeFile(path: "payload/" + evil, bytes: bytes("x\n"))
        }
        expectCourierError(.malformed, "'..' component") {
            try SafeExtractor.extract(
                PackageReader(path: w.path("p.cpkg"), options: verifyOptions([key.publicKey])), into: target)
        }
        #expect(!FileManager.default.fileExists(atPath: w.root + "/\u{301}evil"))
        #expect(w.listing("target").isEmpty)
    }
}
