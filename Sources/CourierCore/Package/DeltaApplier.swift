import CCourierShim
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Produces a new tree from a base tree and a delta package, never touching the base.
///
/// The base is copied into a new directory first (reflink, `copy_file_range`, or a hard link when
/// the caller says the base is immutable), removed paths are deleted, carried files are written
/// as new inodes, and the result is checked file by file against the delta's complete file list.
/// On any failure the new directory is removed whole.
public enum DeltaApplier {
    public enum CopyMode: Sendable {
        /// Copy data (reflink where the file system can, else `copy_file_range`).
        case copy
        /// Hard-link unchanged files. Only safe when nothing ever writes into the base in place.
        case hardlink
    }

    public static func apply(_ reader: PackageReader, base: String, to newDir: String,
                             copyMode: CopyMode = .copy, durable: Bool = false) throws {
        let m = reader.manifest
        guard m.kind == .delta else { throw CourierError(.malformed, "\(reader.path): not a delta package") }
        if Sys.exists(newDir) { throw CourierError(.io, "\(newDir): already exists; refusing to apply a delta into it") }
        try Sys.mkdir(newDir, 0o755)
        do {
            try TreeCopier.copy(from: base, to: newDir, mode: copyMode)
            let rootfd = try Sys.openDirectory(newDir)
            defer { Sys.close(rootfd) }
            for p in m.removed ?? [] {
                if let st = try Sys.lstatat(rootfd, p, display: newDir + "/" + p) {
                    guard (st.st_mode & S_IFMT) == S_IFREG else {
                        throw CourierError(.unsafeEntry, "\(Escape.text(newDir + "/" + p)): removed path is not a regular file")
                    }
                    try Sys.unlinkat(rootfd, p, display: newDir + "/" + p)
                    try pruneEmptyParents(rootfd, of: p, root: newDir)
                }
            }
            try SafeExtractor.extract(reader, into: newDir, mode: .overlay, durable: false)
            try TreeChecker.check(newDir, against: m, limits: reader.options.limits)
            if durable { _ = courier_syncfs(rootfd) }
        } catch {
            try? Sys.removeTree(newDir)
            throw error
        }
    }

    /// Removes the now-empty directories above a removed file (a delta may turn `a/b` into `a`).
    static func pruneEmptyParents(_ rootfd: Int32, of path: String, root: String) throws {
        for dir in Names.parents(path).reversed() {
            if unlinkat(rootfd, dir, AT_REMOVEDIR) != 0 { return }   // not empty: stop
        }
    }
}

/// Copies a content tree (regular files and directories only), file data by reflink,
/// `copy_file_range` or read/write, or by hard link.
public enum TreeCopier {
    public static func copy(from src: String, to dst: String, mode: DeltaApplier.CopyMode) throws {
        let sfd = try Sys.openDirectory(src)
        defer { Sys.close(sfd) }
        let dfd = try Sys.openDirectory(dst)
        defer { Sys.close(dfd) }
        try copyDir(sfd, dfd, src: src, dst: dst, mode: mode)
    }

    private static func copyDir(_ sfd: Int32, _ dfd: Int32, src: String, dst: String, mode: DeltaApplier.CopyMode) throws {
        for ent in try Sys.listDirectory(sfd, display: src) {
            let s = src + "/" + ent.name, d = dst + "/" + ent.name
            guard let st = try Sys.lstatat(sfd, ent.name, display: s) else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                try Sys.mkdirat(dfd, ent.name, 0o755, display: d)
                let subS = try Sys.openDirectoryAt(sfd, ent.name, display: s)
                defer { Sys.close(subS) }
                let subD = try Sys.openDirectoryAt(dfd, ent.name, display: d)
                defer { Sys.close(subD) }
                try copyDir(subS, subD, src: s, dst: d, mode: mode)
            case S_IFREG:
                if mode == .hardlink {
                    if linkat(sfd, ent.name, dfd, ent.name, 0) == 0 { continue }
                    // Different file system or link limit: fall back to copying.
                }
                try copyFile(sfd, ent.name, dfd, perm: mode_t(st.st_mode & 0o777), size: Int(st.st_size), src: s, dst: d)
            default:
                throw CourierError(.unsafeEntry, "\(Escape.text(s)): not a regular file or directory; refusing to copy it")
            }
        }
    }


    /// Copies one file: reflink (FICLONE) if the file system shares extents, else the kernel's
    /// `copy_file_range`, else read/write.
    public static func copyFile(_ sdir: Int32, _ name: String, _ ddir: Int32, perm: mode_t, size: Int, src: String, dst: String) throws {
        let ifd = try Sys.openat(sdir, name, O_RDONLY | O_NOFOLLOW, display: src)
        defer { Sys.close(ifd) }
        let ofd = try Sys.openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600, display: dst)
        defer { Sys.close(ofd) }
        try copyData(ifd, ofd, size: size, src: src, dst: dst)
        try Sys.fchmod(ofd, perm, display: dst)
    }

    /// Returns how: "reflink", "copy_file_range" or "read/write".
    @discardableResult
    public static func copyData(_ ifd: Int32, _ ofd: Int32, size: Int, src: String, dst: String) throws -> String {
        if courier_ficlone(ofd, ifd) == 0 { return "reflink" }
        var left = size
        var useRange = true
        while left > 0 {
            if useRange {
                let n = courier_copy_file_range(ifd, ofd, left)
                if n > 0 { left -= n; continue }
                if n == 0 { break }
                if errno == EINTR { continue }
                if errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP { useRange = false; continue }
                throw CourierError.io("copy to \(dst)", path: src, errno: Errno(rawValue: errno))
            }
            var buf = [UInt8](repeating: 0, count: min(left, 1 << 20))
            let n = try buf.withUnsafeMutableBytes { try Sys.read(ifd, $0.baseAddress!, $0.count, display: src) }
            if n == 0 { break }
            try buf.withUnsafeBytes { try Sys.writeAll(ofd, UnsafeRawBufferPointer(rebasing: $0[0..<n]), display: dst) }
            left -= n
        }
        if left != 0 { throw CourierError(.io, "\(src): changed size while being copied to \(dst)") }
        return useRange ? "copy_file_range" : "read/write"
    }
}

import SystemPackage
