import CourierCore
@preconcurrency import Glibc
import SystemPackage

/// The watchers' calls, through `Sys` (SysWatch.swift in CourierCore): this adds the operator's
/// explanation to inotify's resource-limit errors (`InotifyLimits`).
enum WatchSys {
    /// `inotify_init1(IN_CLOEXEC | IN_NONBLOCK)`. Non-blocking because the reader waits in
    /// `poll()` and must never block in `read()` where the stop pipe cannot reach it.
    static func inotifyInit() throws -> OwnedFD {
        do throws(Errno) { return try Sys.inotifyInit() } catch let e {
            let why = InotifyLimits.explanation(
                errno: e, call: .initialize, path: nil,
                currentLimit: InotifyLimits.readLimit(for: e, call: .initialize))
            throw CourierError(.daemon, why ?? "inotify_init1 failed: \(e.description)", cause: e)
        }
    }

    /// `inotify_add_watch`; returns the watch descriptor.
    static func addWatch(_ fd: Int32, _ path: String, _ mask: UInt32) throws -> Int32 {
        switch Sys.inotifyAddWatch(fd, path, mask) {
        case .success(let wd): return wd
        case .failure(let e):
            let why = InotifyLimits.explanation(
                errno: e, call: .addWatch, path: path,
                currentLimit: InotifyLimits.readLimit(for: e, call: .addWatch))
            throw CourierError(.daemon, why ?? "\(path): cannot watch (inotify_add_watch): \(e.description)", cause: e)
        }
    }

    static func removeWatch(_ fd: Int32, _ wd: Int32) { Sys.inotifyRemoveWatch(fd, wd) }

    /// The stop "pipe": a close-on-exec socket pair (`Sys.wakePair`).
    static func pipe() throws -> PipeEnds { try Sys.wakePair() }

    static func poll(_ fds: inout [pollfd]) throws -> Int32 {
        try Sys.poll(&fds)
    }

    static func readNonBlocking(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, display: String) throws
        -> Int?
    {
        try Sys.readNonBlocking(fd, buf, count, display: display)
    }

    static func poke(_ fd: Int32) { Sys.poke(fd) }
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
