import CourierCore
import Foundation
import Testing

/// FORMAT §1/§2: one filter at most (zstd, gzip or none, told by the first bytes of the file),
/// and tar entries of type '0', NUL or '7' only, plus the pax 'x'/'g' and GNU 'L' headers that
/// carry names. libarchive reads more (it maps unknown type flags to regular files, stacks
/// filters, skips zstd skippable frames), so Courier checks these itself (issue #11.3).
@Suite struct ContainerTests {
    let key = SigningKey()
    static let content = bytes("good content\n")

    /// A valid plain-tar package with one payload file `a.txt`.
    func plainPackage(_ w: Workspace, _ name: String = "p.tar") throws -> String {
        let m = Manifest(
            type: "virus-defs", revision: 20_260_921_001, kind: .full, created: testNow, expires: testNow + 86400,
            provenance: [:], files: [entry("a.txt", Self.content)])
        try craftPackage(at: w.path(name), manifest: m, key: key, compression: .none) { wr in
            try wr.writeFile(path: "payload/a.txt", bytes: Self.content)
        }
        return w.path(name)
    }

    /// Sets the type flag of the tar header named `entry` and fixes its checksum.
    func patchTypeFlag(_ path: String, entry: String, to flag: UInt8) throws {
        var b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var off = 0
        while off + 512 <= b.count, b[off] != 0 {
            let name = String(decoding: b[off..<(off + 100)].prefix(while: { $0 != 0 }), as: UTF8.self)
            let sizeText = String(
                decoding: b[(off + 124)..<(off + 136)].prefix(while: { $0 != 0 && $0 != 0x20 }), as: UTF8.self)
            let size = Int(sizeText, radix: 8) ?? 0
            if name == entry {
                b[off + 156] = flag
                for i in 148..<156 { b[off + i] = 0x20 }
                let sum = b[off..<(off + 512)].reduce(0) { $0 + Int($1) }
                let field = Array(String(format: "%06o", sum).utf8) + [0, 0x20]
                for i in 0..<8 { b[off + 148 + i] = field[i] }
                try Data(b).write(to: URL(fileURLWithPath: path))
                return
            }
            off += 512 + (size + 511) / 512 * 512
        }
        Issue.record("no tar header named \(entry)")
    }

    /// Runs a compressor CLI (`zstd`, `gzip`) over `input` into `output`.
    func compress(_ tool: String, _ input: String, _ output: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [tool, "-q", "-c", input]
        FileManager.default.createFile(atPath: output, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }

    func verify(_ path: String) throws {
        _ = try PackageVerifier.verify(path: path, options: verifyOptions([key.publicKey]))
    }

    @Test(arguments: ["Z", "S", "M", "N", "V", "K", "D"])
    func forbiddenTypeFlagIsRefused(flag: String) throws {
        let w = Workspace("typeflag")
        let tar = try plainPackage(w)
        try patchTypeFlag(tar, entry: "payload/a.txt", to: flag.utf8.first!)
        expectCourierError(.malformed, "type flag '\(flag)'") { try verify(tar) }
        try compress("zstd", tar, w.path("p.cpkg"))
        expectCourierError(.malformed, "type flag '\(flag)'") { try verify(w.path("p.cpkg")) }
    }

    @Test(arguments: [UInt8(0), UInt8(ascii: "7"), UInt8(ascii: "0")])
    func regularTypeFlagsAreAccepted(flag: UInt8) throws {
        let w = Workspace("typeflag-ok")
        let tar = try plainPackage(w)
        try patchTypeFlag(tar, entry: "payload/a.txt", to: flag)
        try verify(tar)
    }

    @Test func gzipAroundZstdIsRefused() throws {
        let w = Workspace("stacked")
        let tar = try plainPackage(w)
        try compress("zstd", tar, w.path("p.zst"))
        try verify(w.path("p.zst"))
        try compress("gzip", w.path("p.zst"), w.path("p.zst.gz"))
        expectCourierError(.malformed, "one compression filter") { try verify(w.path("p.zst.gz")) }
    }

    @Test func zstdSkippableFrameBeforeTheDataIsRefused() throws {
        let w = Workspace("skippable")
        let tar = try plainPackage(w)
        try compress("zstd", tar, w.path("p.zst"))
        let frame: [UInt8] = [0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]
        let zst = [UInt8](try Data(contentsOf: URL(fileURLWithPath: w.path("p.zst"))))
        try Data(frame + zst).write(to: URL(fileURLWithPath: w.path("skip.cpkg")))
        expectCourierError(.malformed, "zstd") { try verify(w.path("skip.cpkg")) }
    }

    /// Decided (FORMAT §1): nothing may follow the archive. libzstd fails on a tail that is not a
    /// frame but libarchive's gzip reader ignores one, and a further gzip member or zstd frame is
    /// read as more of the stream — so readers disagreed with each other and with themselves
    /// (a zstd package with a tail was refused or not depending on where the tail fell). Now:
    /// only zero bytes after the end-of-archive block, and no byte after the compressed stream.
    @Test(arguments: [Compression.zstd, .gzip, .none])
    func bytesAfterTheArchiveAreRefused(compression: Compression) throws {
        let w = Workspace("trailing")
        let m = Manifest(
            type: "virus-defs", revision: 20_260_921_001, kind: .full, created: testNow, expires: testNow + 86400,
            provenance: [:], files: [entry("a.txt", Self.content)])
        try craftPackage(at: w.path("p.cpkg"), manifest: m, key: key, compression: compression) { wr in
            try wr.writeFile(path: "payload/a.txt", bytes: Self.content)
        }
        try verify(w.path("p.cpkg"))
        // A second, complete archive in the same compression, carrying a file the manifest does not list.
        let fd = open(w.path("extra"), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let ew = try ArchiveWriter(fd: fd, display: "extra", compression: compression)
        try ew.writeFile(path: "payload/evil.sh", bytes: bytes("#!/bin/sh\n"))
        try ew.finish()
        close(fd)
        let pkg = [UInt8](try Data(contentsOf: URL(fileURLWithPath: w.path("p.cpkg"))))
        let extra = [UInt8](try Data(contentsOf: URL(fileURLWithPath: w.path("extra"))))
        let tails: [(String, [UInt8])] = [
            ("garbage", randomBytes(5000, seed: 3)), ("member", extra),
            ("zeros", [UInt8](repeating: 0, count: 1024)), ("one", [0x0a]),
        ]
        for (name, tail) in tails {
            try Data(pkg + tail).write(to: URL(fileURLWithPath: w.path(name + ".cpkg")))
            let target = w.mkdir("x-" + name)
            if compression == .none && name == "zeros" {
                // Zero blocks after the end-of-archive block are tar padding: accepted.
                try SafeExtractor.extract(
                    PackageReader(path: w.path(name + ".cpkg"), options: verifyOptions([key.publicKey])), into: target)
                #expect(w.listing("x-" + name) == ["a.txt"])
                continue
            }
            expectCourierError(.malformed) {
                try SafeExtractor.extract(
                    PackageReader(path: w.path(name + ".cpkg"), options: verifyOptions([key.publicKey])), into: target)
            }
            #expect(w.listing("x-" + name).isEmpty, "\(name): \(w.listing("x-" + name))")
        }
    }
}
