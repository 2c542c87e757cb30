import FoundationEssentials

// Format 2 of the manifest (docs/FORMAT.md §3.5): deltas that carry in-file patches and, instead
// of the complete file list, a digest of it. Why: a delta of 10 changed files in a 1,000-file
// tree spent 60 of its 63 KB spelling out the unchanged 990, and a whole-file delta of a 64 MiB
// database that changed by 0.5 % was the full file again.

extension Manifest {
    /// One file a format 2 delta carries: whole (`sha256` set, entry `payload/<path>`) or made
    /// by patch `patch` from the base file at the same path, which must be `baseSize` bytes.
    public struct Change: Codable, Sendable, Equatable {
        public var path: String
        public var size: UInt64
        public var mode: String
        public var sha256: String?
        public var patch: Int?
        public var baseSize: UInt64?

        public init(path: String, size: UInt64, mode: UInt32, sha256: String) {
            self.path = path
            self.size = size
            self.mode = FileEntry.formatMode(mode)
            self.sha256 = sha256
        }
        public init(path: String, size: UInt64, mode: UInt32, patch: Int, baseSize: UInt64) {
            self.path = path
            self.size = size
            self.mode = FileEntry.formatMode(mode)
            self.patch = patch
            self.baseSize = baseSize
        }

        enum CodingKeys: String, CodingKey {
            case path, size, mode, sha256, patch
            case baseSize = "base_size"
        }
        public var permissions: UInt32? { FileEntry.permissions(of: mode) }

        public static func == (a: Change, b: Change) -> Bool {
            a.path.sameBytes(b.path) && a.size == b.size && a.mode == b.mode && a.sha256 == b.sha256
                && a.patch == b.patch && a.baseSize == b.baseSize
        }
    }

    /// One patch: the concatenated contents of its files' base versions (in `changes` order) is
    /// the zstd prefix; decompressing the entry `patches/<i>` against it gives the concatenated
    /// new contents. Both concatenations are named by SHA-256 and checked by the client.
    public struct Patch: Codable, Sendable, Equatable {
        public static let zstdPrefix = "zstd-prefix"
        public var algorithm: String
        /// Bytes of the entry `patches/<i>`, and their SHA-256 (checked by `verify` too).
        public var size: UInt64
        public var sha256: String
        public var baseSha256: String
        public var resultSha256: String
        /// log2 of the zstd window the frame needs (prefix and result fit in it).
        public var windowLog: Int

        public init(size: UInt64, sha256: String, baseSha256: String, resultSha256: String, windowLog: Int) {
            self.algorithm = Patch.zstdPrefix
            self.size = size
            self.sha256 = sha256
            self.baseSha256 = baseSha256
            self.resultSha256 = resultSha256
            self.windowLog = windowLog
        }
        enum CodingKeys: String, CodingKey {
            case algorithm, size, sha256
            case baseSha256 = "base_sha256"
            case resultSha256 = "result_sha256"
            case windowLog = "window_log"
        }
    }

    /// The complete resulting tree of a format 2 delta: how many files, how many bytes, and the
    /// SHA-256 of its file list (`TreeDigest`).
    public struct ResultSummary: Codable, Sendable, Equatable {
        public var files: UInt64
        public var bytes: UInt64
        public var digest: String
        public init(files: UInt64, bytes: UInt64, digest: String) {
            self.files = files
            self.bytes = bytes
            self.digest = digest
        }
    }

    /// An archive entry after the manifest and signatures, and what it must be.
    public struct PayloadEntry: Sendable {
        public enum Kind: Sendable, Equatable {
            case file
            case patch(Int)
        }
        public var kind: Kind
        /// An entry of a decoded manifest's compact file list is read from there when asked for:
        /// a reader that only checks size, mode and digest builds no strings (issue #13.2).
        private enum Source: Sendable {
            case entry(FileEntry)
            case list(FileList, Int)
        }
        private let source: Source

        public init(kind: Kind, file: FileEntry) {
            self.kind = kind
            source = .entry(file)
        }
        init(kind: Kind, list: FileList, index: Int) {
            self.kind = kind
            source = .list(list, index)
        }

        /// For `.file`, the file; for `.patch(i)`, size and SHA-256 of the patch (path "i", mode 0644).
        public var file: FileEntry {
            switch source {
            case .entry(let f): return f
            case .list(let l, let i): return l[i]
            }
        }
        public var size: UInt64 {
            switch source {
            case .entry(let f): return f.size
            case .list(let l, let i): return l.size(i)
            }
        }
        public var permissions: UInt32? {
            switch source {
            case .entry(let f): return f.permissions
            case .list(let l, let i): return l.permissions(i)
            }
        }
        /// Whether the entry's SHA-256 is the 32 bytes `d`.
        public func digestEquals(_ d: UnsafeRawBufferPointer) -> Bool {
            switch source {
            case .entry(let f): return FileList.digest(d, equalsHex: f.sha256)
            case .list(let l, let i): return l.digestEquals(i, d)
            }
        }
        /// The entry's name in the archive.
        public var entryName: String {
            switch kind {
            case .file: return PackageReader.payloadPrefix + file.path
            case .patch(let i): return PackageReader.patchPrefix + String(i)
            }
        }
    }

    func validateFormat2(maxFiles: Int) throws {
        func bad(_ s: String) -> CourierError { CourierError(.malformed, "manifest: \(s)") }
        guard kind == .delta else { throw bad("format 2 is for deltas only; a full package is format 1") }
        guard files.isEmpty else { throw bad("a format 2 delta has no files list (it has result)") }
        guard let b = base else { throw bad("a delta needs a base revision") }
        guard b < revision else { throw bad("base revision \(b) is not below revision \(revision)") }
        guard let ch = changes, let rm = removed, let ps = patches, let r = result else {
            throw bad("a format 2 delta needs changed, removed, patches and result (lists may be empty)")
        }
        guard ch.count <= maxFiles, rm.count <= maxFiles, UInt64(maxFiles) >= r.files else {
            throw CourierError(.limit, "manifest lists more than the limit of \(maxFiles) files")
        }
        guard Manifest.isHex64(r.digest) else { throw bad("result digest must be 64 lowercase hex digits") }
        guard r.files >= UInt64(ch.count) else {
            throw bad("result has \(r.files) files, fewer than the \(ch.count) changed")
        }
        var previous: String? = nil
        var used = [Bool](repeating: false, count: ps.count)
        for c in ch {
            let shown = Escape.quoted(c.path)
            if let p = Names.pathProblem(c.path) { throw bad("changed \(shown): \(p)") }
            if let prev = previous, !prev.utf8.lexicographicallyPrecedes(c.path.utf8) {
                throw bad("changed is not sorted and unique at \(shown)")
            }
            previous = c.path
            guard c.permissions != nil else {
                throw bad(
                    "changed \(shown): mode \(Escape.quoted(c.mode)) must be four octal digits 0000-0777 (no setuid, setgid or sticky bit)"
                )
            }
            switch (c.sha256, c.patch, c.baseSize) {
            case (let h?, nil, nil):
                guard Manifest.isHex64(h) else { throw bad("changed \(shown): sha256 must be 64 lowercase hex digits") }
            case (nil, let i?, _?):
                guard i >= 0, i < ps.count else {
                    throw bad("changed \(shown): patch \(i) does not exist (\(ps.count) patches)")
                }
                used[i] = true
            default:
                throw bad("changed \(shown): needs either sha256 (carried whole) or patch and base_size (patched)")
            }
        }
        for (i, p) in ps.enumerated() {
            guard p.algorithm == Patch.zstdPrefix else {
                throw bad(
                    "patch \(i): algorithm \(Escape.quoted(p.algorithm)) is not known (only \(Patch.zstdPrefix)); upgrade Courier on this machine"
                )
            }
            guard Manifest.isHex64(p.sha256), Manifest.isHex64(p.baseSha256), Manifest.isHex64(p.resultSha256) else {
                throw bad("patch \(i): sha256, base_sha256 and result_sha256 must be 64 lowercase hex digits")
            }
            guard p.windowLog >= 10, p.windowLog <= 31 else {
                throw bad("patch \(i): window_log \(p.windowLog) is outside 10 to 31")
            }
            guard used[i] else { throw bad("patch \(i) makes no file") }
        }
        let carried = Set(ch.map { PathKey($0.path) })
        previous = nil
        for p in rm {
            if let problem = Names.pathProblem(p) { throw bad("removed path \(Escape.quoted(p)): \(problem)") }
            if let prev = previous, !prev.utf8.lexicographicallyPrecedes(p.utf8) {
                throw bad("removed is not sorted and unique at \(Escape.quoted(p))")
            }
            previous = p
            if carried.contains(PathKey(p)) { throw bad("removed path \(Escape.quoted(p)) is also changed") }
        }
        // A changed path may not be the directory of another changed path (the rest of the tree
        // is checked against the digest once built).
        for c in ch {
            for parent in Names.parents(c.path) where carried.contains(PathKey(parent)) {
                throw bad(
                    "\(Escape.quoted(parent)) is changed as a file and as the directory of \(Escape.quoted(c.path))")
            }
        }
    }

    static func isHex64(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

/// The JSON shape of both formats. Format 1 writes `files` and, for a delta, `changed` as a list
/// of paths; format 2 writes `changed` as a list of objects, `patches` and `result`, and no
/// `files`. As everywhere in the manifest, a key the format does not define is ignored (FORMAT
/// §3): so `files` in a format 2 manifest, or `result` in a format 1 one, means nothing.
struct ManifestCoding: Codable {
    struct FormatOnly: Decodable { var format: Int }

    var manifest: Manifest
    init(_ m: Manifest) { manifest = m }

    enum Keys: String, CodingKey {
        case format, type, revision, kind, base, created, expires, provenance, files, changed, removed, patches, result
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let format = try c.decode(Int.self, forKey: .format)
        let type = try c.decode(String.self, forKey: .type)
        let revision = try c.decode(UInt64.self, forKey: .revision)
        let kind = try c.decode(Manifest.Kind.self, forKey: .kind)
        let base = try c.decodeIfPresent(UInt64.self, forKey: .base)
        let created = try c.decode(String.self, forKey: .created)
        let expires = try c.decode(String.self, forKey: .expires)
        let provenance = try c.decode([String: String].self, forKey: .provenance)
        var m = Manifest(
            type: type, revision: revision, kind: kind, base: base, created: 0, expires: 0,
            provenance: provenance, files: [])
        m.format = format
        m.created = created
        m.expires = expires
        if format == 2 {
            // Kept as decoded: validation refuses unsorted lists instead of sorting them quietly.
            m.changes = try c.decodeIfPresent([Manifest.Change].self, forKey: .changed)
            m.changed = m.changes?.map(\.path)
            m.patches = try c.decodeIfPresent([Manifest.Patch].self, forKey: .patches)
            m.result = try c.decodeIfPresent(Manifest.ResultSummary.self, forKey: .result)
        } else {
            m.files = try c.decode(FileList.self, forKey: .files)
            m.changed = try c.decodeIfPresent([String].self, forKey: .changed)
        }
        m.removed = try c.decodeIfPresent([String].self, forKey: .removed)
        manifest = m
    }

    func encode(to encoder: Encoder) throws {
        let m = manifest
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(m.format, forKey: .format)
        try c.encode(m.type, forKey: .type)
        try c.encode(m.revision, forKey: .revision)
        try c.encode(m.kind, forKey: .kind)
        try c.encodeIfPresent(m.base, forKey: .base)
        try c.encode(m.created, forKey: .created)
        try c.encode(m.expires, forKey: .expires)
        try c.encode(m.provenance, forKey: .provenance)
        if m.format == 2 {
            try c.encodeIfPresent(m.changes, forKey: .changed)
            try c.encodeIfPresent(m.patches, forKey: .patches)
            try c.encodeIfPresent(m.result, forKey: .result)
        } else {
            try c.encode(m.files, forKey: .files)
            try c.encodeIfPresent(m.changed, forKey: .changed)
        }
        try c.encodeIfPresent(m.removed, forKey: .removed)
    }
}
