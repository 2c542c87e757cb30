import CCourierShim
@preconcurrency import Glibc
import SystemPackage

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

    public static func apply(
        _ reader: PackageReader, base: String, to newDir: String,
        copyMode: CopyMode = .copy, durable: Bool = false
    ) throws {
        let m = reader.manifest
        guard m.kind == .delta else { throw CourierError(.malformed, "\(reader.path): not a delta package") }
        if Sys.exists(newDir) {
            throw CourierError(.io, "\(newDir): already exists; refusing to apply a delta into it")
        }
        try Sys.mkdir(newDir, 0o755)
        do {
            try TreeCopier.copy(from: base, to: newDir, mode: copyMode)
            let root = try OwnedFD.openDirectory(newDir)
            let rootfd = root.raw
            for p in m.removed ?? [] {
                if let st = try Sys.lstatat(rootfd, p, display: newDir + "/" + p) {
                    guard (st.st_mode & S_IFMT) == S_IFREG else {
                        throw CourierError(
                            .unsafeEntry, "\(Escape.text(newDir + "/" + p)): removed path is not a regular file")
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
            if (try? Sys.unlinkat(rootfd, dir, directory: true)) == nil { return }  // not empty: stop
        }
    }
}
