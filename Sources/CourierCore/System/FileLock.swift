@preconcurrency import Glibc
import SystemPackage

/// An exclusive `flock` on a lock file, the one lock of every program: courier-stage's and
/// courier-pull's run locks (`RunLock`) and courier-inboxd's `StateLock`. The kernel drops it
/// when the process dies, however it dies, so there are no stale locks. Released (and the file
/// closed) when the value is dropped; with `recordingPid` the file holds the holder's pid for
/// humans while it is held and is emptied on release.
public final class FileLock {
    public let path: String
    private let fd: OwnedFD
    private let recordingPid: Bool

    private init(path: String, fd: consuming OwnedFD, recordingPid: Bool) {
        self.path = path
        self.fd = fd
        self.recordingPid = recordingPid
    }

    /// Takes the lock at once, or returns nil when another process (or another open file
    /// description in this one) holds it. Other failures (opening the file, ENOLCK) throw.
    public static func tryAcquire(_ path: String, recordingPid: Bool = false) throws -> FileLock? {
        try acquire(path, timeout: 0, recordingPid: recordingPid)
    }

    /// Takes the lock, trying again every 50 ms for up to `timeout` seconds (0: once); nil when
    /// it is still held by another then.
    public static func acquire(_ path: String, timeout: Double, recordingPid: Bool = false) throws -> FileLock? {
        // Closed when this function leaves without a lock (thrown or timed out); else the lock owns it.
        let fd = try OwnedFD.open(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0o644)
        let deadline = Sys.monotonicSeconds() + timeout
        while true {
            let (_, e) = Sys.retrying { flock(fd.raw, LOCK_EX | LOCK_NB) }
            guard let e else { break }
            guard e == .wouldBlock else { throw CourierError.io("flock", path: path, errno: e) }
            if Sys.monotonicSeconds() >= deadline { return nil }
            usleep(50_000)
        }
        if recordingPid {
            // Best effort: the pid is for humans; the lock holds without it.
            try? Sys.truncate(fd.raw, to: 0, display: path)
            _ = try? Array("\(Sys.processID())\n".utf8).withUnsafeBytes {
                try Sys.pwrite(fd.raw, $0.baseAddress!, $0.count, at: 0, display: path)
            }
        }
        return FileLock(path: path, fd: fd, recordingPid: recordingPid)
    }

    /// The pid a holder wrote into a lock file taken with `recordingPid`, "" when none.
    public static func holder(_ path: String) -> String {
        guard let b = try? Sys.readFile(path, limit: 64) else { return "" }
        return String(decoding: b, as: UTF8.self).trimming(" \n")
    }

    deinit {
        if recordingPid { try? Sys.truncate(fd.raw, to: 0, display: path) }
        _ = flock(fd.raw, LOCK_UN)
        // `fd` closes itself after this.
    }
}
