import Crypto
@preconcurrency import Glibc
import SystemPackage

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
        /// The bounds of what is built: the stager's configured ones (stage.toml), required so
        /// that none is a silent default (issue #17.6).
        public var limits: Limits
        /// The manifest format of deltas: 2 (in-file patches, a digest instead of the file list;
        /// FORMAT §3.5) or 1 (whole files, complete list) for clients older than format 2.
        public var deltaFormat = 2

        public init(type: String, revision: UInt64, keys: [SigningKey], limits: Limits) {
            self.type = type
            self.revision = revision
            self.keys = keys
            self.limits = limits
        }
    }

    /// A full package of the tree at `tree`. `files`, when given, is a scan of the tree made
    /// earlier (saves hashing it twice); content is re-hashed while written either way.
    @discardableResult
    public static func buildFull(tree: String, to out: String, options: Options, files: [FileEntry]? = nil) throws
        -> Manifest
    {
        let list = try files ?? scan(tree, options)
        let created = options.created ?? Int64(time(nil))
        let m = Manifest(
            type: options.type, revision: options.revision, kind: .full, created: created,
            expires: created + options.lifetime, provenance: options.provenance, files: list)
        try write(m, tree: tree, to: out, options: options)
        return m
    }

    /// A delta from a base (known by its manifest's file list — no base tree needed) to the tree
    /// at `tree`: files that are new or differ in content or mode are carried whole, paths that
    /// are gone are listed as removed, and the manifest still lists the whole target tree.
    ///
    /// Format 2 (the default) needs `baseTree`, a directory holding the base revision's files
    /// at their paths (at least those that changed): a changed file with a base version is
    /// patched against it where that is smaller (`DeltaPatcher`).
    @discardableResult
    public static func buildDelta(
        baseRevision: UInt64, baseFiles: [FileEntry], tree: String, to out: String,
        options: Options, files: [FileEntry]? = nil, baseTree: String? = nil
    ) throws -> Manifest {
        let list = try files ?? scan(tree, options)
        guard baseRevision < options.revision else {
            throw CourierError(.usage, "delta base \(baseRevision) must be below revision \(options.revision)")
        }
        let (changed, removed) = diff(base: baseFiles, target: list)
        let created = options.created ?? Int64(time(nil))
        if options.deltaFormat == 2 {
            guard let baseTree else {
                throw CourierError(.usage, "a format 2 delta needs the base revision's files (baseTree)")
            }
            let scratch = FilePath(out).removingLastComponent().string
            let dir =
                (scratch.isEmpty ? "." : scratch) + "/.patches-\(Sys.processID())-\(options.revision)-\(baseRevision)"
            try Sys.removeTree(dir)
            try Sys.mkdir(dir, 0o700)
            defer { try? Sys.removeTree(dir) }
            let plan = try DeltaPatcher.plan(
                base: baseFiles, target: list, changed: changed, tree: tree,
                baseTree: baseTree, patchDir: dir, options: options)
            let m = Manifest(
                type: options.type, revision: options.revision, base: baseRevision, created: created,
                expires: created + options.lifetime, provenance: options.provenance,
                changes: plan.changes, patches: plan.patches, removed: removed,
                result: TreeDigest.summary(of: list))
            // A small delta is worth zstd's slow levels for its manifest and headers
            // (a 7-file test delta: 1,431 bytes at level 3, 1,384 at 19); the patches are zstd already.
            var o = options
            if o.level == nil && o.compression == .zstd && m.payloadEntries.reduce(0, { $0 + $1.file.size }) <= 8 << 20
            {
                o.level = 19
            }
            try write(m, tree: tree, to: out, options: o, patchDir: dir)
            return m
        }
        let m = Manifest(
            type: options.type, revision: options.revision, kind: .delta, base: baseRevision,
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
            if let o = old.removeValue(forKey: PathKey(f.path)), o.sha256 == f.sha256, o.mode == f.mode,
                o.size == f.size
            {
                continue
            }
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
        if let v = getenv("COURIER_ZSTD_THREADS").map({ String(cString: $0) }), let n = Int(v), n >= 0 {
            return min(n, 64)
        }
        let cores = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        return cores > 1 ? min(cores, 4) : 0
    }

    /// `patchDir` holds patch `i` of a format 2 delta as the file `<i>`.
    static func write(_ manifest: Manifest, tree: String, to out: String, options: Options, patchDir: String? = nil)
        throws
    {
        try manifest.validate()
        guard !options.keys.isEmpty else { throw CourierError(.key, "no signing key given") }
        let manifestBytes = manifest.encoded()
        let sigs = SignatureSet.sign(manifestBytes, with: options.keys)
        let dir = FilePath(out).removingLastComponent().string
        let base = FilePath(out).lastComponent?.string ?? out
        let tmp = (dir.isEmpty ? "" : dir + "/") + ".\(base).tmp-\(Sys.processID())"
        let fd = try OwnedFD.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644)
        do {
            let w = try ArchiveWriter(
                fd: fd.raw, display: tmp, compression: options.compression, level: options.level,
                threads: compressionThreads)
            let mtime = manifest.createdTime
            try w.writeFile(path: PackageReader.manifestEntry, bytes: manifestBytes, mtime: mtime)
            try w.writeFile(path: PackageReader.signaturesEntry, bytes: sigs.encoded(), mtime: mtime)
            let rootfd = try OwnedFD.openDirectory(tree)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buffer.deallocate() }
            for entry in manifest.payloadEntries {
                let f = entry.file
                let ifd: OwnedFD
                let shown: String
                switch entry.kind {
                case .file:
                    shown = tree + "/" + f.path
                    ifd = try OwnedFD.open(at: rootfd.raw, f.path, O_RDONLY | O_NOFOLLOW, display: shown)
                case .patch:
                    shown = (patchDir ?? ".") + "/" + f.path
                    ifd = try OwnedFD.open(shown, O_RDONLY | O_NOFOLLOW)
                }
                try w.writeHeader(
                    path: entry.entryName, permissions: f.permissions ?? 0o644,
                    size: Int64(f.size), mtime: mtime)
                var hasher = SHA256()
                var left = f.size
                while left > 0 {
                    let n = try Sys.read(
                        ifd.raw, buffer.baseAddress!, Int(min(UInt64(buffer.count), left)), display: shown)
                    if n == 0 { break }
                    let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                    hasher.update(bufferPointer: chunk)
                    try w.writeData(chunk)
                    left -= UInt64(n)
                }
                let extra = try Sys.read(ifd.raw, buffer.baseAddress!, 1, display: shown)
                if left != 0 || extra != 0 || Hex.encode(hasher.finalize()) != f.sha256 {
                    throw CourierError(.integrity, "\(Escape.text(shown)): changed while being packaged; run again")
                }
            }
            try w.finish()
            try Sys.fsync(fd.raw, display: tmp)
        } catch {
            _ = consume fd  // closed before the temporary file is removed
            try? Sys.unlink(tmp)
            throw error
        }
        // Closed before the rename that publishes it (a close error is ignored, as fsync has
        // reported the write). The rename has its own clean-up: closing once more there, as a
        // single catch did, could close a descriptor another thread had just been given.
        _ = consume fd
        do {
            try Sys.rename(tmp, out)
        } catch {
            try? Sys.unlink(tmp)
            throw error
        }
        Sys.fsyncDirectory(dir.isEmpty ? "." : dir)
    }
}
