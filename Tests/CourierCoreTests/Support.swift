import CourierCore
@_exported import CourierTestSupport
import Crypto
import Foundation
import Testing

/// A temporary directory for one test, removed when the test's value goes away.
final class Workspace {
    let root: String

    init(_ name: String = "t") {
        let base = FileManager.default.temporaryDirectory.path + "/courier-tests-\(getpid())"
        try? FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        root = base + "/\(name)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func path(_ rel: String) -> String { root + "/" + rel }

    /// Writes files (path → bytes) under `rel`, creating directories; returns the tree's path.
    @discardableResult
    func tree(_ rel: String, _ files: [String: [UInt8]], modes: [String: Int] = [:]) -> String {
        let dir = path(rel)
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (p, bytes) in files {
            let full = dir + "/" + p
            try! FileManager.default.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent,
                withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: full, contents: Data(bytes))
            chmod(full, mode_t(modes[p] ?? 0o644))
        }
        return dir
    }

    func mkdir(_ rel: String) -> String {
        try! FileManager.default.createDirectory(atPath: path(rel), withIntermediateDirectories: true)
        return path(rel)
    }

    /// All paths (files, dirs, links) below `rel`, relative, sorted.
    func listing(_ rel: String) -> [String] {
        let dir = path(rel)
        guard let e = FileManager.default.enumerator(atPath: dir) else { return [] }
        return (e.allObjects as! [String]).sorted()
    }
}

/// Reads a tree into path → bytes, for byte-for-byte comparisons.
func readTree(_ dir: String) -> [String: [UInt8]] {
    var out: [String: [UInt8]] = [:]
    let e = FileManager.default.enumerator(atPath: dir)!
    while let p = e.nextObject() as? String {
        var isDir: ObjCBool = false
        FileManager.default.fileExists(atPath: dir + "/" + p, isDirectory: &isDir)
        if !isDir.boolValue { out[p] = Array(FileManager.default.contents(atPath: dir + "/" + p)!) }
    }
    return out
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

func randomBytes(_ n: Int, seed: UInt64) -> [UInt8] {
    var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var out = [UInt8](repeating: 0, count: n)
    for i in 0..<n {
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        out[i] = UInt8(truncatingIfNeeded: x)
    }
    return out
}

let testNow: Int64 = 1_790_000_000  // 2026-09-21: fixed, so expiry tests do not depend on the clock

func options(
    _ key: SigningKey, type: String = "virus-defs", revision: UInt64 = 20_260_921_001,
    created: Int64 = testNow, compression: Compression = .zstd
) -> PackageBuilder.Options {
    var o = PackageBuilder.Options(type: type, revision: revision, keys: [key], limits: Limits())
    o.created = created
    o.compression = compression
    o.provenance = ["source": "test"]
    return o
}

func verifyOptions(_ keys: [PublicKey], revoked: Set<String> = [], now: Int64 = testNow + 60) -> VerifyOptions {
    VerifyOptions(trust: TrustStore(keys: keys, revoked: revoked), limits: Limits(), now: now)
}

/// Writes a package with hand-made entries: the manifest and signatures are real (signed by
/// `key`), everything after them is whatever `entries` writes. For hostile-archive tests.
func craftPackage(
    at path: String, manifest: Manifest, key: SigningKey, manifestBytes: [UInt8]? = nil,
    compression: Compression = .zstd, skipSignatures: Bool = false,
    entries: (ArchiveWriter) throws -> Void
) throws {
    let mb = manifestBytes ?? manifest.encoded()
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    precondition(fd >= 0)
    defer { close(fd) }
    let w = try ArchiveWriter(fd: fd, display: path, compression: compression)
    try w.writeFile(path: PackageReader.manifestEntry, bytes: mb)
    if !skipSignatures {
        try w.writeFile(path: PackageReader.signaturesEntry, bytes: SignatureSet.sign(mb, with: [key]).encoded())
    }
    try entries(w)
    try w.finish()
}

func entry(_ path: String, _ content: [UInt8], mode: UInt32 = 0o644) -> FileEntry {
    FileEntry(path: path, size: UInt64(content.count), sha256: sha256Hex(content), mode: mode)
}

func sha256Hex(_ b: [UInt8]) -> String {
    var h = Crypto.SHA256()
    h.update(data: b)
    return Hex.encode(h.finalize())
}
