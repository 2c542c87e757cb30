@preconcurrency import Glibc
import SystemPackage

/// The typed outbox on the staging server (docs/OUTBOX.md):
///
///     outbox/index.json
///     outbox/<type>/<revision>/<type>_<revision>.cpkg
///     outbox/<type>/<revision>/<type>_<revision>_from_<base>.cpkg
///     outbox/<type>/latest       → <revision>   (symlink)
///     outbox/<type>/latest.txt   "<revision>\n"  (for copiers that do not follow links)
///
/// A revision directory appears only complete: it is built as `<type>/.staging-<revision>` and
/// renamed into place; `latest` and `index.json` are switched after it, atomically. Anything
/// starting with `.` is work in progress that copiers must skip (courier-deliver does).
public struct Outbox: Sendable {
    public let root: String
    public init(root: String) { self.root = root }

    public func typeDir(_ type: String) -> String { root + "/" + type }
    public func revisionDir(_ type: String, _ rev: UInt64) -> String { typeDir(type) + "/" + String(rev) }
    public func fullPackage(_ type: String, _ rev: UInt64) -> String {
        revisionDir(type, rev) + "/" + Names.fullPackageName(type: type, revision: rev)
    }

    /// Published revisions of a type, ascending. Only complete (renamed-into-place) directories.
    public func revisions(_ type: String) throws -> [UInt64] {
        guard Sys.isDirectory(typeDir(type)) else { return [] }
        return try Sys.listDirectory(typeDir(type)).compactMap { Names.parseRevision($0) }
            .filter { Sys.exists(fullPackage(type, $0)) }.sorted()
    }

    /// The revision `latest.txt` names, if it is still published.
    public func latest(_ type: String) -> UInt64? {
        guard let b = try? Sys.readFile(typeDir(type) + "/latest.txt", limit: 64),
            let r = Names.parseRevision(String(decoding: b, as: UTF8.self).trimming(" \n\r\t")),
            Sys.exists(fullPackage(type, r))
        else { return nil }
        return r
    }

    /// The revision the `latest` symlink names (not checked for completeness). `setLatest`
    /// writes `latest.txt` first and the link second, so after a crash between the two they
    /// disagree until the next run repairs them.
    public func latestLink(_ type: String) -> UInt64? {
        Sys.readLink(typeDir(type) + "/latest").flatMap { Names.parseRevision($0) }
    }

    /// The manifest of a published full package, read with the stager's own public keys.
    /// `limits`: those the stager builds under (stage.toml), so that it reads back what it built.
    public func manifest(_ type: String, _ rev: UInt64, trust: TrustStore, limits: Limits) throws -> Manifest {
        var o = VerifyOptions(trust: trust, limits: limits)
        o.ignoreExpiry = true
        o.expectedType = type
        return try PackageReader(path: fullPackage(type, rev), options: o).manifest
    }

    public struct Published: Sendable {
        public var revision: UInt64
        public var full: (file: String, size: Int64)
        public var deltas: [(base: UInt64, file: String, size: Int64)]
        /// Deltas built but not published: at least `uselessDeltaRatio` of the full package.
        public var skippedDeltas: [(base: UInt64, size: Int64)] = []
        public var manifest: Manifest
    }

    /// A delta of at least this fraction of the full package's size is not published: the
    /// client would copy its base tree and apply a package nearly as large as the full one.
    public static let uselessDeltaRatio = 0.9

    /// Builds the full package and deltas against `bases` in a hidden staging directory, then
    /// renames it into place and switches `latest`. Crash-safe: a leftover staging directory is
    /// removed by `cleanStaging` on the next run and the revision is simply built again.
    public func publish(
        type: String, revision: UInt64, tree: String, files: [FileEntry],
        bases: [(revision: UInt64, files: [FileEntry])], options: PackageBuilder.Options,
        trust: TrustStore? = nil, faults: FaultPoints = .none
    ) throws -> Published {
        let tdir = typeDir(type)
        try Sys.mkdirs(tdir)
        let final = revisionDir(type, revision)
        if Sys.exists(final) {
            throw CourierError(.io, "\(final): revision \(revision) is already published; revisions only grow")
        }
        let staging = tdir + "/.staging-\(revision)"
        try Sys.removeTree(staging)
        try Sys.mkdir(staging)
        do {
            var o = options
            o.revision = revision
            o.type = type
            let fullName = Names.fullPackageName(type: type, revision: revision)
            let m = try PackageBuilder.buildFull(tree: tree, to: staging + "/" + fullName, options: o, files: files)
            try faults.hit("after-full")
            var deltas: [(UInt64, String, Int64)] = []
            var skipped: [(UInt64, Int64)] = []
            let fullSize = fileSize(staging + "/" + fullName)
            for b in bases where b.revision < revision {
                let name = Names.deltaPackageName(type: type, revision: revision, base: b.revision)
                // Format 2 patches changed files against their base versions, taken out of the
                // base's full package (verified as it is read) into a scratch directory.
                var baseTree: String? = nil
                if o.deltaFormat == 2 {
                    let dir = staging + "/.base-\(b.revision)"
                    var vo = VerifyOptions(
                        trust: trust ?? TrustStore(keys: o.keys.map(\.publicKey)), limits: o.limits)
                    vo.ignoreExpiry = true
                    vo.expectedType = type
                    try DeltaPatcher.extractBase(
                        package: fullPackage(type, b.revision), verify: vo, baseFiles: b.files,
                        target: files, into: dir)
                    baseTree = dir
                }
                defer { if let d = baseTree { try? Sys.removeTree(d) } }
                try PackageBuilder.buildDelta(
                    baseRevision: b.revision, baseFiles: b.files, tree: tree,
                    to: staging + "/" + name, options: o, files: files, baseTree: baseTree)
                let size = fileSize(staging + "/" + name)
                if Double(size) >= Outbox.uselessDeltaRatio * Double(fullSize) {
                    try Sys.unlink(staging + "/" + name)
                    skipped.append((b.revision, size))
                } else {
                    deltas.append((b.revision, name, size))
                }
                try faults.hit("after-delta")
            }
            Sys.fsyncDirectory(staging)
            try faults.hit("before-rename")
            try Sys.rename(staging, final)
            Sys.fsyncDirectory(tdir)
            try faults.hit("after-rename")
            try setLatest(type, revision, faults: faults)
            return Published(
                revision: revision, full: (fullName, fullSize), deltas: deltas,
                skippedDeltas: skipped, manifest: m)
        } catch {
            try? Sys.removeTree(staging)
            throw error
        }
    }

    /// Points `latest` (symlink) and `latest.txt` at `revision`, each by an atomic rename.
    public func setLatest(_ type: String, _ revision: UInt64, faults: FaultPoints = .none) throws {
        let tdir = typeDir(type)
        try Sys.writeFileAtomically(tdir + "/latest.txt", Array("\(revision)\n".utf8))
        try faults.hit("latest-before-link")
        try Sys.replaceSymlink(in: tdir, name: "latest", target: String(revision))
    }

    /// Removes leftovers of an interrupted run: hidden staging directories and temporaries.
    @discardableResult
    public func cleanStaging(_ type: String) throws -> [String] {
        guard Sys.isDirectory(typeDir(type)) else { return [] }
        var removed: [String] = []
        for name in try Sys.listDirectory(typeDir(type)) where name.hasPrefix(".") {
            try Sys.removeTree(typeDir(type) + "/" + name)
            removed.append(name)
        }
        return removed
    }

    /// Keeps the newest `keep` revisions; never removes the one `latest` names, nor a `held`
    /// one (a revision a delivery policy still names: production held on an older revision).
    @discardableResult
    public func applyRetention(_ type: String, keep: Int, held: Set<UInt64> = []) throws -> [UInt64] {
        let revs = try revisions(type)
        let latest = self.latest(type)
        var removed: [UInt64] = []
        let doomed = revs.dropLast(keep).filter { $0 != latest && !held.contains($0) }
        // index.json first loses them (issue #15, found by StageTortureTests): the index is
        // rewritten only at the end of a run, so a stager killed after this removal and before
        // that write left an index naming packages that were gone — which a pull copier reads.
        try dropFromIndex(type, Set(doomed))
        for r in doomed {
            // Rename out of sight first so a copier never sees a half-deleted revision.
            let hidden = typeDir(type) + "/.removing-\(r)"
            try Sys.rename(revisionDir(type, r), hidden)
            try Sys.removeTree(hidden)
            removed.append(r)
        }
        return removed
    }

    /// Removes revisions about to be deleted from `index.json` (no-op without an index, or when
    /// it does not list them), so that the index never names a package that is not on disk; the
    /// run's own index write then rebuilds it from the directories as always.
    func dropFromIndex(_ type: String, _ revs: Set<UInt64>) throws {
        guard !revs.isEmpty, var idx = try? readIndex(), var info = idx.types[type] else { return }
        let kept = info.revisions.filter { !revs.contains($0.revision) }
        if kept.count == info.revisions.count && !(info.latest.map(revs.contains) ?? false) { return }
        info.revisions = kept
        if let l = info.latest, revs.contains(l) { info.latest = latest(type) }
        idx.types[type] = info
        try Sys.writeFileAtomically(root + "/index.json", idx.encoded())
    }

    /// Rebuilds `index.json` from the directories, the truth on disk, and writes it when it
    /// differs from the file there (or there is none): so every run repairs an index left stale
    /// by a stager killed between a publication and the index write, or by a revision removed
    /// by hand, and a run that changed nothing leaves the file (and its `generated` time) alone.
    /// Package hashes are reused from the previous index when the file size matches (packages
    /// are immutable once published), else computed. Returns the index and whether it was written.
    /// `limits`: the publisher's (stage.toml's), under which new manifests are read.
    @discardableResult
    public func writeIndex(types: [String], now: Int64, trust: TrustStore, limits: Limits) throws -> (
        index: OutboxIndex, written: Bool
    ) {
        // The temporary of an index write a killed run left behind (`.index.json.tmp-<pid>`)
        // was never removed (issue #15, found by StageTortureTests). The caller holds the
        // run lock, so no other writer owns one.
        for name in (try? Sys.listDirectory(root)) ?? [] where name.hasPrefix(".index.json.tmp-") {
            try? Sys.unlink(root + "/" + name)
        }
        let previous = try? readIndex()
        var known: [String: OutboxIndex.PackageInfo] = [:]
        for t in previous?.types.values ?? [:].values {
            for r in t.revisions { for p in r.packages { known[p.file] = p } }
        }
        var idx = OutboxIndex(generated: RFC3339.format(now), types: [:])
        let allTypes = Set(types).union(try listTypes())
        for type in allTypes.sorted() {
            var info = OutboxIndex.TypeInfo(latest: latest(type), revisions: [])
            for rev in try revisions(type) {
                let dir = revisionDir(type, rev)
                var pkgs: [OutboxIndex.PackageInfo] = []
                for name in try Sys.listDirectory(dir).sorted() {
                    guard let pn = Names.parsePackageFileName(name), pn.type == type, pn.revision == rev else {
                        continue
                    }
                    let rel = "\(type)/\(rev)/\(name)"
                    let size = fileSize(dir + "/" + name)
                    if let k = known[rel], k.size == size {
                        pkgs.append(k)
                        continue
                    }
                    pkgs.append(
                        .init(
                            file: rel, kind: pn.base == nil ? .full : .delta, base: pn.base, size: size,
                            sha256: try hashFile(dir + "/" + name)))
                }
                let prevRev = previous?.types[type]?.revisions.first { $0.revision == rev }
                let m: (created: String, files: Int, bytes: UInt64)
                if let p = prevRev {
                    m = (p.created, p.files, p.bytes)
                } else {
                    let man = try manifest(type, rev, trust: trust, limits: limits)
                    m = (man.created, man.files.count, man.payloadBytes)
                }
                info.revisions.append(
                    .init(revision: rev, created: m.created, files: m.files, bytes: m.bytes, packages: pkgs))
            }
            if !info.revisions.isEmpty { idx.types[type] = info }
        }
        if var same = previous {
            same.generated = idx.generated
            if same == idx { return (previous!, false) }
        }
        try Sys.writeFileAtomically(root + "/index.json", idx.encoded())
        return (idx, true)
    }

    public func readIndex() throws -> OutboxIndex {
        let p = root + "/index.json"
        return try OutboxIndex.decode(Sys.readFile(p, limit: 64 << 20), path: p)
    }

    /// Type directories present in the outbox.
    public func listTypes() throws -> [String] {
        guard Sys.isDirectory(root) else { return [] }
        return try Sys.listDirectory(root).filter {
            !$0.hasPrefix(".") && Sys.isDirectory(root + "/" + $0) && (try? Names.validateType($0)) != nil
        }
    }

    /// A package's size in bytes (0 when it is gone): for the index, the report and delivery.
    public func fileSize(_ p: String) -> Int64 { (try? Sys.lstat(p)).flatMap { $0.map { Int64($0.st_size) } } ?? 0 }

    func hashFile(_ p: String) throws -> String {
        let fd = try OwnedFD.open(p, O_RDONLY)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        return try TreeScanner.hashFile(fd.raw, display: p, buffer: buf).0
    }
}
