import FoundationEssentials

/// One file of the resulting tree, as the manifest lists it. Equal and hashed by the bytes of
/// `path` (see `PathKey`), not by String's canonical equivalence.
public struct FileEntry: Codable, Sendable, Equatable, Hashable {
    public var path: String
    public var size: UInt64
    /// Lowercase hex SHA-256 of the content.
    public var sha256: String
    /// Permission bits as four octal digits, e.g. "0644". Never setuid, setgid or sticky.
    public var mode: String

    public init(path: String, size: UInt64, sha256: String, mode: UInt32) {
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.mode = FileEntry.formatMode(mode)
    }

    public static func == (a: FileEntry, b: FileEntry) -> Bool {
        a.path.sameBytes(b.path) && a.size == b.size && a.sha256 == b.sha256 && a.mode == b.mode
    }

    public func hash(into h: inout Hasher) {
        h.combine(PathKey(path))
        h.combine(size)
        h.combine(sha256)
        h.combine(mode)
    }

    public static func formatMode(_ m: UInt32) -> String {
        let s = String(m & 0o777, radix: 8)
        return String(repeating: "0", count: 4 - s.count) + s
    }

    /// The numeric permission bits; nil if `mode` is not of the form `0[0-7]{3}`.
    public var permissions: UInt32? { FileEntry.permissions(of: mode) }

    /// The permission bits of a four-digit mode text; nil unless it is `0[0-7]{3}`.
    public static func permissions(of mode: String) -> UInt32? {
        let b = Array(mode.utf8)
        guard b.count == 4, b[0] == 0x30, b[1...].allSatisfy({ $0 >= 0x30 && $0 <= 0x37 }) else { return nil }
        return UInt32(mode, radix: 8)
    }
}

/// The signed description of a package (docs/FORMAT.md §3). Format 1 (every full package, and
/// deltas written with `delta_format = 1`) lists the *complete resulting tree*; a format 2 delta
/// lists only its changes, patches and removals, plus the count, size and digest of the complete
/// resulting file list (`result`), which the client recomputes over the tree it built (§3.5).
/// Either way a client checks the result of applying a package, not only its input.
public struct Manifest: Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case full, delta }

    /// The format full packages are written in, and the only one a full package may have.
    public static let currentFormat = 1
    /// The newest format this reader understands (deltas with in-file patches).
    public static let newestFormat = 2

    public var format: Int
    public var type: String
    public var revision: UInt64
    public var kind: Kind
    /// The revision a delta applies to; absent for a full package.
    public var base: UInt64?
    public var created: String
    public var expires: String
    /// Free-form string pairs: source, URL, upstream version, staging host, tool version.
    public var provenance: [String: String]
    /// Every file of the resulting tree, sorted by the bytes of `path`. Decoded from bytes, a
    /// compact table (see `FileList`).
    public var files: FileList
    /// Delta only: paths of `files` that the package carries (changed or added), sorted.
    public var changed: [String]?
    /// Delta only: paths of the base tree that are not in the result, sorted.
    public var removed: [String]?
    /// Format 2 delta only: the carried files (whole or patched), sorted by path bytes; `changed`
    /// holds their paths and `files` is empty.
    public var changes: [Change]?
    /// Format 2 delta only: the in-file patches the package carries as `patches/<i>` entries.
    public var patches: [Patch]?
    /// Format 2 delta only: the complete resulting tree, summarised.
    public var result: ResultSummary?

    public init(
        type: String, revision: UInt64, kind: Kind, base: UInt64? = nil, created: Int64, expires: Int64,
        provenance: [String: String], files: [FileEntry], changed: [String]? = nil, removed: [String]? = nil
    ) {
        self.format = Manifest.currentFormat
        self.type = type
        self.revision = revision
        self.kind = kind
        self.base = base
        self.created = RFC3339.format(created)
        self.expires = RFC3339.format(expires)
        self.provenance = provenance
        self.files = FileList(files.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) })
        self.changed = changed?.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        self.removed = removed?.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// A format 2 delta (FORMAT §3.5): changes, patches and a digest of the resulting file list.
    public init(
        type: String, revision: UInt64, base: UInt64, created: Int64, expires: Int64,
        provenance: [String: String], changes: [Change], patches: [Patch], removed: [String],
        result: ResultSummary
    ) {
        self.format = 2
        self.type = type
        self.revision = revision
        self.kind = .delta
        self.base = base
        self.created = RFC3339.format(created)
        self.expires = RFC3339.format(expires)
        self.provenance = provenance
        self.files = []
        self.changes = changes.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        self.changed = self.changes!.map(\.path)
        self.patches = patches
        self.removed = removed.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        self.result = result
    }

    /// Files in the resulting tree: the list's length, or `result.files` for a format 2 delta.
    public var resultFileCount: Int { result.map { Int(clamping: $0.files) } ?? files.count }
    /// Bytes in the resulting tree.
    public var resultBytes: UInt64 { result?.bytes ?? files.totalSize }

    public var createdTime: Int64 { RFC3339.parse(created) ?? 0 }
    public var expiresTime: Int64 { RFC3339.parse(expires) ?? 0 }

    /// The paths whose content the package carries: all files for a full package, `changed` for a delta.
    public var payloadPaths: [String] {
        kind == .full ? files.map(\.path) : (changed ?? [])
    }

    /// Total bytes of the files the package carries or produces (a patched file counts its result).
    public var payloadBytes: UInt64 {
        if kind == .full { return files.totalSize }
        if let ch = changes { return ch.reduce(0) { $0 &+ $1.size } }
        let set = Set((changed ?? []).map(PathKey.init))
        return files.reduce(0) { set.contains(PathKey($1.path)) ? $0 &+ $1.size : $0 }
    }

    /// The archive entries after the manifest and the signatures, with what each must be: every
    /// carried whole file (`payload/<path>`) and, in a format 2 delta, every patch (`patches/<i>`).
    public var payloadEntries: [PayloadEntry] {
        if changes != nil {
            var out = wholeFiles.map { PayloadEntry(kind: .file, file: $0) }
            for (i, p) in (patches ?? []).enumerated() {
                out.append(
                    PayloadEntry(
                        kind: .patch(i), file: FileEntry(path: String(i), size: p.size, sha256: p.sha256, mode: 0o644)))
            }
            return out
        }
        if kind == .full { return files.map { PayloadEntry(kind: .file, file: $0) } }
        let carried = Set(payloadPaths.map(PathKey.init))
        return files.filter { carried.contains(PathKey($0.path)) }.map { PayloadEntry(kind: .file, file: $0) }
    }

    /// For each patch, the files it produces, in the order of its concatenated base and result:
    /// one pass over `changes` (asking per patch would be patches × changes).
    public func patchGroups() -> [[Change]] {
        var groups = [[Change]](repeating: [], count: patches?.count ?? 0)
        for c in changes ?? [] { if let i = c.patch, groups.indices.contains(i) { groups[i].append(c) } }
        return groups
    }

    /// Format 2: the changed files carried whole (`payload/<path>`), as FileEntry, sorted by path.
    public var wholeFiles: [FileEntry] {
        (changes ?? []).compactMap { c in
            c.sha256.map { FileEntry(path: c.path, size: c.size, sha256: $0, mode: c.permissions ?? 0o644) }
        }
    }

    public var fileName: String {
        kind == .full
            ? Names.fullPackageName(type: type, revision: revision)
            : Names.deltaPackageName(type: type, revision: revision, base: base ?? 0)
    }

    // MARK: Encoding

    /// The bytes Courier writes: JSON with sorted keys, no insignificant whitespace. Readers do
    /// not depend on this shape: signatures cover the exact bytes of the entry, whatever they are.
    public func encoded() -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try! enc.encode(ManifestCoding(self)))
    }

    /// Decodes and validates manifest bytes. Every refusal names the field and the rule.
    ///
    /// `maxFiles` bites in the strict scan, before anything is allocated per file: a signed
    /// manifest listing millions of files costs its bytes, not a FileEntry per line (issue #11.6).
    /// The `files` array is read by `CompactFileList` straight from the bytes into a compact table;
    /// JSONDecoder sees the document with that array cut out (its map of a 100,000-file list was
    /// most of verify's memory and half its time, issue #13.2).
    public static func decode(_ bytes: [UInt8], maxFiles: Int = Int.max) throws -> Manifest {
        try decode(bytes, maxFiles: maxFiles, releasing: false)
    }

    /// As `decode`, for a caller that needs the manifest and not its bytes afterwards: the pages
    /// of `bytes` the file list has been read from are given back to the kernel as the table
    /// grows, so that a 14 MiB manifest and its 7 MiB table are never resident together (issue
    /// #13.2). `bytes` is emptied, whether decoding succeeds or not.
    public static func decode(consuming bytes: inout [UInt8], maxFiles: Int = Int.max) throws -> Manifest {
        // Pages are given back only from a buffer that is ours alone: a buffer shared with
        // another array (copy-on-write) is copied here first, never zeroed under its other owner.
        bytes.withUnsafeMutableBufferPointer { _ in }
        let b = bytes
        bytes = []
        return try decode(b, maxFiles: maxFiles, releasing: true)
    }

    private static func decode(_ bytes: [UInt8], maxFiles: Int, releasing: Bool) throws -> Manifest {
        do {
            try StrictJSON.check(bytes, what: "manifest", maxArrayElements: maxFiles)
        } catch let e as CourierError where e.code == .limit {
            throw CourierError(.limit, "manifest lists more than the limit of \(maxFiles) files (\(e.message))")
        }
        let filesRange = try CompactFileList.filesRange(bytes)
        var rest: [UInt8] = []  // built, not copied and changed: the copy would be the whole list again
        if let r = filesRange {
            rest.reserveCapacity(bytes.count - r.count + 2)
            rest += bytes[..<r.lowerBound]
            rest += [0x5b, 0x5d]
            rest += bytes[r.upperBound...]  // "[]"
        } else {
            rest = bytes
        }
        var m: Manifest
        do {
            let format = try JSONDecoder().decode(ManifestCoding.FormatOnly.self, from: Data(rest)).format
            guard format >= 1, format <= Manifest.newestFormat else {
                throw CourierError(
                    .malformed,
                    "manifest: format \(format) is newer than this Courier understands (formats 1 to \(Manifest.newestFormat)); upgrade Courier on this machine to read it"
                )
            }
            m = try JSONDecoder().decode(ManifestCoding.self, from: Data(rest)).manifest
        } catch let e as CourierError {
            throw e
        } catch {
            throw CourierError(.malformed, "manifest is not valid JSON of format 1 or 2: \(error)")
        }
        // Format 2 has no `files` (FORMAT §3.5: if present, ignored like any unknown key).
        if m.format != 2, let r = filesRange {
            m.files = FileList(
                table: try CompactFileList.parse(bytes, filesAt: r, maxFiles: maxFiles, releasing: releasing))
        }
        try m.validate(maxFiles: maxFiles)
        return m
    }

    /// Every rule of docs/FORMAT.md §3 that can be checked without the payload.
    public func validate(maxFiles: Int = Int.max) throws {
        func bad(_ s: String) -> CourierError { CourierError(.malformed, "manifest: \(s)") }
        guard format >= 1, format <= Manifest.newestFormat else {
            throw bad(
                "format \(format) is newer than this Courier understands (formats 1 to \(Manifest.newestFormat)); upgrade Courier on this machine to read it"
            )
        }
        if format == 2 { return try validateFormat2(maxFiles: maxFiles) }
        try Names.validateType(type)
        guard revision > 0 else { throw bad("revision must be a positive integer") }
        guard let c = RFC3339.parse(created) else {
            throw bad("created \(Escape.quoted(created)) is not YYYY-MM-DDTHH:MM:SSZ")
        }
        guard let e = RFC3339.parse(expires) else {
            throw bad("expires \(Escape.quoted(expires)) is not YYYY-MM-DDTHH:MM:SSZ")
        }
        guard e > c else { throw bad("expires is not after created") }
        guard files.count <= maxFiles else {
            throw CourierError(.limit, "manifest lists \(files.count) files, more than the limit of \(maxFiles)")
        }
        // Paths are compared as bytes (FORMAT §8): "caf\u{E9}" and "cafe\u{301}" are two paths.
        // A list decoded from bytes was checked for order, repeats, digests and modes as it was
        // parsed; one given in memory is checked here.
        if !files.isCompact {
            var previous: String? = nil
            for f in files {
                let shown = Escape.quoted(f.path)
                if let p = Names.pathProblem(f.path) { throw bad("file \(shown): \(p)") }
                if let prev = previous, !prev.utf8.lexicographicallyPrecedes(f.path.utf8) {
                    throw bad(
                        prev.sameBytes(f.path)
                            ? "file \(shown) listed twice"
                            : "files are not sorted by path (\(Escape.quoted(prev)) before \(shown))")
                }
                previous = f.path
                guard f.sha256.utf8.count == 64,
                    f.sha256.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
                else { throw bad("file \(shown): sha256 must be 64 lowercase hex digits") }
                guard f.permissions != nil else {
                    throw bad(
                        "file \(shown): mode \(Escape.quoted(f.mode)) must be four octal digits 0000-0777 (no setuid, setgid or sticky bit)"
                    )
                }
            }
        }
        for i in files.indices {
            let path = files.pathBytes(i)
            let name = files.pathString(i)
            if files.isCompact, let p = Names.pathProblem(name) { throw bad("file \(Escape.quoted(name)): \(p)") }
            // A path cannot be both a file and a directory of another file: the files under
            // "p/" follow "p/" in byte order, so the first path not below it tells.
            let dir = path + [0x2f]
            let j = dir.withUnsafeBytes { files.lowerBound($0) }
            if j < files.count, files.pathBytes(j).starts(with: dir) {
                throw bad(
                    "\(Escape.quoted(name)) is listed as a file and as the directory of \(Escape.quotedBytes(files.pathBytes(j)))"
                )
            }
        }
        switch kind {
        case .full:
            guard base == nil, changed == nil, removed == nil else {
                throw bad("a full package has no base, changed or removed")
            }
        case .delta:
            guard let b = base else { throw bad("a delta needs a base revision") }
            guard b < revision else { throw bad("base revision \(b) is not below revision \(revision)") }
            guard let ch = changed, let rm = removed else {
                throw bad("a delta needs changed and removed lists (may be empty)")
            }
            try Manifest.checkSortedUnique(ch, "changed")
            try Manifest.checkSortedUnique(rm, "removed")
            for p in ch where files.index(ofPath: p) == nil {
                throw bad("changed path \(Escape.quoted(p)) is not among files")
            }
            for p in rm {
                if let problem = Names.pathProblem(p) { throw bad("removed path \(Escape.quoted(p)): \(problem)") }
                if files.index(ofPath: p) != nil { throw bad("removed path \(Escape.quoted(p)) is also among files") }
            }
        }
    }

    static func checkSortedUnique(_ list: [String], _ name: String) throws {
        for i in list.indices.dropFirst() where !list[i - 1].utf8.lexicographicallyPrecedes(list[i].utf8) {
            throw CourierError(.malformed, "manifest: \(name) is not sorted and unique at \(Escape.quoted(list[i]))")
        }
    }
}
