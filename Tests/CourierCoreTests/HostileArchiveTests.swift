import CourierCore
import Foundation
import Testing

/// Hostile archives, each built in code and signed by a *trusted* key (the worst case: a stolen
/// key or a compromised stager). Every one must be refused with its own reason, write nothing
/// outside the target directory, and leave nothing inside it.
@Suite struct HostileArchiveTests {
    enum Kind: String, CaseIterable, CustomStringConvertible {
        case absolutePath, dotDotTraversal, symlinkEntry, hardlinkEntry, charDevice, blockDevice, fifo,
            directoryEntry, setuidBit, setgidBit, stickyBit, duplicateEntry, entryNotInManifest, outsidePayload,
            sizeMismatch, hashMismatch, modeMismatch, overlongComponent, controlCharacter, nonUTF8Name,
            tooManyEntries, totalSizeLimit, expansionBomb, manifestTooLarge, missingPayloadFile,
            symlinkPlantedInTarget, existingFileInTarget
        var description: String { rawValue }
    }

    struct Case {
        var manifestFiles: [FileEntry]
        var entries: (ArchiveWriter) throws -> Void
        var code: CourierError.Code
        var reason: String
        var limits = Limits()
        var prepareTarget: (String, String) -> Void = { _, _ in }  // (target, outside)
        var compression: Compression = .zstd
    }

    static let good = bytes("good content\n")

    func spec(_ kind: Kind, outside: String) -> Case {
        let g = Self.good
        let goodFile = entry("a.txt", g)
        let writeGood: (ArchiveWriter) throws -> Void = { try $0.writeFile(path: "payload/a.txt", bytes: g) }
        switch kind {
        case .absolutePath:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in
                    try writeGood(w)
                    try w.writeFile(path: outside + "/evil", bytes: g)
                },
                code: .unsafeEntry, reason: "absolute path")
        case .dotDotTraversal:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in
                    try writeGood(w)
                    try w.writeFile(path: "payload/../../outside/evil", bytes: g)
                },
                code: .unsafeEntry, reason: "'..' component")
        case .symlinkEntry:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in
                    try w.writeHeader(
                        path: "payload/a.txt", type: .symlink(outside + "/evil"), permissions: 0o777, size: 0)
                }, code: .unsafeEntry, reason: "symbolic link to")
        case .hardlinkEntry:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in
                    try w.writeHeader(path: "payload/a.txt", type: .hardlink("/etc/passwd"), size: 0)
                }, code: .unsafeEntry, reason: "hard link")
        case .charDevice:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in
                    try w.writeHeader(path: "payload/a.txt", type: .charDevice, size: 0)
                }, code: .unsafeEntry, reason: "character device")
        case .blockDevice:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in
                    try w.writeHeader(path: "payload/a.txt", type: .blockDevice, size: 0)
                }, code: .unsafeEntry, reason: "block device")
        case .fifo:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in
                    try w.writeHeader(path: "payload/a.txt", type: .fifo, size: 0)
                }, code: .unsafeEntry, reason: "FIFO")
        case .directoryEntry:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in
                    try w.writeHeader(path: "payload/sub", type: .directory, permissions: 0o755, size: 0)
                    try writeGood(w)
                }, code: .unsafeEntry, reason: "directory entry")
        case .setuidBit:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in try w.writeFile(path: "payload/a.txt", bytes: g, permissions: 0o4755) },
                code: .unsafeEntry, reason: "setuid, setgid or sticky bit in mode 4755")
        case .setgidBit:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in try w.writeFile(path: "payload/a.txt", bytes: g, permissions: 0o2755) },
                code: .unsafeEntry, reason: "in mode 2755")
        case .stickyBit:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in try w.writeFile(path: "payload/a.txt", bytes: g, permissions: 0o1644) },
                code: .unsafeEntry, reason: "in mode 1644")
        case .duplicateEntry:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in
                    try writeGood(w)
                    try writeGood(w)
                },
                code: .unsafeEntry, reason: "appears twice")
        case .entryNotInManifest:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in
                    try writeGood(w)
                    try w.writeFile(path: "payload/extra.sh", bytes: g)
                },
                code: .unsafeEntry, reason: "'payload/extra.sh': not in the manifest")
        case .outsidePayload:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in
                    try writeGood(w)
                    try w.writeFile(path: "etc/cron.d/evil", bytes: g)
                },
                code: .unsafeEntry, reason: "outside payload/")
        case .sizeMismatch:
            // The header claims more bytes than the manifest: caught before any byte is written.
            return Case(
                manifestFiles: [goodFile], entries: { w in try w.writeFile(path: "payload/a.txt", bytes: g + g) },
                code: .integrity, reason: "size 26 in the archive, 13 in the manifest")
        case .hashMismatch:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in try w.writeFile(path: "payload/a.txt", bytes: bytes("evil content\n")) },
                code: .integrity, reason: "does not match the manifest")
        case .modeMismatch:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in try w.writeFile(path: "payload/a.txt", bytes: g, permissions: 0o777) },
                code: .integrity, reason: "mode 0777 in the archive, 0644 in the manifest")
        case .overlongComponent:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in
                    try writeGood(w)
                    try w.writeFile(path: "payload/" + String(repeating: "n", count: 300), bytes: g)
                }, code: .unsafeEntry, reason: "longer than 255 bytes")
        case .controlCharacter:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in
                    try writeGood(w)
                    try w.writeFile(path: "payload/a\nb", bytes: g)
                },
                code: .unsafeEntry, reason: "control character")
        case .nonUTF8Name:
            return Case(
                manifestFiles: [goodFile],
                entries: { w in
                    try writeGood(w)
                    try w.writeHeader(path: "", size: Int64(g.count), rawPath: Array("payload/".utf8) + [0xff, 0xfe])
                    try w.writeData(g)
                }, code: .unsafeEntry, reason: "not valid UTF-8")
        case .tooManyEntries:
            var files: [FileEntry] = []
            for i in 0..<20 { files.append(entry("f\(String(format: "%02d", i))", g)) }
            var l = Limits()
            l.maxEntries = 10
            return Case(
                manifestFiles: files,
                entries: { w in
                    for f in files { try w.writeFile(path: "payload/" + f.path, bytes: g) }
                }, code: .limit, reason: "more than the limit of 10", limits: l)
        case .totalSizeLimit:
            let big = randomBytes(200_000, seed: 7)
            var l = Limits()
            l.maxTotalBytes = 100_000
            return Case(
                manifestFiles: [entry("big", big)], entries: { w in try w.writeFile(path: "payload/big", bytes: big) },
                code: .limit, reason: "more than the limit of 100000", limits: l)
        case .expansionBomb:
            let zeros = [UInt8](repeating: 0, count: 64 << 20)
            var l = Limits()
            l.maxExpansionRatio = 50
            return Case(
                manifestFiles: [entry("zeros", zeros)],
                entries: { w in try w.writeFile(path: "payload/zeros", bytes: zeros) },
                code: .limit, reason: "compression bomb", limits: l)
        case .manifestTooLarge:
            var l = Limits()
            l.maxManifestBytes = 100
            return Case(
                manifestFiles: [goodFile], entries: writeGood, code: .limit, reason: "exceeds the limit of 100",
                limits: l)
        case .missingPayloadFile:
            return Case(
                manifestFiles: [goodFile, entry("b.txt", g)], entries: writeGood,
                code: .integrity, reason: "payload is missing 'b.txt'")
        case .symlinkPlantedInTarget:
            return Case(
                manifestFiles: [entry("sub/a.txt", g)],
                entries: { w in try w.writeFile(path: "payload/sub/a.txt", bytes: g) },
                code: .unsafeEntry, reason: "not a directory (a symlink?)",
                prepareTarget: { target, outside in symlink(outside, target + "/sub") })
        case .existingFileInTarget:
            return Case(
                manifestFiles: [goodFile], entries: writeGood, code: .unsafeEntry, reason: "already exists",
                prepareTarget: { target, _ in
                    FileManager.default.createFile(atPath: target + "/a.txt", contents: Data(bytes("mine")))
                })
        }
    }

    @Test(arguments: Kind.allCases)
    func refused(kind: Kind) throws {
        let key = SigningKey()
        let w = Workspace("hostile-\(kind)")
        let outside = w.mkdir("outside")
        let target = w.mkdir("target")
        let c = spec(kind, outside: outside)
        let m = Manifest(
            type: "virus-defs", revision: 20_260_921_001, kind: .full, created: testNow, expires: testNow + 86400,
            provenance: [:], files: c.manifestFiles)
        try craftPackage(at: w.path("p.cpkg"), manifest: m, key: key, compression: c.compression, entries: c.entries)
        c.prepareTarget(target, outside)
        let before = w.listing("target")
        var opts = verifyOptions([key.publicKey])
        opts.limits = c.limits

        // Verification alone refuses it (except for problems only the target can show)...
        if kind != .symlinkPlantedInTarget && kind != .existingFileInTarget {
            expectCourierError(c.code, c.reason) {
                _ = try PackageVerifier.verify(path: w.path("p.cpkg"), options: opts)
            }
        }
        // ...and so does extraction, leaving the target as it was and the outside untouched.
        expectCourierError(c.code, c.reason) {
            try SafeExtractor.extract(PackageReader(path: w.path("p.cpkg"), options: opts), into: target)
        }
        #expect(w.listing("target") == before, "target changed: \(w.listing("target"))")
        #expect(w.listing("outside").isEmpty, "something was written outside: \(w.listing("outside"))")
        #expect(!FileManager.default.fileExists(atPath: w.root + "/evil"))
    }

    @Test func atLeastFifteenKinds() { #expect(Kind.allCases.count >= 15) }
}
