import CCourierShim
import CourierCore
@preconcurrency import Glibc
import SystemPackage

/// What a name in the inbox is, judged without reading it: copiers leave regular files, but a
/// user may leave a symbolic link (`ln -s`), a FIFO (`mkfifo`) or anything else under a package
/// name. A symlink is never followed (it could point anywhere: `/dev/zero`, another user's
/// file), and a FIFO is never opened for reading (a blocking open waits for a writer for ever).
enum InboxEntry {
    enum Kind: Equatable {
        case missing, regular, symlink, fifo
        /// A directory, socket or device: the word for the reason.
        case other(String)

        /// How a reason names it.
        var noun: String {
            switch self {
            case .missing: return "missing"
            case .regular: return "regular file"
            case .symlink: return "symbolic link"
            case .fifo: return "FIFO (named pipe)"
            case .other(let w): return w
            }
        }
    }

    /// Enough of `stat` to tell that a file was replaced, truncated or rewritten since it was
    /// first looked at (a second copy over the first: `cp` opens with O_TRUNC).
    struct Identity: Equatable {
        var dev: UInt64, ino: UInt64, size: Int64
        var mtime: Int64, mtimeNsec: Int64, ctime: Int64, ctimeNsec: Int64
    }

    /// `lstat` of `path`: its kind, and its identity when it is a regular file. Never follows a
    /// link, never opens.
    static func inspect(_ path: String) -> (Kind, Identity?) {
        guard let st = try? Sys.lstat(path) else { return (.missing, nil) }
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            return (
                .regular,
                Identity(
                    dev: UInt64(st.st_dev), ino: UInt64(st.st_ino), size: Int64(st.st_size),
                    mtime: Int64(st.st_mtim.tv_sec), mtimeNsec: Int64(st.st_mtim.tv_nsec),
                    ctime: Int64(st.st_ctim.tv_sec), ctimeNsec: Int64(st.st_ctim.tv_nsec))
            )
        case S_IFLNK: return (.symlink, nil)
        case S_IFIFO: return (.fifo, nil)
        case S_IFDIR: return (.other("directory"), nil)
        case S_IFSOCK: return (.other("socket"), nil)
        default: return (.other("device file"), nil)
        }
    }

    /// True only when the kernel says a process holds the regular file at `path` open for
    /// writing: it refuses a read lease (EAGAIN) while a writer exists. False when there is none,
    /// and when it cannot tell (no lease available, the file gone or not regular). Opened with
    /// O_NONBLOCK|O_NOFOLLOW, so even a FIFO or link swapped in meanwhile cannot block or mislead.
    static func hasWriter(_ path: String) -> Bool {
        guard let fd = try? OwnedFD.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) else { return false }
        guard let st = try? Sys.fstat(fd.raw, display: path), st.st_mode & S_IFMT == S_IFREG else { return false }
        if courier_probe_read_lease(fd.raw) == 0 { return false }
        return errno == EAGAIN
    }
}

/// Which failures are the machine's, not the package's: a full disk or quota, a read-only or
/// failing file system, exhausted memory or descriptors. A package that hit one of them is
/// left in the inbox and tried again later; quarantine is for what is wrong with the package.
enum Transient {
    static let errnos: Set<Int32> = [
        ENOSPC, EDQUOT, EROFS, EIO, ENOMEM, EMFILE, ENFILE, EAGAIN, EBUSY,
        ETXTBSY, EINTR, ENOBUFS, ENOLCK, ESTALE,
    ]

    /// The errno behind `error`, following causes (a CourierError may wrap another).
    static func errno(of error: any Error) -> Int32? {
        var e: (any Error)? = error
        for _ in 0..<4 {
            if let x = e as? Errno { return x.rawValue }
            guard let c = e as? CourierError else { return nil }
            e = c.cause
        }
        return nil
    }

    static func isTransient(_ error: any Error) -> Bool {
        errno(of: error).map { errnos.contains($0) } ?? false
    }

    /// Seconds before attempt `n + 1` (n ≥ 1): 1, 2, 4 … doubling, capped at one minute.
    static func backoff(attempt n: Int) -> Int {
        min(60, 1 << min(max(n, 1) - 1, 6))
    }
}
