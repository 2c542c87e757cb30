import CCourierShim
@preconcurrency import Glibc
import SystemPackage

/// Copies a content tree (regular files and directories only), file data by reflink,
/// `copy_file_range` or read/write, or by hard link.
public enum TreeCopier {
    public static func copy(from src: String, to dst: String, mode: DeltaApplier.CopyMode) throws {
        let sfd = try OwnedFD.openDirectory(src)
        let dfd = try OwnedFD.openDirectory(dst)
        try copyDir(sfd.raw, dfd.raw, src: src, dst: dst, mode: mode)
    }

    private static func copyDir(_ sfd: Int32, _ dfd: Int32, src: String, dst: String, mode: DeltaApplier.CopyMode)
        throws
    {
        for ent in try Sys.listDirectory(sfd, display: src) {
            let s = src + "/" + ent.name
            let d = dst + "/" + ent.name
            guard let st = try Sys.lstatat(sfd, ent.name, display: s) else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                try Sys.mkdirat(dfd, ent.name, 0o755, display: d)
                let subS = try OwnedFD.openDirectory(at: sfd, ent.name, display: s)
                let subD = try OwnedFD.openDirectory(at: dfd, ent.name, display: d)
                try copyDir(subS.raw, subD.raw, src: s, dst: d, mode: mode)
            case S_IFREG:
                if mode == .hardlink {
                    if (try? Sys.linkat(sfd, ent.name, dfd, ent.name)) != nil { continue }
                    // Different file system or link limit: fall back to copying.
                }
                try copyFile(
                    sfd, ent.name, dfd, perm: mode_t(st.st_mode & 0o777), size: Int(st.st_size), src: s, dst: d)
            default:
                throw CourierError(
                    .unsafeEntry, "\(Escape.text(s)): not a regular file or directory; refusing to copy it")
            }
        }
    }

    /// Copies one file: reflink (FICLONE) if the file system shares extents, else the kernel's
    /// `copy_file_range`, else read/write.
    public static func copyFile(
        _ sdir: Int32, _ name: String, _ ddir: Int32, perm: mode_t, size: Int, src: String, dst: String
    ) throws {
        let ifd = try OwnedFD.open(at: sdir, name, O_RDONLY | O_NOFOLLOW, display: src)
        let ofd = try OwnedFD.open(at: ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600, display: dst)
        try copyData(ifd.raw, ofd.raw, size: size, src: src, dst: dst)
        try Sys.fchmod(ofd.raw, perm, display: dst)
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
                if n > 0 {
                    left -= n
                    continue
                }
                if n == 0 { break }
                if errno == EINTR { continue }
                if errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP {
                    useRange = false
                    continue
                }
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
