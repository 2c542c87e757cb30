import CourierCore
import Foundation
import Testing

@Suite struct RoundTripTests {
    let key = SigningKey()

    func sampleTree(_ w: Workspace, _ name: String = "v1") -> String {
        w.tree(
            name,
            [
                "main.cvd": randomBytes(300_000, seed: 1),
                "daily/rules.ndb": bytes("rule-1\nrule-2\n"),
                "daily/deep/x.yara": randomBytes(5_000, seed: 2),
                "empty.txt": [],
                "règles/Überwachung.rules": bytes("alert any\n"),
                "bin/tool.sh": bytes("#!/bin/sh\necho hi\n"),
            ], modes: ["bin/tool.sh": 0o755])
    }

    @Test(arguments: Compression.allCases)
    func fullRoundTrip(compression: Compression) throws {
        let w = Workspace("full")
        let tree = sampleTree(w)
        let pkg = w.path("out/virus-defs_20260921001.cpkg")
        _ = w.mkdir("out")
        let m = try PackageBuilder.buildFull(tree: tree, to: pkg, options: options(key, compression: compression))
        #expect(m.files.count == 6)
        #expect(w.listing("out") == ["virus-defs_20260921001.cpkg"])  // no temporary left

        let v = try PackageVerifier.verify(path: pkg, options: verifyOptions([key.publicKey]))
        #expect(v.signers == [key.keyID])
        #expect(v.manifest == m)

        let target = w.mkdir("x")
        try SafeExtractor.extract(PackageReader(path: pkg, options: verifyOptions([key.publicKey])), into: target)
        #expect(readTree(target) == readTree(tree))
        try TreeChecker.check(target, against: m.files, limits: Limits())
        var st = stat()
        stat(target + "/bin/tool.sh", &st)
        #expect(st.st_mode & 0o7777 == 0o755)
    }

    @Test(arguments: [DeltaApplier.CopyMode.copy, .hardlink], [1, 2])
    func deltaAppliedToBaseGivesExactlyTheTarget(copyMode: DeltaApplier.CopyMode, format: Int) throws {
        let w = Workspace("delta")
        let v1 = sampleTree(w, "v1")
        let v2 = sampleTree(w, "v2")
        // Change one, add two (one in a new directory), remove a file and a whole directory,
        // turn a directory into a file, and change only a mode.
        try Data(randomBytes(300_000, seed: 9)).write(to: URL(fileURLWithPath: v2 + "/main.cvd"))
        try Data(bytes("new")).write(to: URL(fileURLWithPath: v2 + "/added.txt"))
        try FileManager.default.createDirectory(atPath: v2 + "/newdir/sub", withIntermediateDirectories: true)
        try Data(bytes("n")).write(to: URL(fileURLWithPath: v2 + "/newdir/sub/n.txt"))
        try FileManager.default.removeItem(atPath: v2 + "/daily")
        try Data(bytes("daily is a file now")).write(to: URL(fileURLWithPath: v2 + "/daily"))
        chmod(v2 + "/empty.txt", 0o600)

        _ = w.mkdir("out")
        let full1 = try PackageBuilder.buildFull(
            tree: v1, to: w.path("out/full1.cpkg"), options: options(key, revision: 1))
        var o = options(key, revision: 2)
        o.deltaFormat = format
        let dm = try PackageBuilder.buildDelta(
            baseRevision: 1, baseFiles: Array(full1.files), tree: v2,
            to: w.path("out/delta.cpkg"), options: o, baseTree: v1)
        #expect(dm.format == format)
        #expect(dm.changed == ["added.txt", "daily", "empty.txt", "main.cvd", "newdir/sub/n.txt"])
        #expect(dm.removed == ["daily/deep/x.yara", "daily/rules.ndb"])
        #expect(dm.resultFileCount == 7)

        let base = w.mkdir("store/1")
        try SafeExtractor.extract(
            PackageReader(path: w.path("out/full1.cpkg"), options: verifyOptions([key.publicKey])), into: base)
        let before = readTree(base)
        let result = w.path("store/2")
        try DeltaApplier.apply(
            PackageReader(path: w.path("out/delta.cpkg"), options: verifyOptions([key.publicKey])),
            base: base, to: result, copyMode: copyMode)
        #expect(readTree(result) == readTree(v2))
        #expect(readTree(base) == before, "the base tree must not change")
        var st = stat()
        stat(result + "/empty.txt", &st)
        #expect(st.st_mode & 0o777 == 0o600)
    }

    @Test(arguments: [1, 2]) func deltaOnAWrongBaseIsRefusedAndLeavesNothing(format: Int) throws {
        let w = Workspace("delta-wrong")
        let v1 = sampleTree(w, "v1")
        let v2 = sampleTree(w, "v2")
        try Data(bytes("changed")).write(to: URL(fileURLWithPath: v2 + "/empty.txt"))
        _ = w.mkdir("out")
        let full1 = try PackageBuilder.buildFull(
            tree: v1, to: w.path("out/full1.cpkg"), options: options(key, revision: 1))
        var o = options(key, revision: 2)
        o.deltaFormat = format
        try PackageBuilder.buildDelta(
            baseRevision: 1, baseFiles: Array(full1.files), tree: v2, to: w.path("out/d.cpkg"),
            options: o, baseTree: v1)
        // A base tree that drifted: one unchanged file was altered locally. Format 1 lists it and
        // names it; format 2 only has the digest of the list, and says the base differs.
        let base = w.tree("wrongbase", readTree(v1))
        try Data(bytes("tampered")).write(to: URL(fileURLWithPath: base + "/daily/rules.ndb"))
        expectCourierError(
            .integrity, format == 1 ? "daily/rules.ndb" : "differ from revision 1, the base it was built against"
        ) {
            try DeltaApplier.apply(
                PackageReader(path: w.path("out/d.cpkg"), options: verifyOptions([key.publicKey])),
                base: base, to: w.path("result"))
        }
        #expect(!FileManager.default.fileExists(atPath: w.path("result")))
    }

    /// Issue #3 asks that a delta for a 1%-changed tree of 1,000 files be under 3% of the full
    /// package; the format makes that hold because unchanged files are not carried at all.
    @Test func deltaOfOnePercentChangeIsSmall() throws {
        let w = Workspace("delta-size")
        var files: [String: [UInt8]] = [:]
        for i in 0..<1000 { files["d\(i % 10)/f\(i).db"] = randomBytes(4096, seed: UInt64(i + 100)) }
        let v1 = w.tree("v1", files)
        for i in stride(from: 0, to: 1000, by: 100) {
            files["d\(i % 10)/f\(i).db"] = randomBytes(4096, seed: UInt64(i + 5000))
        }
        let v2 = w.tree("v2", files)
        _ = w.mkdir("out")
        let m1 = try PackageBuilder.buildFull(tree: v1, to: w.path("out/f1.cpkg"), options: options(key, revision: 1))
        try PackageBuilder.buildFull(tree: v2, to: w.path("out/f2.cpkg"), options: options(key, revision: 2))
        let dm = try PackageBuilder.buildDelta(
            baseRevision: 1, baseFiles: Array(m1.files), tree: v2, to: w.path("out/d.cpkg"),
            options: options(key, revision: 2), baseTree: v1)
        #expect(dm.changed?.count == 10)
        let full = try FileManager.default.attributesOfItem(atPath: w.path("out/f2.cpkg"))[.size] as! Int
        let delta = try FileManager.default.attributesOfItem(atPath: w.path("out/d.cpkg"))[.size] as! Int
        #expect(Double(delta) < 0.03 * Double(full), "delta \(delta) vs full \(full)")
        let base = w.mkdir("b")
        try SafeExtractor.extract(
            PackageReader(path: w.path("out/f1.cpkg"), options: verifyOptions([key.publicKey])), into: base)
        try DeltaApplier.apply(
            PackageReader(path: w.path("out/d.cpkg"), options: verifyOptions([key.publicKey])),
            base: base, to: w.path("r"), copyMode: .hardlink)
        #expect(readTree(w.path("r")) == readTree(v2))
    }

    @Test func sourceTreesWithLinksOrSpecialFilesAreRefused() throws {
        let w = Workspace("src")
        let t = w.tree("t", ["a": bytes("a")])
        symlink("/etc/passwd", t + "/link")
        _ = w.mkdir("out")
        expectCourierError(.unsafeEntry, "symbolic link") {
            try PackageBuilder.buildFull(tree: t, to: w.path("out/p.cpkg"), options: options(key))
        }
        unlink(t + "/link")
        mkfifo(t + "/fifo", 0o644)
        expectCourierError(.unsafeEntry, "not a regular file or directory") {
            try PackageBuilder.buildFull(tree: t, to: w.path("out/p.cpkg"), options: options(key))
        }
        #expect(w.listing("out").isEmpty)
    }
}
