import CourierCore
@preconcurrency import Glibc
import SystemPackage

/// Checked wrappers for the calls the watchers make, after `Sys` in CourierCore: one wrapper per
/// call, retrying `EINTR`, keeping errno in the thrown `CourierError`. The inotify ones turn the
/// kernel's resource-limit errors into sentences an operator can act on.
enum WatchSys {
    @inline(__always)
    static func retrying<T: BinaryInteger>(_ body: () -> T) -> (T, Errno?) { Sys.retrying(body) }

    /// `inotify_init1(IN_CLOEXEC | IN_NONBLOCK)`. Non-blocking because the reader waits in
    /// `poll()` and must never block in `read()` where the stop pipe cannot reach it.
    static func inotifyInit() throws -> Int32 {
        let (fd, e) = retrying { inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK)) }
        if let e {
            let why = InotifyLimits.explanation(
                errno: e, call: .initialize, path: nil,
                currentLimit: InotifyLimits.readLimit(for: e, call: .initialize))
            throw CourierError(.daemon, why ?? "inotify_init1 failed: \(e.description)", cause: e)
        }
        return fd
    }

    /// `inotify_add_watch`; returns the watch descriptor.
    static func addWatch(_ fd: Int32, _ path: String, _ mask: UInt32) throws -> Int32 {
        let (wd, e) = retrying { inotify_add_watch(fd, path, mask) }
        if let e {
            let why = InotifyLimits.explanation(
                errno: e, call: .addWatch, path: path,
                currentLimit: InotifyLimits.readLimit(for: e, call: .addWatch))
            throw CourierError(.daemon, why ?? "\(path): cannot watch (inotify_add_watch): \(e.description)", cause: e)
        }
        return wd
    }

    /// `inotify_rm_watch`. EINVAL (the watch is already gone, e.g. its directory was deleted) is
    /// the normal case here and not an error; nothing else can usefully be done on failure.
    static func removeWatch(_ fd: Int32, _ wd: Int32) {
        _ = retrying { inotify_rm_watch(fd, wd) }
    }

    /// A non-blocking, close-on-exec socket pair used as a pipe: writing a byte to one end wakes a
    /// thread blocked in `poll()` on the other. Not `pipe2` or `eventfd`, which Swift's Glibc
    /// module does not import, and not `pipe` + `fcntl`, which leaves a window in which a hook
    /// started by another thread inherits the descriptors.
    static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let (_, e) = retrying { socketpair(AF_UNIX, type, 0, &fds) }
        if let e { throw CourierError(.io, "socketpair failed: \(e.description)", cause: e) }
        return (fds[0], fds[1])
    }

    /// `poll()` with an infinite timeout by default: the watcher sleeps in the kernel until there
    /// is something to do, so it costs no CPU while idle.
    static func poll(_ fds: inout [pollfd], timeoutMs: Int32 = -1) throws -> Int32 {
        let (n, e) = fds.withUnsafeMutableBufferPointer { buf in
            retrying { Glibc.poll(buf.baseAddress, nfds_t(buf.count), timeoutMs) }
        }
        if let e { throw CourierError(.io, "poll failed: \(e.description)", cause: e) }
        return n
    }

    /// `read()` that reports EAGAIN as `nil` (nothing to read after all) instead of an error.
    static func readNonBlocking(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, display: String) throws
        -> Int?
    {
        let (n, e) = retrying { Glibc.read(fd, buf, count) }
        if let e {
            if e == .resourceTemporarilyUnavailable || e == .wouldBlock { return nil }
            throw CourierError(.io, "\(display): read failed: \(e.description)", cause: e)
        }
        return n
    }

    /// Writes one byte, ignoring a full pipe (one pending byte is enough to wake the reader).
    static func poke(_ fd: Int32) {
        var b: UInt8 = 1
        _ = retrying { Glibc.write(fd, &b, 1) }
    }
}

/// Explains inotify's resource-limit errors. inotify reports its per-user limits with errnos that
/// read like something else — "No space left on device" for the watch limit — so operators chase
/// a full disk. The explanation says which sysctl, its value, how to raise it and persist it, and
/// that `--poll` works without inotify at all.
public enum InotifyLimits {
    public enum Call: Sendable {
        case initialize
        case addWatch
    }

    public static let maxUserWatchesPath = "/proc/sys/fs/inotify/max_user_watches"
    public static let maxUserInstancesPath = "/proc/sys/fs/inotify/max_user_instances"

    /// The operator-facing sentence for `errno` from `call`, or nil when `errno` is not one of the
    /// limit errors (the caller then reports errno as it is). Pure: `currentLimit` is passed in
    /// (see `readLimit`) so tests can check the wording without touching /proc.
    public static func explanation(errno: Errno, call: Call, path: String?, currentLimit: Int?) -> String? {
        let subject = path.map { "\($0): cannot watch" } ?? "cannot start inotify"
        func value(_ sysctl: String) -> String { currentLimit.map { "\(sysctl) = \($0)" } ?? sysctl }
        let poll =
            "Or run courier-inboxd with --poll SECONDS, which lists the inbox periodically instead of using inotify."
        switch (call, errno) {
        case (.addWatch, .noSpace):
            return "\(subject): the per-user limit on inotify watches is reached (ENOSPC from inotify_add_watch; "
                + "the disk is not full). \(value("fs.inotify.max_user_watches")) is shared by every program of this user "
                + "(editors, file-sync clients, other watchers). Raise it with `sysctl -w fs.inotify.max_user_watches=524288` "
                + "and keep it across reboots with a line `fs.inotify.max_user_watches=524288` in /etc/sysctl.d/60-courier.conf. "
                + poll
        case (.initialize, .tooManyOpenFiles):
            return "\(subject): the per-user limit on inotify instances is reached (EMFILE from inotify_init1), "
                + "\(value("fs.inotify.max_user_instances")), or this process ran out of file descriptors (ulimit -n). "
                + "Raise the limit with `sysctl -w fs.inotify.max_user_instances=1024` and keep it across reboots with a line "
                + "`fs.inotify.max_user_instances=1024` in /etc/sysctl.d/60-courier.conf. " + poll
        case (_, .tooManyOpenFilesInSystem):
            return "\(subject): the system-wide limit on open files is reached (ENFILE; fs.file-max). " + poll
        case (_, .noMemory):
            return "\(subject): the kernel could not allocate memory for inotify (ENOMEM). " + poll
        default:
            return nil
        }
    }

    /// Reads the sysctl that `errno` from `call` points at; nil when it is not a limit error or the
    /// file cannot be read (a container may hide /proc/sys).
    public static func readLimit(for errno: Errno, call: Call) -> Int? {
        let path: String
        switch (call, errno) {
        case (.addWatch, .noSpace): path = maxUserWatchesPath
        case (.initialize, .tooManyOpenFiles): path = maxUserInstancesPath
        default: return nil
        }
        guard let bytes = try? Sys.readFile(path, limit: 64) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).trimming(" \n\t")
        return Int(text)
    }
}
