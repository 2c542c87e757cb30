import Crypto
@preconcurrency import Glibc

/// Applies one in-file patch of a format 2 delta (docs/FORMAT.md §3.5) inside a copy of the base
/// tree: reads the base versions of the patch's files, checks their sizes and the SHA-256 of
/// their concatenation against the manifest, decodes the patch against them, checks the SHA-256
/// of the result, and writes each file as a new inode (the old one may be a hard link into the
/// live tree and is never written to).
enum PatchApplier {
    /// Returns the paths written. A base that is not the delta's throws `.baseMismatch`.
    /// `made`: the files of patch `i` (`Manifest.patchGroups()`).
    static func apply(
        _ m: Manifest, patch i: Int, made: [Manifest.Change], bytes: [UInt8], rootfd: Int32, root: String,
        limits: Limits
    ) throws -> [String] {
        guard let p = m.patches?[i] else { throw CourierError(.malformed, "manifest: patch \(i) does not exist") }
        let baseRev = m.base ?? 0
        func mismatch(_ why: String) -> CourierError {
            CourierError(
                .baseMismatch,
                "delta \(m.type) \(baseRev) → \(m.revision): \(why); this client's tree of \(baseRev) is not the one the delta was built from (send the full package)"
            )
        }
        let baseTotal = made.reduce(0) { $0 + Int($1.baseSize ?? 0) }
        let resultTotal = made.reduce(0) { $0 + Int($1.size) }
        guard UInt64(baseTotal + resultTotal) <= limits.maxDeltaWindow else {
            throw CourierError(
                .limit,
                "patch \(i) needs \(baseTotal + resultTotal) bytes for base and result, more than the limit of \(limits.maxDeltaWindow) (delta_window)"
            )
        }
        // Not zero-filled, never copied: read(2) straight into it (a base may be 64 MiB and more).
        let base = UnsafeMutableRawBufferPointer.allocate(byteCount: max(baseTotal, 1), alignment: 16)
        defer { base.deallocate() }
        var filled = 0
        for c in made {
            let shown = Escape.text(root + "/" + c.path)
            let parent: OwnedFD?
            do { parent = try openParent(rootfd, c.path, root: root) } catch let e as CourierError
                where e.code == .io || e.code == .unsafeEntry
            { throw mismatch("base file \(shown) is missing (\(e.message))") }
            let dir = parent.raw(or: rootfd)  // the root's for a file at the top
            let name = Names.components(c.path).last!
            guard let st = try Sys.lstatat(dir, name, display: root + "/" + c.path) else {
                throw mismatch("base file \(shown) is missing")
            }
            guard (st.st_mode & S_IFMT) == S_IFREG else { throw mismatch("base file \(shown) is not a regular file") }
            guard UInt64(st.st_size) == c.baseSize else {
                throw mismatch("base file \(shown) is \(st.st_size) bytes, the delta expects \(c.baseSize ?? 0)")
            }
            let fd = try OwnedFD.open(at: dir, name, O_RDONLY | O_NOFOLLOW, display: root + "/" + c.path)
            let want = Int(c.baseSize ?? 0)
            let got = try Sys.readFully(fd.raw, base.baseAddress! + filled, want, display: root + "/" + c.path)
            guard got == want else { throw mismatch("base file \(shown) changed while being read") }
            filled += want
        }
        let baseBytes = UnsafeRawBufferPointer(rebasing: base[0..<baseTotal])
        let baseHash = Hex.encode(SHA256.hash(data: baseBytes))
        guard baseHash == p.baseSha256 else {
            let names =
                made.prefix(3).map { Escape.quoted($0.path) }.joined(separator: ", ")
                + (made.count > 3 ? " and \(made.count - 3) more" : "")
            throw mismatch(
                "the base files of patch \(i) (\(names)) differ from the ones it was built against (SHA-256 \(baseHash.prefix(16))…, expected \(p.baseSha256.prefix(16))…)"
            )
        }
        let result = try bytes.withUnsafeBytes { pb in
            try PatchCodec.decompress(
                patch: pb, base: baseBytes, resultSize: resultTotal, windowLog: p.windowLog, what: "patch \(i)")
        }
        let resultHash = result.withUnsafeBytes { Hex.encode(SHA256.hash(data: $0)) }
        guard resultHash == p.resultSha256 else {
            throw CourierError(
                .integrity,
                "patch \(i): the result's SHA-256 \(resultHash.prefix(16))… is not the manifest's \(p.resultSha256.prefix(16))…"
            )
        }
        var offset = 0
        for c in made {
            let path = root + "/" + c.path
            let parent = try openParent(rootfd, c.path, root: root)
            let dir = parent.raw(or: rootfd)  // the root's for a file at the top
            let name = Names.components(c.path).last!
            try Sys.unlinkat(dir, name, display: path)
            let fd = try OwnedFD.open(at: dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600, display: path)
            let n = Int(c.size)
            try result.withUnsafeBytes {
                try Sys.writeAll(fd.raw, UnsafeRawBufferPointer(rebasing: $0[offset..<offset + n]), display: path)
            }
            try Sys.fchmod(fd.raw, mode_t(c.permissions ?? 0o644), display: path)
            offset += n
        }
        return made.map(\.path)
    }

    /// The parent directory of `rel` below `rootfd`, opened never through a link and created if
    /// missing (a base file that is missing is found by the caller's lstat); nil when it is the
    /// root itself, which the caller keeps open.
    static func openParent(_ rootfd: Int32, _ rel: String, root: String) throws -> OwnedFD? {
        let comps = Names.components(rel)
        if comps.count == 1 { return nil }
        // Never the root itself: the chain has at least one component.
        return try OwnedFD.openDirectoryChain(at: rootfd, Array(comps.dropLast()), root: root)
    }
}
