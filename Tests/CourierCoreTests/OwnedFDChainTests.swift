import CourierCore
import CourierTestSupport
import Foundation
@preconcurrency import Glibc
import Testing

/// The owned shapes of CourierCore's own descriptors: the directory chain (`OwnedFD.openDirectoryChain`)
/// and the readers and writers that used to close by hand. Each test looks in /proc/self/fd for a
/// descriptor that still points into its own temporary tree: none may be left once the owner is
/// gone, on success and on failure.
@Suite struct OwnedFDChainTests {
    @Test func anEmptyChainIsTheRootItself() throws {
        let ws = Workspace("chain-empty")
        let root = try OwnedFD.openDirectory(ws.root)
        let chain = try OwnedFD.openDirectoryChain(at: root.raw, [], root: ws.root)
        #expect(chain.raw(or: root.raw) == root.raw)
        #expect(
            openDescriptors(under: ws.root).count == 1,
            "only the root's own descriptor: \(openDescriptors(under: ws.root))")
    }

    @Test func createsTheMissingDirectoriesAndHoldsOnlyTheLast() throws {
        let ws = Workspace("chain-make")
        _ = ws.mkdir("a")
        var made: [String] = []
        do {
            let root = try OwnedFD.openDirectory(ws.root)
            let chain = try OwnedFD.openDirectoryChain(at: root.raw, ["a", "b", "c", "d"], root: ws.root) {
                made.append($0)
            }
            let raw = chain.raw(or: -1)
            #expect(raw != root.raw)
            #expect(
                try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(raw)") == ws.path("a/b/c/d"))
            // The root and the last directory; every intermediate one was closed on the way down.
            #expect(openDescriptors(under: ws.root).sorted() == [ws.root, ws.path("a/b/c/d")])
        }
        #expect(made == ["a/b", "a/b/c", "a/b/c/d"])
        #expect(openDescriptors(under: ws.root).isEmpty, "left open: \(openDescriptors(under: ws.root))")
    }

    @Test func refusesALinkInThePathAndLeavesNothingOpen() throws {
        let ws = Workspace("chain-link")
        _ = ws.mkdir("a/b")
        let outside = ws.mkdir("outside")
        #expect(symlink(outside, ws.path("a/b/link")) == 0)
        do {
            let root = try OwnedFD.openDirectory(ws.root)
            let e = #expect(throws: CourierError.self) {
                _ = try OwnedFD.openDirectoryChain(at: root.raw, ["a", "b", "link", "x"], root: ws.root)
            }
            #expect(e?.code == .unsafeEntry)
            #expect(e?.message.contains("a/b/link: exists and is not a directory") == true)
            #expect(openDescriptors(under: ws.root) == [ws.root], "left open: \(openDescriptors(under: ws.root))")
        }
        #expect(!FileManager.default.fileExists(atPath: outside + "/x"), "followed the link")
        #expect(openDescriptors(under: ws.root).isEmpty)
    }

    @Test func anArchiveReaderClosesItsFileWhenItFailsAndWhenItIsDropped() throws {
        let ws = Workspace("reader")
        let junk = ws.tree("in", ["junk.cpkg": Array(repeating: 0x41, count: 4096)]) + "/junk.cpkg"
        #expect(throws: CourierError.self) { _ = try ArchiveReader(path: junk, formats: .package) }
        #expect(throws: CourierError.self) { _ = try ArchiveReader(path: junk, formats: .upstream) }
        let file = try OwnedFD.open(junk, O_RDONLY)
        #expect(throws: CourierError.self) { _ = try ArchiveReader(path: junk, sameFileAs: file.raw) }
        #expect(openDescriptors(under: ws.root) == [junk], "a failed reader left its descriptor open")

        let tar = ws.path("in/good.tar.gz")
        do {
            let out = try OwnedFD.open(tar, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            let w = try ArchiveWriter(fd: out.raw, display: tar, compression: .gzip)
            try w.writeHeader(path: "d", type: .directory, permissions: 0o755, size: 0, mtime: 0)
            try w.writeFile(path: "d/f", bytes: Array("content\n".utf8), permissions: 0o644, mtime: 0)
            try w.finish()
        }
        do {
            let reader = try ArchiveReader(path: tar, formats: .upstream)
            let first = try reader.next()?.path
            #expect(first == "d" || first == "d/", "first entry: \(first ?? "none")")
            #expect(openDescriptors(under: ws.root).sorted() == [junk, tar].sorted())
        }
        #expect(openDescriptors(under: ws.root) == [junk], "a dropped reader left its descriptor open")
    }

    @Test func unpackingAVendorArchiveLeavesNoDescriptorBehind() throws {
        let ws = Workspace("unpack")
        let tar = ws.path("vendor.tar.gz")
        do {
            let out = try OwnedFD.open(tar, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            let w = try ArchiveWriter(fd: out.raw, display: tar, compression: .gzip)
            try w.writeHeader(path: "./rules/", type: .directory, permissions: 0o755, size: 0, mtime: 0)
            try w.writeFile(path: "./rules/deep/a.rules", bytes: Array("alert\n".utf8), permissions: 0o644, mtime: 0)
            try w.writeFile(path: "top.txt", bytes: Array("top\n".utf8), permissions: 0o755, mtime: 0)
            try w.finish()
        }
        let target = ws.path("tree")
        try UpstreamUnpacker.unpack(tar, into: target, limits: Limits())
        #expect(readTree(target) == ["rules/deep/a.rules": Array("alert\n".utf8), "top.txt": Array("top\n".utf8)])
        #expect(openDescriptors(under: ws.root).isEmpty, "left open: \(openDescriptors(under: ws.root))")

        // A second archive that names a file twice fails half-way; it too closes what it opened.
        let twice = ws.path("twice.tar.gz")
        do {
            let out = try OwnedFD.open(twice, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            let w = try ArchiveWriter(fd: out.raw, display: twice, compression: .gzip)
            try w.writeFile(path: "x/f", bytes: [1], permissions: 0o644, mtime: 0)
            try w.writeFile(path: "x/f", bytes: [2], permissions: 0o644, mtime: 0)
            try w.finish()
        }
        let e = #expect(throws: CourierError.self) {
            try UpstreamUnpacker.unpack(twice, into: ws.path("tree2"), limits: Limits())
        }
        #expect(e?.message.contains("appears twice") == true)
        #expect(openDescriptors(under: ws.root).isEmpty, "left open: \(openDescriptors(under: ws.root))")
    }

    @Test func writingAFileAtomicallyClosesItsTemporaryOnEveryPath() throws {
        let ws = Workspace("atomic")
        let path = ws.path("state.json")
        try Sys.writeFileAtomically(path, Array("one\n".utf8))
        #expect(try Sys.readFile(path) == Array("one\n".utf8))
        #expect(openDescriptors(under: ws.root).isEmpty, "left open: \(openDescriptors(under: ws.root))")

        // The rename fails (a non-empty directory holds the name): the error names the file, the
        // temporary is gone, the directory is untouched and nothing stays open.
        let dir = ws.tree("taken", ["inside": [1]])
        let e = #expect(throws: CourierError.self) { try Sys.writeFileAtomically(dir, Array("two\n".utf8)) }
        #expect(e?.message.contains("rename") == true, "\(e?.message ?? "")")
        #expect(ws.listing("").sorted() == ["state.json", "taken", "taken/inside"])
        #expect(openDescriptors(under: ws.root).isEmpty, "left open: \(openDescriptors(under: ws.root))")
    }
}
