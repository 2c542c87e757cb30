import CCourierShim
@preconcurrency import Glibc
import SystemPackage

/// Checked wrappers around the system calls Courier uses. One wrapper per call: it retries on
/// `EINTR`, keeps errno, and turns a failure into a `CourierError` naming the path and the call.
/// Everything that touches a directory tree goes through a directory fd (`*at` calls), never
/// `chdir`, and opens with `O_NOFOLLOW` so a symlink planted in a tree is never followed.
public enum Sys {
    /// Runs `body` until it does not fail with EINTR; returns the result and errno on failure.
    @inline(__always)
    public static func retrying<T: BinaryInteger>(_ body: () -> T) -> (T, Errno?) {
        while true {
            let r = body()
            if r == -1 {
                let e = Errno(rawValue: errno)
                if e == .interrupted { continue }
                return (r, e)
            }
            return (r, nil)
        }
    }

    // The raw openers and `close` below are internal: outside CourierCore a descriptor is born an
    // `OwnedFD` (OwnedFD.swift) and closes itself; inside it, scripts/check/libc-door.sh keeps them
    // to System/.

    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) throws -> Int32 {
        let (fd, e) = retrying { Glibc.open(path, flags | O_CLOEXEC, mode) }
        if let e { throw CourierError.io("open", path: path, errno: e) }
        return fd
    }

    static func openat(
        _ dirfd: Int32, _ name: String, _ flags: Int32, _ mode: mode_t = 0,
        display: String? = nil
    ) throws -> Int32 {
        let (fd, e) = retrying { Glibc.openat(dirfd, name, flags | O_CLOEXEC, mode) }
        if let e { throw CourierError.io("open", path: display ?? name, errno: e) }
        return fd
    }

    /// Opens the file that `fd` refers to once more, read-only, with a file position of its own
    /// (through /proc/self/fd): the same inode even if its path was renamed over meanwhile.
    /// `display` names it in errors.
    static func reopen(_ fd: Int32, display: String) throws -> Int32 {
        let (nfd, e) = retrying { Glibc.open("/proc/self/fd/\(fd)", O_RDONLY | O_CLOEXEC) }
        if let e { throw CourierError.io("open again (/proc/self/fd/\(fd))", path: display, errno: e) }
        return nfd
    }

    /// Opens a directory relative to `dirfd` without following a symlink at the last component.
    static func openDirectoryAt(_ dirfd: Int32, _ name: String, display: String? = nil) throws -> Int32 {
        try openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, display: display)
    }

    static func openDirectory(_ path: String) throws -> Int32 {
        try open(path, O_RDONLY | O_DIRECTORY)
    }

    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)  // close is not retried on EINTR on Linux: the fd is gone either way.
    }

    public static func mkdirat(_ dirfd: Int32, _ name: String, _ mode: mode_t, display: String? = nil) throws {
        let (_, e) = retrying { Glibc.mkdirat(dirfd, name, mode) }
        if let e { throw CourierError.io("mkdir", path: display ?? name, errno: e) }
    }

    public static func mkdir(_ path: String, _ mode: mode_t = 0o755) throws {
        let (_, e) = retrying { Glibc.mkdir(path, mode) }
        if let e { throw CourierError.io("mkdir", path: path, errno: e) }
    }

    /// `mkdir -p`: creates every missing component; existing directories are fine.
    public static func mkdirs(_ path: String, _ mode: mode_t = 0o755) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for comp in path.split(separator: "/") {
            prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + comp
            let r = Glibc.mkdir(prefix, mode)
            if r != 0 && errno != EEXIST {
                throw CourierError.io("mkdir", path: prefix, errno: Errno(rawValue: errno))
            }
        }
    }

    public static func unlinkat(_ dirfd: Int32, _ name: String, directory: Bool = false, display: String? = nil) throws
    {
        let (_, e) = retrying { Glibc.unlinkat(dirfd, name, directory ? AT_REMOVEDIR : 0) }
        if let e { throw CourierError.io(directory ? "rmdir" : "unlink", path: display ?? name, errno: e) }
    }

    public static func unlink(_ path: String) throws {
        let (_, e) = retrying { Glibc.unlink(path) }
        if let e { throw CourierError.io("unlink", path: path, errno: e) }
    }

    public static func rename(_ from: String, _ to: String) throws {
        let (_, e) = retrying { Glibc.rename(from, to) }
        if let e { throw CourierError.io("rename to \(to)", path: from, errno: e) }
    }

    public static func renameat(_ fromDir: Int32, _ from: String, _ toDir: Int32, _ to: String, display: String? = nil)
        throws
    {
        let (_, e) = retrying { Glibc.renameat(fromDir, from, toDir, to) }
        if let e { throw CourierError.io("rename to \(to)", path: display ?? from, errno: e) }
    }

    public static func fstat(_ fd: Int32, display: String) throws -> stat {
        var st = stat()
        let (_, e) = retrying { Glibc.fstat(fd, &st) }
        if let e { throw CourierError.io("stat", path: display, errno: e) }
        return st
    }

    /// `lstat` relative to a directory: never follows a symlink. Returns nil when absent.
    public static func lstatat(_ dirfd: Int32, _ name: String, display: String? = nil) throws -> stat? {
        var st = stat()
        let (_, e) = retrying { Glibc.fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) }
        if let e {
            if e == .noSuchFileOrDirectory { return nil }
            throw CourierError.io("stat", path: display ?? name, errno: e)
        }
        return st
    }

    public static func lstat(_ path: String) throws -> stat? {
        try lstatat(AT_FDCWD, path, display: path)
    }

    public static func fsync(_ fd: Int32, display: String) throws {
        let (_, e) = retrying { Glibc.fsync(fd) }
        if let e { throw CourierError.io("fsync", path: display, errno: e) }
    }

    public static func fchmod(_ fd: Int32, _ mode: mode_t, display: String) throws {
        let (_, e) = retrying { Glibc.fchmod(fd, mode) }
        if let e { throw CourierError.io("chmod", path: display, errno: e) }
    }

    /// Reserves the blocks for the first `size` bytes of an open file, so that a copy into it
    /// fails at once when the disk has no room for it, not halfway, and its page-cache writes
    /// skip delayed allocation. Returns false when the file system cannot (tmpfs before 6.x, NFS
    /// v3, FUSE): the copy then goes on without. ENOSPC/EDQUOT and other errors are thrown.
    @discardableResult
    public static func preallocate(_ fd: Int32, _ size: Int64, display: String) throws -> Bool {
        guard size > 0 else { return true }
        let (_, e) = retrying { courier_fallocate(fd, size) }
        guard let e else { return true }
        if e == .notSupported || e == .noFunction || e == .invalidArgument { return false }
        // "<path>: reserve N bytes failed: …" (it read "reserve N bytes for failed").
        throw CourierError.io("reserve \(size) bytes", path: display, errno: e)
    }

    /// Reads up to `count` bytes; 0 means end of file.
    public static func read(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, display: String) throws -> Int {
        let (n, e) = retrying { Glibc.read(fd, buf, count) }
        if let e { throw CourierError.io("read", path: display, errno: e) }
        return n
    }

    /// Reads until `count` bytes are in `buf` or the file ends, looping over short reads (the
    /// twin of `writeAll`). Returns how many were read: less than `count` only at end of file.
    public static func readFully(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, display: String) throws
        -> Int
    {
        var got = 0
        while got < count {
            let n = try read(fd, buf + got, count - got, display: display)
            if n == 0 { break }
            got += n
        }
        return got
    }

    /// Writes all of `buf`, looping over short writes.
    public static func writeAll(_ fd: Int32, _ buf: UnsafeRawBufferPointer, display: String) throws {
        var off = 0
        while off < buf.count {
            let (n, e) = retrying { Glibc.write(fd, buf.baseAddress! + off, buf.count - off) }
            if let e { throw CourierError.io("write", path: display, errno: e) }
            off += n
        }
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], display: String) throws {
        try bytes.withUnsafeBytes { try writeAll(fd, $0, display: display) }
    }

    /// Reads a whole (small) file, refusing one larger than `limit` bytes.
    public static func readFile(_ path: String, limit: Int = 16 << 20) throws -> [UInt8] {
        let fd = try OwnedFD.open(path, O_RDONLY)
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try buf.withUnsafeMutableBytes { try read(fd.raw, $0.baseAddress!, $0.count, display: path) }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
            if out.count > limit {
                throw CourierError(.limit, "\(path): larger than \(limit) bytes")
            }
        }
        return out
    }

    /// Writes a file atomically: a dot-named temporary beside it, fsync, rename, fsync of the
    /// directory. A reader sees the old content or the new, never a mix. `durable: false` leaves
    /// out both fsyncs, for a caller that makes a whole batch durable at once (`syncFileSystem`).
    public static func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644, durable: Bool = true)
        throws
    {
        let dir = FilePath(path).removingLastComponent().string
        let name = FilePath(path).lastComponent?.string ?? path
        let tmp = (dir.isEmpty ? "" : dir + "/") + ".\(name).tmp-\(getpid())"
        let fd = try OwnedFD.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode)
        do {
            try writeAll(fd.raw, bytes, display: tmp)
            try fchmod(fd.raw, mode, display: tmp)
            if durable { try fsync(fd.raw, display: tmp) }
        } catch {
            _ = consume fd  // closed before the temporary is removed
            _ = Glibc.unlink(tmp)
            throw error
        }
        // Closed before the rename; a failed rename only removes the temporary (closing the
        // number again there could close a file another thread has just opened).
        _ = consume fd
        do { try rename(tmp, path) } catch {
            _ = Glibc.unlink(tmp)
            throw error
        }
        if durable { fsyncDirectory(dir.isEmpty ? "." : dir) }
    }

    /// Flushes the file system holding `path` (`syncfs`): one journal commit for everything
    /// written there, instead of an fsync per file and directory. Throws when it fails (EIO).
    public static func syncFileSystem(_ path: String) throws {
        let fd = try OwnedFD.openDirectory(path)
        if courier_syncfs(fd.raw) != 0 { throw CourierError.io("syncfs", path: path, errno: Errno(rawValue: errno)) }
    }

    /// Best effort: makes a rename durable. Failure to fsync a directory is not fatal.
    public static func fsyncDirectory(_ path: String) {
        guard let fd = try? OwnedFD.openDirectory(path) else { return }
        _ = Glibc.fsync(fd.raw)
    }

    private static let direntNameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
    private static let direntTypeOffset = MemoryLayout<dirent>.offset(of: \dirent.d_type)!

    /// Lists a directory's entry names (without "." and "..") through an fd; the fd is not consumed.
    public static func listDirectory(_ dirfd: Int32, display: String) throws -> [(name: String, type: UInt8)] {
        // F_DUPFD_CLOEXEC, not dup(): a child another thread spawns meanwhile must not inherit it.
        let dup = Glibc.fcntl(dirfd, F_DUPFD_CLOEXEC, 0)
        if dup < 0 { throw CourierError.io("dup", path: display, errno: Errno(rawValue: errno)) }
        guard let dir = fdopendir(dup) else {
            let e = Errno(rawValue: errno)
            _ = Glibc.close(dup)
            throw CourierError.io("opendir", path: display, errno: e)
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var out: [(String, UInt8)] = []
        while true {
            errno = 0
            guard let ent = readdir(dir) else {
                if errno != 0 { throw CourierError.io("readdir", path: display, errno: Errno(rawValue: errno)) }
                break
            }
            // The name is read in place, up to its NUL: a record in readdir's buffer is only
            // d_reclen bytes long, often less than sizeof(struct dirent), so copying the whole
            // 256-byte d_name (`ent.pointee.d_name`) read past the end of the last record and of
            // the buffer (AddressSanitizer, `make test-asan`: heap-buffer-overflow).
            let record = UnsafeRawPointer(ent)
            let name = String(cString: (record + Self.direntNameOffset).assumingMemoryBound(to: CChar.self))
            if name == "." || name == ".." { continue }
            out.append((name, record.load(fromByteOffset: Self.direntTypeOffset, as: UInt8.self)))
        }
        return out
    }

    public static func listDirectory(_ path: String) throws -> [String] {
        let fd = try OwnedFD.openDirectory(path)
        return try listDirectory(fd.raw, display: path).map(\.name)
    }

    /// Removes a tree below `dirfd`/`name` without following symlinks. Missing is fine.
    public static func removeTree(_ dirfd: Int32, _ name: String, display: String? = nil) throws {
        let shown = display ?? name
        guard let st = try lstatat(dirfd, name, display: shown) else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let sub = try OwnedFD.openDirectory(at: dirfd, name, display: shown)
            for ent in try listDirectory(sub.raw, display: shown) {
                try removeTree(sub.raw, ent.name, display: shown + "/" + ent.name)
            }
            try unlinkat(dirfd, name, directory: true, display: shown)
        } else {
            try unlinkat(dirfd, name, display: shown)
        }
    }

    public static func removeTree(_ path: String) throws {
        try removeTree(AT_FDCWD, path, display: path)
    }

    /// Seconds on the monotonic clock (durations and deadlines; never goes back).
    public static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// The working directory, or "." when it cannot be read (deleted under us).
    public static func currentDirectory() -> String {
        guard let c = getcwd(nil, 0) else { return "." }
        defer { free(c) }
        return String(cString: c)
    }

    /// `path` made absolute against the working directory (not normalised; links not resolved).
    public static func absolutePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        let cwd = currentDirectory()
        return path.isEmpty || path == "." ? cwd : cwd + "/" + path
    }

    public static func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return String(cString: buf)
    }

    /// Points the symlink `dir/name` at `target` atomically: a new link under a temporary name,
    /// renamed over the old one, then the directory fsynced. Readers see the old target or the
    /// new, never no link. `beforeRename` lets crash tests stop in between.
    public static func replaceSymlink(
        in dir: String, name: String, target: String, durable: Bool = true,
        beforeRename: () throws -> Void = {}
    ) throws {
        let tmp = dir + "/.\(name).tmp-\(getpid())"
        _ = Glibc.unlink(tmp)
        if Glibc.symlink(target, tmp) != 0 {
            throw CourierError.io("symlink", path: tmp, errno: Errno(rawValue: errno))
        }
        try beforeRename()
        try rename(tmp, dir + "/" + name)
        if durable { fsyncDirectory(dir) }
    }

    /// The target of a symbolic link, or nil when `path` is not one (or cannot be read).
    public static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX))
        let n = readlink(path, &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return Glibc.lstat(path, &st) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        let r = Glibc.fstatat(AT_FDCWD, path, &st, 0)
        return r == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }
}
