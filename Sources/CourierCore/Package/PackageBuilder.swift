import Crypto
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Builds signed packages from content trees (docs/FORMAT.md). The package is written to a
/// dot-named temporary beside its final path, fsynced and renamed, so a copier never sees half.
public enum PackageBuilder {
    public struct Options: Sendable {
        public var type: String
        public var revision: UInt64
        /// Seconds since the epoch; now when nil.
        public var created: Int64?
        /// Lifetime of the package: clients refuse it after `created + lifetime` (default 30 days).
        public var lifetime: Int64 = 30 * 86400
        public var provenance: [String: String] = [:]
        public var keys: [SigningKey]
        public var compression: Compression = .zstd
        public var level: Int? = nil
        public var limits = Limits()

        public init(type: String, revision: UInt64, keys: [SigningKey]) {
            self.type = type; self.revision = revision; self.keys = keys
        }
    }

    /// A full package of the tree at `tree`. `files`, when given, is a scan of the tree made
    /// earlier (saves hashing it twice); content is re-hashed while written either way.
    @discardableResult
    public static func buildFull(tree: String, to out: String, options: Options, files: [FileEntry]? = nil) throws -> Manifest {
        let list = try files ?? scan(tree, options)
        let created = options.created ?? Int64(time(nil))
        let m = Manifest(type: options.type, revision: options.revision, kind: .full, created: created,
                         expires: created + options.lifetime, provenance: options.provenance, files: list)
        try write(m, tree: tree, to: out, options: options)
        return m
    }

    /// A delta from a base (known by its manifest's file list — no base tree needed) to the tree
    /// at `tree`: files that are new or differ in content or mode are carried whole, paths that
    /// are gone are listed as removed, and the manifest still lists the whole target tree.
    @discardableResult
    public static func buildDelta(baseRevision: UInt64, baseFiles: [FileEntry], tree: String, to out: String,
                                  options: Options, files: [FileEntry]? = nil) throws -> Manifest {
        let list = try files ?? scan(tree, options)
        guard baseRevision < options.revision else {
            throw CourierError(.usage, "delta base \(baseRevision) must be below revision \(options.revision)")
        }
        let (changed, removed) = diff(base: baseFiles, target: list)
        let created = options.created ?? Int64(time(nil))
        let m = Manifest(type: options.type, revision: options.revision, kind: .delta, base: baseRevision,
                         created: created, expires: created + options.lifetime, provenance: options.provenance,
                         files: list, changed: changed, removed: removed)
        try write(m, tree: tree, to: out, options: options)
        return m
    }

    /// Paths to carry (new or different) and to remove, both sorted.
    public static func diff(base: [FileEntry], target: [FileEntry]) -> (changed: [String], removed: [String]) {
        // Keyed by bytes (PathKey): "caf\u{E9}" and "cafe\u{301}" are two paths.
        var old = [PathKey: FileEntry]()
        for f in base { old[PathKey(f.path)] = f }
        var changed: [String] = []
        for f in target {
            if let o = old.removeValue(forKey: PathKey(f.path)), o.sha256 == f.sha256, o.mode == f.mode, o.size == f.size { continue }
            changed.append(f.path)
        }
        return (changed, old.keys.sorted().map(\.string))
    }

    static func scan(_ tree: String, _ options: Options) throws -> [FileEntry] {
        var o = TreeScanner.Options()
        o.limits = options.limits
        // Hashed on every core (at most 4): the manifest needs every digest before the first
        // byte of the package is written.
        return try TreeScanner.scan(tree, options: o, jobs: max(compressionThreads, 1))
    }

    /// zstd workers for a package: one per online core (at most 4), so that this thread reads
    /// and hashes while the workers compress; 0 (compress inline) on one core.
    /// `COURIER_ZSTD_THREADS` overrides it (benchmarks, and tests of equal output).
    static var compressionThreads: Int {
        if let v = getenv("COURIER_ZSTD_THREADS").map({ String(cString: $0) }), let n = Int(v), n >= 0 { return min(n, 64) }
        let cores = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        return cores > 1 ? min(cores, 4) : 0
    }

    static func write(_ manifest: Manifest, tree: String, to out: String, options: Options) throws {
        try manifest.validate()
        guard !options.keys.isEmpty else { throw CourierError(.key, "no signing key given") }
        let manifestBytes = manifest.encoded()
        let sigs = SignatureSet.sign(manifestBytes, with: options.keys)
        let dir = FilePath(out).removingLastComponent().string
        let base = FilePath(out).lastComponent?.string ?? out
        let tmp = (dir.isEmpty ? "" : dir + "/") + ".\(base).tmp-\(getpid())"
        let fd = try Sys.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644)
        do {
            let w = try ArchiveWriter(fd: fd, display: tmp, compression: options.compression, level: options.level,
                                      threads: compressionThreads)
            let mtime = manifest.createdTime
            try w.writeFile(path: PackageReader.manifestEntry, bytes: manifestBytes, mtime: mtime)
            try w.writeFile(path: PackageReader.signaturesEntry, bytes: sigs.encoded(), mtime: mtime)
            let rootfd = try Sys.openDirectory(tree)
            defer { Sys.close(rootfd) }
            let byPath = Dictionary(manifest.files.map { (PathKey($0.path), $0) }, uniquingKeysWith: { a, _ in a })
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buffer.deallocate() }
            for p in manifest.payloadPaths {
                let f = byPath[PathKey(p)]!
                let shown = tree + "/" + p
                let ifd = try Sys.openat(rootfd, p, O_RDONLY | O_NOFOLLOW, display: shown)
                defer { Sys.close(ifd) }
                try w.writeHeader(path: PackageReader.payloadPrefix + p, permissions: f.permissions ?? 0o644,
                                  size: Int64(f.size), mtime: mtime)
                var hasher = SHA256()
                var left = f.size
                while left > 0 {
                    let n = try Sys.read(ifd, buffer.baseAddress!, Int(min(UInt64(buffer.count), left)), display: shown)
                    if n == 0 { break }
                    let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                    hasher.update(bufferPointer: chunk)
                    try w.writeData(chunk)
                    left -= UInt64(n)
                }
                let extra = try Sys.read(ifd, buffer.baseAddress!, 1, display: shown)
                if left != 0 || extra != 0 || Hex.encode(hasher.finalize()) != f.sha256 {
                    throw CourierError(.integrity, "\(Escape.text(shown)): changed while being packaged; run again")
                }
            }
            try w.finish()
            try Sys.fsync(fd, display: tmp)
            Sys.close(fd)
            try Sys.rename(tmp, out)
            Sys.fsyncDirectory(dir.isEmpty ? "." : dir)
        } catch {
            Sys.close(fd)
            _ = unlink(tmp)
            throw error
        }
    }
}

import SystemPackage
