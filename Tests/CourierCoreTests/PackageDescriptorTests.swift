import CourierCore
import CourierTestSupport
import Foundation
@preconcurrency import Glibc
import Testing

/// Building, extracting and applying packages leave no descriptor open, on success and on each
/// way they fail (issue #17.1: every descriptor has one owner that closes it). Read from
/// /proc/self/fd; only descriptors into the test's own workspace count, so tests running at the
/// same time in this process do not disturb it.
@Suite struct PackageDescriptorTests {
    let key = SigningKey()

    /// Files in nested directories, so the extractor keeps a directory open between files.
    static let files: [String: [UInt8]] = [
        "a/b/one.ndb": bytes(String(repeating: "one line\n", count: 400)),
        "a/b/two.ndb": bytes(String(repeating: "two line\n", count: 400)),
        "a/c/three.ndb": bytes(String(repeating: "three\n", count: 400)),
        "top.txt": bytes("top\n"),
    ]

    @Test func extractingLeavesNothingOpenWhetherItSucceedsOrIsRefused() throws {
        let w = Workspace("fd-extract")
        let tree = w.tree("v1", Self.files)
        try PackageBuilder.buildFull(tree: tree, to: w.path("full.cpkg"), options: options(key))
        #expect(openDescriptors(under: w.root).isEmpty, "building left open: \(openDescriptors(under: w.root))")
        // The control: a file held open in this workspace is seen, so the checks here can fail.
        do {
            let held = try OwnedFD.open(w.path("full.cpkg"), O_RDONLY)
            #expect(openDescriptors(under: w.root).count == 1, "fd \(held.raw) not seen under \(w.root)")
        }

        let good = w.mkdir("good")
        try SafeExtractor.extract(
            PackageReader(path: w.path("full.cpkg"), options: verifyOptions([key.publicKey])), into: good,
            durable: true)
        #expect(readTree(good) == Self.files)
        #expect(
            openDescriptors(under: w.root).isEmpty, "a finished extraction left open: \(openDescriptors(under: w.root))"
        )

        // A file already in the target is refused after the files before it were written.
        let taken = w.tree("taken", ["a/c/three.ndb": bytes("mine\n")])
        expectCourierError(.unsafeEntry, "already exists") {
            try SafeExtractor.extract(
                PackageReader(path: w.path("full.cpkg"), options: verifyOptions([key.publicKey])), into: taken)
        }
        #expect(readTree(taken) == ["a/c/three.ndb": bytes("mine\n")], "the refusal removed what it wrote")
        #expect(
            openDescriptors(under: w.root).isEmpty, "a refused extraction left open: \(openDescriptors(under: w.root))")
    }

    @Test func aFileThatFailsItsDigestMidWriteIsClosedAndRemoved() throws {
        let w = Workspace("fd-digest")
        let real = bytes("real content\n")
        let forged = bytes("fake content\n")  // the same size: only the digest tells
        let m = Manifest(
            type: "virus-defs", revision: 20_260_921_001, kind: .full, created: testNow, expires: testNow + 86400,
            provenance: [:], files: [entry("d/e/first.txt", real), entry("d/e/second.txt", real)])
        try craftPackage(at: w.path("p.cpkg"), manifest: m, key: key) { aw in
            try aw.writeFile(path: "payload/d/e/first.txt", bytes: real)
            try aw.writeFile(path: "payload/d/e/second.txt", bytes: forged)
        }
        let target = w.mkdir("target")
        expectCourierError(.integrity) {
            try SafeExtractor.extract(
                PackageReader(path: w.path("p.cpkg"), options: verifyOptions([key.publicKey])), into: target)
        }
        #expect(w.listing("target").isEmpty, "left behind: \(w.listing("target"))")
        #expect(
            openDescriptors(under: w.root).isEmpty, "a failed extraction left open: \(openDescriptors(under: w.root))")
    }

    @Test func applyingADeltaLeavesNothingOpenWhetherItSucceedsOrTheBaseDiffers() throws {
        let w = Workspace("fd-delta")
        var v2files = Self.files
        v2files["a/b/one.ndb"]! += bytes("one more line\n")
        v2files["a/c/three.ndb"]![0] = UInt8(ascii: "T")
        let v1 = w.tree("v1", Self.files)
        let v2 = w.tree("v2", v2files)
        let full = try PackageBuilder.buildFull(tree: v1, to: w.path("full1.cpkg"), options: options(key, revision: 1))
        try DeltaPatcher.extractBase(
            package: w.path("full1.cpkg"), verify: verifyOptions([key.publicKey]), baseFiles: Array(full.files),
            target: try TreeScanner.scan(v2), into: w.path("basefiles"))
        let m = try PackageBuilder.buildDelta(
            baseRevision: 1, baseFiles: Array(full.files), tree: v2, to: w.path("delta.cpkg"),
            options: options(key, revision: 2), baseTree: w.path("basefiles"))
        #expect(m.patches?.isEmpty == false, "the test needs patched files in subdirectories")
        #expect(
            openDescriptors(under: w.root).isEmpty, "building the delta left open: \(openDescriptors(under: w.root))")

        for copyMode in [DeltaApplier.CopyMode.copy, .hardlink] {
            try DeltaApplier.apply(
                PackageReader(path: w.path("delta.cpkg"), options: verifyOptions([key.publicKey])), base: v1,
                to: w.path("new-\(copyMode)"), copyMode: copyMode, durable: true)
            #expect(readTree(w.path("new-\(copyMode)")) == v2files)
            #expect(
                openDescriptors(under: w.root).isEmpty,
                "applying (\(copyMode)) left open: \(openDescriptors(under: w.root))")
        }

        // A base file of the same size with other content: refused after the patch's base was read.
        var changed = Self.files
        changed["a/c/three.ndb"]![1] = UInt8(ascii: "X")
        let other = w.tree("other", changed)
        expectCourierError(.baseMismatch, "differ from the ones it was built against") {
            try DeltaApplier.apply(
                PackageReader(path: w.path("delta.cpkg"), options: verifyOptions([key.publicKey])), base: other,
                to: w.path("new-other"))
        }
        #expect(!FileManager.default.fileExists(atPath: w.path("new-other")))
        #expect(openDescriptors(under: w.root).isEmpty, "a refused delta left open: \(openDescriptors(under: w.root))")
    }

    @Test func aBuildThatFailsRemovesItsTemporaryFileAndClosesEverything() throws {
        let w = Workspace("fd-build")
        let tree = w.tree("v1", Self.files)
        let out = w.mkdir("out")
        // A file that changed after the scan: refused while it and the temporary file are open.
        var scanned = try TreeScanner.scan(tree)
        let i = scanned.firstIndex { $0.path == "a/c/three.ndb" }!
        scanned[i] = entry("a/c/three.ndb", bytes(String(repeating: "THREE\n", count: 400)))
        expectCourierError(.integrity, "changed while being packaged") {
            try PackageBuilder.buildFull(tree: tree, to: out + "/p.cpkg", options: options(key), files: scanned)
        }
        #expect(w.listing("out").isEmpty, "left behind: \(w.listing("out"))")
        #expect(openDescriptors(under: w.root).isEmpty, "a refused build left open: \(openDescriptors(under: w.root))")

        // The rename that publishes it fails (a non-empty directory is in the way): the
        // temporary file, closed before the rename, is removed.
        _ = w.tree("out/p.cpkg", ["in-the-way": bytes("x")])
        expectCourierError(.io) {
            try PackageBuilder.buildFull(tree: tree, to: out + "/p.cpkg", options: options(key))
        }
        #expect(w.listing("out") == ["p.cpkg", "p.cpkg/in-the-way"], "left behind: \(w.listing("out"))")
        #expect(openDescriptors(under: w.root).isEmpty, "a failed rename left open: \(openDescriptors(under: w.root))")
    }
}
