import Crypto
@preconcurrency import Glibc

/// Walks a content tree through directory fds without following any link, and lists its regular
/// files with size, SHA-256 and permission bits. A tree that holds a symlink, a device, a FIFO
/// or a socket is refused: content is files in directories, nothing else.
public enum TreeScanner {
    public struct Options: Sendable {
        /// Compute SHA-256 of every file (false: size and mode only, sha256 left empty).
        public var hash = true
        public var limits = Limits()
        public init() {}
    }

    public static func scan(_ root: String, options: Options = Options()) throws -> [FileEntry] {
        let rootfd = try OwnedFD.openDirectory(root)
        var out: [FileEntry] = []
        var total: UInt64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        try walk(rootfd.raw, prefix: "", root: root, options: options, out: &out, total: &total, buffer: buffer)
        out.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        return out
    }

    private static func walk(
        _ dirfd: Int32, prefix: String, root: String, options: Options,
        out: inout [FileEntry], total: inout UInt64, buffer: UnsafeMutableRawBufferPointer
    ) throws {
        let shownDir = prefix.isEmpty ? root : root + "/" + prefix
        for ent in try Sys.listDirectory(dirfd, display: shownDir) {
            let rel = prefix.isEmpty ? ent.name : prefix + "/" + ent.name
            let shown = root + "/" + rel
            if let p = Names.pathProblem(rel, maxBytes: options.limits.maxPathBytes) {
                throw CourierError(.unsafeEntry, "\(Escape.text(shown)): \(p)")
            }
            // Gone between readdir and lstat, or a name that is not UTF-8 (readdir's bytes were
            // repaired on the way into a String, so the repaired name does not exist): either
            // way the listing is not the tree, and skipping it would hide a file.
            guard let st = try Sys.lstatat(dirfd, ent.name, display: shown) else {
                throw CourierError(
                    .unsafeEntry, "\(Escape.text(shown)): vanished while scanned, or its name is not valid UTF-8")
            }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                let sub = try OwnedFD.openDirectory(at: dirfd, ent.name, display: shown)
                try walk(sub.raw, prefix: rel, root: root, options: options, out: &out, total: &total, buffer: buffer)
            case S_IFREG:
                let perm = UInt32(st.st_mode) & 0o777
                if UInt32(st.st_mode) & 0o7000 != 0 {
                    throw CourierError(
                        .unsafeEntry, "\(Escape.text(shown)): setuid, setgid or sticky bit; refusing to package it")
                }
                var digest = ""
                var size = UInt64(st.st_size)
                if options.hash {
                    let fd = try OwnedFD.open(at: dirfd, ent.name, O_RDONLY | O_NOFOLLOW, display: shown)
                    (digest, size) = try hashFile(fd.raw, display: shown, buffer: buffer)
                }
                out.append(FileEntry(path: rel, size: size, sha256: digest, mode: perm))
                total += size
                if out.count > options.limits.maxEntries {
                    throw CourierError(.limit, "\(root): more than \(options.limits.maxEntries) files")
                }
                if total > options.limits.maxTotalBytes {
                    throw CourierError(.limit, "\(root): more than \(options.limits.maxTotalBytes) bytes")
                }
            case S_IFLNK:
                throw CourierError(
                    .unsafeEntry, "\(Escape.text(shown)): symbolic link; content trees hold only files and directories")
            default:
                throw CourierError(
                    .unsafeEntry, "\(Escape.text(shown)): not a regular file or directory (device, FIFO or socket)")
            }
        }
    }

    /// SHA-256 and byte count of an open file, read in 1 MiB chunks.
    public static func hashFile(_ fd: Int32, display: String, buffer: UnsafeMutableRawBufferPointer) throws -> (
        String, UInt64
    ) {
        var hasher = SHA256()
        var size: UInt64 = 0
        while true {
            let n = try Sys.read(fd, buffer.baseAddress!, buffer.count, display: display)
            if n == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            size += UInt64(n)
        }
        return (Hex.encode(hasher.finalize()), size)
    }
}

/// Checks a tree file by file against a manifest's file list: same set of paths, same sizes,
/// modes and SHA-256. This is what makes a delta's *result* trustworthy, not only its input.
public enum TreeChecker {
    /// Checks a tree against what a manifest says the result is: its file list (format 1), or
    /// the count, bytes and digest of the list (a format 2 delta), which takes hashing every file.
    public static func check(_ root: String, against m: Manifest, limits: Limits, hashes: Bool = true) throws {
        guard let want = m.result else { return try check(root, against: m.files, limits: limits, hashes: hashes) }
        var opts = TreeScanner.Options()
        opts.limits = limits
        let have = try TreeScanner.scan(root, options: opts)
        var byPath = [PathKey: FileEntry]()
        for f in have { byPath[PathKey(f.path)] = f }
        // The changed files first: for them the package names size, mode and (whole) content,
        // so a mismatch can be named; the rest only shows as a different digest.
        var problems: [String] = []
        for c in m.changes ?? [] {
            let shown = Escape.quoted(c.path)
            guard let h = byPath[PathKey(c.path)] else {
                problems.append("missing file \(shown)")
                continue
            }
            if h.size != c.size {
                problems.append("\(shown): size \(h.size), manifest says \(c.size)")
            } else if h.mode != c.mode {
                problems.append("\(shown): mode \(h.mode), manifest says \(c.mode)")
            } else if let s = c.sha256, s != h.sha256 {
                problems.append("\(shown): SHA-256 differs from the manifest")
            }
        }
        for p in m.removed ?? [] where byPath[PathKey(p)] != nil {
            problems.append("removed file \(Escape.quoted(p)) is still there")
        }
        if problems.isEmpty {
            let got = TreeDigest.summary(of: have)
            if got != want {
                problems.append(
                    "the tree has \(got.files) files and \(got.bytes) bytes with digest \(got.digest.prefix(16))…, "
                        + "the package says \(want.files) files, \(want.bytes) bytes, digest \(want.digest.prefix(16))… "
                        + "(files the delta did not change differ from revision \(m.base ?? 0), the base it was built against)"
                )
            }
        }
        if !problems.isEmpty {
            let more = problems.count > 5 ? " (and \(problems.count - 5) more)" : ""
            throw CourierError(
                .integrity,
                "\(Escape.text(root)): tree does not match the manifest: " + problems.prefix(5).joined(separator: "; ")
                    + more)
        }
    }

    /// `hashes: false` checks names, sizes and modes only: for a tree the caller has just written
    /// from a verified stream, hashing each byte on its way into a file it created (a full
    /// extraction), where re-reading would compare the page cache with itself.
    public static func check<C: Collection>(
        _ root: String, against files: C, limits: Limits, hashes: Bool = true
    ) throws
    where C.Element == FileEntry {
        var opts = TreeScanner.Options()
        opts.hash = false
        opts.limits = limits
        let have = try TreeScanner.scan(root, options: opts)
        var problems: [String] = []
        // Keyed by bytes: with String keys, "caf\u{E9}/b" on disk would satisfy a manifest that
        // lists "cafe\u{301}/b" (canonically equal, different names to the file system).
        var want = [PathKey: FileEntry]()
        for f in files { want[PathKey(f.path)] = f }
        var sizeOK: [FileEntry] = []
        for h in have {
            let shown = Escape.quoted(h.path)
            guard let w = want.removeValue(forKey: PathKey(h.path)) else {
                problems.append("unexpected file \(shown)")
                continue
            }
            if h.size != w.size {
                problems.append("\(shown): size \(h.size), manifest says \(w.size)")
                continue
            }
            if h.mode != w.mode {
                problems.append("\(shown): mode \(h.mode), manifest says \(w.mode)")
                continue
            }
            sizeOK.append(w)
        }
        for p in want.keys.sorted() { problems.append("missing file \(Escape.quotedBytes(p.bytes))") }
        if problems.isEmpty && hashes {
            let rootfd = try OwnedFD.openDirectory(root)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buffer.deallocate() }
            for w in sizeOK {
                let fd = try OwnedFD.open(at: rootfd.raw, w.path, O_RDONLY | O_NOFOLLOW, display: root + "/" + w.path)
                let (digest, _) = try TreeScanner.hashFile(fd.raw, display: root + "/" + w.path, buffer: buffer)
                if digest != w.sha256 { problems.append("\(Escape.quoted(w.path)): SHA-256 differs from the manifest") }
                if problems.count >= 5 { break }
            }
        }
        if !problems.isEmpty {
            let more = problems.count > 5 ? " (and \(problems.count - 5) more)" : ""
            throw CourierError(
                .integrity,
                "\(Escape.text(root)): tree does not match the manifest: " + problems.prefix(5).joined(separator: "; ")
                    + more)
        }
    }
}
