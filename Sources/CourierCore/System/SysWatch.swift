@preconcurrency import Glibc
import SystemPackage

/// The calls of the inbox watchers (inotify, the wake-up socket pair, `poll`) and of naming a
/// thread. The inotify ones return errno rather than throw: their limit errors read like
/// something else ("No space left on device"), and the watcher explains them (`InotifyLimits`).
extension Sys {
    /// `inotify_init1(IN_CLOEXEC | IN_NONBLOCK)`: the fd's owner, or the errno it failed with
    /// (thrown as a bare `Errno`, which the watcher turns into its explanation).
    public static func inotifyInit() throws(Errno) -> OwnedFD {
        let (fd, e) = retrying { inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK)) }
        if let e { throw e }
        return OwnedFD(adopting: fd)
    }

    /// `inotify_add_watch`: the watch descriptor, or the errno it failed with.
    public static func inotifyAddWatch(_ fd: Int32, _ path: String, _ mask: UInt32) -> Result<Int32, Errno> {
        let (wd, e) = retrying { inotify_add_watch(fd, path, mask) }
        if let e { return .failure(e) }
        return .success(wd)
    }

    /// `inotify_rm_watch`. EINVAL (the watch is already gone, e.g. its directory was deleted) is
    /// the normal case and nothing else can usefully be done on failure, so errors are dropped.
    public static func inotifyRemoveWatch(_ fd: Int32, _ wd: Int32) {
        _ = retrying { inotify_rm_watch(fd, wd) }
    }

    /// A non-blocking, close-on-exec socket pair used as a pipe: writing a byte to one end wakes
    /// a thread blocked in `poll()` on the other. Close-on-exec from birth (not `pipe` +
    /// `fcntl`, which leaves a window in which a hook started by another thread inherits them).
    public static func wakePair() throws -> PipeEnds {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let (_, e) = retrying { socketpair(AF_UNIX, type, 0, &fds) }
        if let e { throw CourierError(.io, "socketpair failed: \(e.description)", cause: e) }
        return PipeEnds(read: OwnedFD(adopting: fds[0]), write: OwnedFD(adopting: fds[1]))
    }

    /// `poll()` without a timeout: the caller sleeps in the kernel until there is something to do
    /// (the watcher's stop pipe ends the wait). Returns how many fds are ready. No timeout
    /// parameter on purpose: retried after EINTR with the same timeout, a poll that signals keep
    /// interrupting would wait longer than asked (`connectTCP` counts its own deadline instead).
    public static func poll(_ fds: inout [pollfd]) throws -> Int32 {
        let (n, e) = fds.withUnsafeMutableBufferPointer { buf in
            retrying { Glibc.poll(buf.baseAddress, nfds_t(buf.count), -1) }
        }
        if let e { throw CourierError(.io, "poll failed: \(e.description)", cause: e) }
        return n
    }

    /// `read()` on a non-blocking fd that reports EAGAIN as nil (nothing to read after all).
    public static func readNonBlocking(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, display: String)
        throws -> Int?
    {
        let (n, e) = retrying { Glibc.read(fd, buf, count) }
        if let e {
            if e == .resourceTemporarilyUnavailable || e == .wouldBlock { return nil }
            throw CourierError(.io, "\(display): read failed: \(e.description)", cause: e)
        }
        return n
    }

    /// Writes one byte to a wake-up fd, ignoring a full buffer (one pending byte is enough).
    public static func poke(_ fd: Int32) {
        var b: UInt8 = 1
        _ = retrying { Glibc.write(fd, &b, 1) }
    }

    /// Names the calling thread (at most 15 bytes; shown by `top -H`, `ps -L`, gdb). Best effort,
    /// through /proc, since Swift's Glibc module imports neither `pthread_setname_np` nor `prctl`.
    public static func nameCurrentThread(_ name: String) {
        guard let fd = try? OwnedFD.open("/proc/thread-self/comm", O_WRONLY) else { return }
        try? writeAll(fd.raw, Array(name.utf8.prefix(15)), display: "/proc/thread-self/comm")
    }
}
