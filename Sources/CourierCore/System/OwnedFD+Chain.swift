@preconcurrency import Glibc
import SystemPackage

/// Openers beyond the basic ones: a chain of directories opened one below the other, and a
/// file reopened through a descriptor that someone else owns.
extension OwnedFD {
    /// The file open as `fd` once more, read-only, with a file position of its own
    /// (`Sys.reopen`); for a caller that lends the number (`ArchiveReader(sameFileAs:)`).
    public static func reopen(_ fd: Int32, display: String) throws -> OwnedFD {
        OwnedFD(adopting: try Sys.reopen(fd, display: display))
    }

    /// Opens the directory `comps` below `rootfd`, creating missing components (0755) and never
    /// following a symlink: a component that exists but is not a directory (a planted link, a
    /// file) is refused. `made` gets the relative path of each directory created, so a caller can
    /// undo.
    ///
    /// Returns nil for an empty `comps`: the directory is `rootfd` itself, which the caller
    /// already owns (no `dup`, so no new way to fail); `chain.raw(or: rootfd)` names the
    /// directory either way. Each intermediate directory is closed as soon as the next one is
    /// open, so a deep chain holds two descriptors at most.
    public static func openDirectoryChain(
        at rootfd: Int32, _ comps: [String], root: String,
        made: (String) -> Void = { _ in }
    ) throws -> OwnedFD? {
        var current: OwnedFD? = nil
        var rel = ""
        for comp in comps {
            rel = rel.isEmpty ? comp : rel + "/" + comp
            let shown = root + "/" + rel
            let parent = current.raw(or: rootfd)
            if try Sys.lstatat(parent, comp, display: shown) == nil {
                try Sys.mkdirat(parent, comp, 0o755, display: shown)
                made(rel)
            }
            let next: OwnedFD
            do { next = try OwnedFD.openDirectory(at: parent, comp, display: shown) } catch let e as CourierError {
                if let errno = e.cause as? Errno, errno == .tooManySymbolicLinkLevels || errno == .notDirectory {
                    throw CourierError(
                        .unsafeEntry,
                        "\(Escape.text(shown)): exists and is not a directory (a symlink?); refusing to extract through it"
                    )
                }
                throw e
            }
            current = consume next  // closes the parent, now that the child is open
        }
        return current
    }
}

extension Optional where Wrapped == OwnedFD {
    /// The descriptor this owns, or `fallback` (the directory a nil chain stands for) when it
    /// owns none. Borrows: `chain?.raw` would consume a non-copyable optional.
    public borrowing func raw(or fallback: Int32) -> Int32 {
        switch self {
        case .some(let fd): return fd.raw
        case .none: return fallback
        }
    }
}
