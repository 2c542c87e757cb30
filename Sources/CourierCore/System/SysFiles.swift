@preconcurrency import Glibc
import SystemPackage

/// Positioned I/O, links, times and file-system facts: the `Sys` wrappers beyond Sys.swift's
/// core, with the same rules (EINTR retried, errno kept, the error names the path and the call).
extension Sys {
    /// The errno text (`strerror`) behind an error a wrapper threw, for a caller that words the
    /// message itself; the error's own text when no errno is behind it.
    public static func reason(_ error: any Error) -> String {
        ((error as? CourierError)?.cause as? Errno)?.description ?? "\(error)"
    }

    /// Reads up to `count` bytes at `offset` without moving the file position; 0 at end of file.
    public static func pread(
        _ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, at offset: Int64, display: String
    ) throws -> Int {
        let (n, e) = retrying { Glibc.pread(fd, buf, count, off_t(offset)) }
        if let e { throw CourierError.io("read", path: display, errno: e) }
        return n
    }

    /// Writes up to `count` bytes at `offset`; returns how many were written (may be short).
    public static func pwrite(
        _ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int, at offset: Int64, display: String
    ) throws -> Int {
        let (n, e) = retrying { Glibc.pwrite(fd, buf, count, off_t(offset)) }
        if let e { throw CourierError.io("write", path: display, errno: e) }
        return n
    }

    /// One `pwrite`, retried on EINTR, returning the count or the errno: for copy loops that
    /// decide per errno (EINVAL from O_DIRECT, EFAULT from a shrunk mapping) and word the error.
    public static func pwriteAttempt(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int, at offset: Int64) -> (
        Int, Errno?
    ) {
        retrying { Glibc.pwrite(fd, buf, count, off_t(offset)) }
    }

    /// Cuts or extends an open file to `size` bytes (`ftruncate`).
    public static func truncate(_ fd: Int32, to size: Int64, display: String) throws {
        let (_, e) = retrying { Glibc.ftruncate(fd, off_t(size)) }
        if let e { throw CourierError.io("truncate to \(size) bytes", path: display, errno: e) }
    }

    /// Moves the file position to `offset` from the start (`lseek(SEEK_SET)`).
    public static func seek(_ fd: Int32, to offset: Int64, display: String) throws {
        let (_, e) = retrying { Glibc.lseek(fd, off_t(offset), SEEK_SET) }
        if let e { throw CourierError.io("seek to \(offset)", path: display, errno: e) }
    }

    /// Makes a hard link `toDir`/`to` of `fromDir`/`from` (`linkat`, not following a symlink).
    public static func linkat(_ fromDir: Int32, _ from: String, _ toDir: Int32, _ to: String, display: String? = nil)
        throws
    {
        let (_, e) = retrying { Glibc.linkat(fromDir, from, toDir, to, 0) }
        if let e { throw CourierError.io("link to \(to)", path: display ?? from, errno: e) }
    }

    /// Creates the symbolic link `path` pointing at `target`.
    public static func symlink(_ target: String, _ path: String) throws {
        let (_, e) = retrying { Glibc.symlink(target, path) }
        if let e { throw CourierError.io("symlink", path: path, errno: e) }
    }

    /// `statvfs(2)`, retried on EINTR; the error names the path.
    public static func fileSystemStats(_ path: String) throws -> statvfs {
        var st = statvfs()
        // The function by its full name: the struct of the same name shadows `statvfs(path, &st)`.
        let call = Glibc.statvfs(_:_:)
        let (r, e) = retrying { call(path, &st) }
        if r != 0 { throw CourierError.io("statvfs", path: path, errno: e ?? Errno(rawValue: errno)) }
        return st
    }

    /// `stat` that follows symlinks (`lstat` does not); a missing path is an error too, with
    /// ENOENT as its cause.
    public static func statFollowing(_ path: String) throws -> stat {
        var st = Glibc.stat()
        let (_, e) = retrying { Glibc.fstatat(AT_FDCWD, path, &st, 0) }
        if let e { throw CourierError.io("stat", path: path, errno: e) }
        return st
    }

    /// Whether this process may execute `path` (`access(X_OK)`).
    public static func isExecutable(_ path: String) -> Bool { Glibc.access(path, X_OK) == 0 }

    /// The canonical absolute path (`realpath`: links resolved, `.`/`..` gone), nil when it cannot
    /// be resolved (a component missing).
    public static func realPath(_ path: String) -> String? {
        guard let r = Glibc.realpath(path, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }

    /// Sets a file's mtime to now on the fine-grained clock (utimensat's `UTIME_NOW` takes the
    /// coarse one); atime is left alone. A symlink itself, not its target.
    public static func setModificationTimeToNow(_ path: String) throws {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let utimeOmit = (1 << 30) - 2  // UTIME_OMIT, a macro Swift does not import
        var times = [timespec(tv_sec: 0, tv_nsec: utimeOmit), now]
        let (_, e) = retrying { Glibc.utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) }
        if let e { throw CourierError.io("utimensat", path: path, errno: e) }
    }

    /// Sets a file's atime and mtime to now (`utimensat(UTIME_NOW)`, following links): "touch".
    public static func touch(_ path: String) throws {
        let (_, e) = retrying { Glibc.utimensat(AT_FDCWD, path, nil, 0) }
        if let e { throw CourierError.io("utimensat", path: path, errno: e) }
    }

    /// Maps `size` bytes of an open file read-only and shared (`mmap`); `size` > 0.
    public static func mapReadOnly(_ fd: Int32, size: Int, display: String) throws -> UnsafeRawPointer {
        guard let p = Glibc.mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), p != UnsafeMutableRawPointer(bitPattern: -1)
        else {
            throw CourierError.io("mmap", path: display, errno: Errno(rawValue: errno))
        }
        return UnsafeRawPointer(p)
    }

    /// Unmaps what `mapReadOnly` mapped.
    public static func unmap(_ p: UnsafeRawPointer, size: Int) {
        _ = Glibc.munmap(UnsafeMutableRawPointer(mutating: p), size)
    }

    /// Gives the whole pages of [start, end) of this process's memory back to the kernel
    /// (`madvise(MADV_DONTNEED)`); a hint, so failure is ignored. `start` must be page-aligned.
    public static func releasePages(_ start: UnsafeRawPointer, count: Int) {
        _ = Glibc.madvise(UnsafeMutableRawPointer(mutating: start), count, MADV_DONTNEED)
    }
}
