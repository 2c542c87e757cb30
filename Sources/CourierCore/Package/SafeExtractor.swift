import CCourierShim
@preconcurrency import Glibc
import SystemPackage

/// Extracts a package's payload under one directory and nowhere else.
///
/// Every file is created through a directory fd with `openat(O_CREAT|O_EXCL|O_NOFOLLOW)`,
/// every directory is opened with `O_NOFOLLOW|O_DIRECTORY`, and the process never `chdir`s, so no
/// symlink — planted in the archive or already in the target — can send a write elsewhere. Paths
/// come from the archive only after `PackageReader` has checked them against the signed manifest.
/// On any refusal, everything this extraction created is removed again: the target is left as
/// it was found.
public enum SafeExtractor {
    public enum Mode: Sendable {
        /// Every file must be new (a fresh revision directory).
        case fresh
        /// An existing regular file at a payload path is replaced by a new inode (a delta applied to
        /// a copy of the base tree; the old inode — possibly a hard link into the live tree — is
        /// never written to).
        case overlay
    }

    /// Extracts into `target` (an existing directory). With `durable`, flushes the file system
    /// before returning so a later rename that publishes the tree survives a power cut.
    ///
    /// `only`, when given, selects the files to write (the others are read and checked, not
    /// written): the stager takes a few base files out of a full package this way. A patch
    /// (format 2 delta) is applied in `.overlay` mode only, to the base files already in `target`.
    public static func extract(
        _ reader: PackageReader, into target: String, mode: Mode = .fresh, durable: Bool = false,
        only: ((FileEntry) -> Bool)? = nil
    ) throws {
        let root = try OwnedFD.openDirectory(target)
        let rootfd = root.raw  // for the closures below; `root` keeps it open until we return
        let open = OpenFiles()
        var created: [(path: String, isDir: Bool)] = []
        var filePath = ""
        var skipping = false
        var patch: (index: Int, bytes: [UInt8])? = nil
        var patchGroups: [[Manifest.Change]]? = nil  // computed at the first patch, once

        /// Opens (creating as needed) the parent directory of `rel`, refusing links and non-dirs.
        func parentFD(of comps: [String]) throws -> Int32 {
            let parentComps = Array(comps.dropLast())
            if parentComps.isEmpty { return rootfd }
            let parent = PathKey(parentComps.joined(separator: "/"))
            if let fd = open.directory(parent) { return fd }
            open.closeDirectory()
            // Never the root itself: `parentComps` is not empty.
            guard
                let fd = try OwnedFD.openDirectoryChain(
                    at: rootfd, parentComps, root: target, made: { created.append(($0, true)) })
            else { return rootfd }
            return open.keepDirectory(fd, path: parent)
        }

        do {
            try reader.forEachPayload(
                start: { entry in
                    if case .patch(let i) = entry.kind {
                        guard mode == .overlay else {
                            throw CourierError(
                                .malformed,
                                "\(reader.path): a patch needs a base tree; only a delta applied to its base has one")
                        }
                        patch = (i, [])
                        patch!.bytes.reserveCapacity(Int(entry.file.size))
                        return
                    }
                    let file = entry.file
                    skipping = !(only?(file) ?? true)
                    if skipping { return }
                    let comps = Names.components(file.path)
                    let dfd = try parentFD(of: comps)
                    let name = comps.last!
                    filePath = target + "/" + file.path
                    if mode == .overlay, let st = try Sys.lstatat(dfd, name, display: filePath) {
                        guard (st.st_mode & S_IFMT) == S_IFREG else {
                            throw CourierError(
                                .unsafeEntry,
                                "\(Escape.text(filePath)): exists and is not a regular file; refusing to replace it")
                        }
                        try Sys.unlinkat(dfd, name, display: filePath)
                    }
                    do {
                        open.file = try OwnedFD.open(
                            at: dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600, display: filePath)
                    } catch let e as CourierError where (e.cause as? Errno) == .fileExists {
                        throw CourierError(
                            .unsafeEntry,
                            "\(Escape.text(filePath)): already exists in the target; refusing to overwrite it")
                    }
                    created.append((file.path, false))
                },
                chunk: { bytes in
                    if patch != nil {
                        patch!.bytes.append(contentsOf: bytes)
                        return
                    }
                    if skipping { return }
                    try Sys.writeAll(open.fileFD, bytes, display: filePath)
                },
                end: { entry in
                    if let p = patch {
                        patch = nil
                        // Checked by the reader (size, SHA-256) before this point.
                        if patchGroups == nil { patchGroups = reader.manifest.patchGroups() }
                        let made = try PatchApplier.apply(
                            reader.manifest, patch: p.index, made: patchGroups![p.index],
                            bytes: p.bytes, rootfd: rootfd, root: target,
                            limits: reader.options.limits)
                        created.append(contentsOf: made.map { ($0, false) })
                        return
                    }
                    if skipping { return }
                    let file = entry.file
                    try Sys.fchmod(open.fileFD, mode_t(file.permissions ?? 0o644), display: filePath)
                    open.file = nil
                })
            if durable { _ = courier_syncfs(rootfd) }
            open.closeDirectory()
        } catch {
            open.file = nil
            open.closeDirectory()
            // Undo in reverse order: files first, then the directories that held them.
            for item in created.reversed() {
                try? Sys.unlinkat(rootfd, item.path, directory: item.isDir)
            }
            throw error
        }
    }

    /// What an extraction holds open besides the root: the file being written and the parent
    /// directory of the last file. Each closes when replaced or set to nil, and with this object
    /// at the latest. A class, because the payload callbacks and `parentFD` share and replace them.
    private final class OpenFiles {
        /// The file being written, between its `start` and its `end`.
        var file: OwnedFD? = nil
        /// The parent directory of the last file, keyed by the bytes of its path: with a String
        /// key, "cafe\u{301}" would hit the cache of "caf\u{E9}" (canonically equal) and its files
        /// would land in the other directory (issue #11.2).
        private var dir: OwnedFD? = nil
        private var dirPath: PathKey? = nil

        /// The descriptor of `file`, which must be open.
        var fileFD: Int32 {
            switch file {
            case .some(let fd): fd.raw
            case .none: preconditionFailure("SafeExtractor: no file is open")
            }
        }

        /// The open directory of `path`, if it is the one kept.
        func directory(_ path: PathKey) -> Int32? {
            guard dirPath == path else { return nil }
            switch dir {
            case .some(let fd): return fd.raw
            case .none: return nil
            }
        }

        /// Keeps `fd` as the open directory of `path` (closing the one before); returns its number.
        func keepDirectory(_ fd: consuming OwnedFD, path: PathKey) -> Int32 {
            let raw = fd.raw
            dir = consume fd
            dirPath = path
            return raw
        }

        func closeDirectory() {
            dir = nil
            dirPath = nil
        }
    }
}
