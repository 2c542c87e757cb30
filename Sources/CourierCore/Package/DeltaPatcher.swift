import Crypto
@preconcurrency import Glibc

/// Decides, for a format 2 delta, which changed files are carried whole and which are patched
/// against their base version, and writes the patches (docs/FORMAT.md §3.5).
///
/// A changed file is a patch candidate when the base has a regular file at the same path, neither
/// version is empty, and base plus new fit the window cap (`Limits.maxDeltaWindow`). Candidates
/// are grouped in path order into patches of up to `groupBytes` of base plus new content, or one
/// file alone above that: small files share one zstd frame, so a few changed lines in each of ten
/// files cost one frame header and compress against each other too (10 files of a 1,000-file
/// signature set: 0.9 KB as one patch, 1.2 KB as ten). A group is kept as a patch only when it is
/// smaller than its new content compressed alone (level 3, as the package compresses whole files);
/// otherwise its files are carried whole.
public enum DeltaPatcher {
    /// Base plus new bytes per patch, beyond which a file is patched alone.
    public static let groupBytes = 16 << 20

    public struct Plan {
        public var changes: [Manifest.Change]
        public var patches: [Manifest.Patch]
    }

    public static func plan(
        base: [FileEntry], target: [FileEntry], changed: [String], tree: String, baseTree: String,
        patchDir: String, options: PackageBuilder.Options
    ) throws -> Plan {
        var old = [PathKey: FileEntry]()
        for f in base { old[PathKey(f.path)] = f }
        var new = [PathKey: FileEntry]()
        for f in target { new[PathKey(f.path)] = f }
        let cap = Int(clamping: options.limits.maxDeltaWindow)

        var whole: [FileEntry] = []
        var groups: [[(new: FileEntry, base: FileEntry)]] = []
        var current: [(new: FileEntry, base: FileEntry)] = []
        var currentBytes = 0
        for p in changed {
            let n = new[PathKey(p)]!
            guard let b = old[PathKey(p)], n.size > 0, b.size > 0, Int(b.size) + Int(n.size) <= cap else {
                whole.append(n)
                continue
            }
            let bytes = Int(b.size + n.size)
            if !current.isEmpty && currentBytes + bytes > min(cap, groupBytes) {
                groups.append(current)
                current = []
                currentBytes = 0
            }
            current.append((n, b))
            currentBytes += bytes
        }
        if !current.isEmpty { groups.append(current) }

        var changes = whole.map {
            Manifest.Change(path: $0.path, size: $0.size, mode: $0.permissions ?? 0o644, sha256: $0.sha256)
        }
        var patches: [Manifest.Patch] = []
        for g in groups {
            let baseBytes = try concatenate(g.map(\.base), root: baseTree)
            let newBytes = try concatenate(g.map(\.new), root: tree)
            let (frame, wlog) = try baseBytes.withUnsafeBytes { b in
                try newBytes.withUnsafeBytes { n in try PatchCodec.compress(base: b, new: n) }
            }
            let alone = try newBytes.withUnsafeBytes { try PatchCodec.compressedSize($0, level: 3) }
            if frame.count >= alone {
                changes += g.map {
                    Manifest.Change(
                        path: $0.new.path, size: $0.new.size, mode: $0.new.permissions ?? 0o644, sha256: $0.new.sha256)
                }
                continue
            }
            // Proof before publishing: the frame decodes against the base to the new content.
            let check = try frame.withUnsafeBytes { f in
                try baseBytes.withUnsafeBytes { b in
                    try PatchCodec.decompress(
                        patch: f, base: b, resultSize: newBytes.count, windowLog: wlog, what: "new patch")
                }
            }
            let same = check.withUnsafeBytes { a in
                newBytes.withUnsafeBytes { b in
                    a.count == b.count && memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0
                }
            }
            guard same else {
                throw CourierError(.integrity, "zstd: a patch did not decode to its content; not publishing it")
            }
            let i = patches.count
            try Sys.writeFileAtomically(patchDir + "/\(i)", frame)
            patches.append(
                Manifest.Patch(
                    size: UInt64(frame.count), sha256: sha(frame), baseSha256: sha(baseBytes),
                    resultSha256: sha(newBytes), windowLog: wlog))
            changes += g.map {
                Manifest.Change(
                    path: $0.new.path, size: $0.new.size, mode: $0.new.permissions ?? 0o644,
                    patch: i, baseSize: $0.base.size)
            }
        }
        return Plan(changes: changes, patches: patches)
    }

    /// Takes out of the base revision's full package the files a delta to `target` may patch
    /// (changed, present in both, within the window cap) into `dir`, a new directory. The
    /// package is verified as it is read, like any other.
    public static func extractBase(
        package: String, verify: VerifyOptions, baseFiles: [FileEntry], target: [FileEntry],
        into dir: String
    ) throws {
        try Sys.mkdir(dir, 0o700)
        let (changed, _) = PackageBuilder.diff(base: baseFiles, target: target)
        let old = Set(baseFiles.filter { $0.size > 0 }.map { PathKey($0.path) })
        let wanted = Set(changed.map(PathKey.init).filter(old.contains))
        if wanted.isEmpty { return }
        let reader = try PackageReader(path: package, options: verify)
        try SafeExtractor.extract(reader, into: dir, mode: .fresh, only: { wanted.contains(PathKey($0.path)) })
    }

    static func sha(_ b: [UInt8]) -> String { Hex.encode(SHA256.hash(data: b)) }

    /// The contents of `files` under `root`, one after the other, each checked against its size
    /// and SHA-256 (the base comes from a verified package; the new tree was scanned just now).
    static func concatenate(_ files: [FileEntry], root: String) throws -> [UInt8] {
        let total = files.reduce(0) { $0 + Int($1.size) }
        let dir = try OwnedFD.openDirectory(root)
        // Filled in place with read(2): no zero-fill, no element-wise copy (64 MiB files).
        return try [UInt8](unsafeUninitializedCapacity: total) { buf, initialized in
            var offset = 0
            for f in files {
                let shown = root + "/" + f.path
                let fd = try OwnedFD.open(at: dir.raw, f.path, O_RDONLY | O_NOFOLLOW, display: shown)
                let size = Int(f.size)
                let got = try Sys.readFully(fd.raw, buf.baseAddress! + offset, size, display: shown)
                var probe: UInt8 = 0
                let extra = got == size ? try Sys.read(fd.raw, &probe, 1, display: shown) : 0
                let digest = Hex.encode(
                    SHA256.hash(
                        data: UnsafeRawBufferPointer(
                            rebasing: UnsafeMutableRawBufferPointer(buf)[offset..<offset + got])))
                guard got == size, extra == 0, digest == f.sha256 else {
                    throw CourierError(
                        .integrity, "\(Escape.text(shown)): changed while the delta was being built; run again")
                }
                offset += size
                initialized = offset
            }
        }
    }

}
