import CCourierShim
import CourierCore
@preconcurrency import Glibc
import SystemPackage

/// Puts one package into one inbox so that nobody ever sees a half-written file: a dot-named
/// temporary file in the inbox itself (`courier-inboxd` and `courier-deliver` skip dot-names),
/// filled by reflink, direct I/O, `copy_file_range` or read/write (or hard-linked with `link`),
/// mode 0644; made durable; then renamed to its final name. The durability step is the
/// caller's, once for all the files it staged on one file system (`syncfs`), instead of an fsync
/// per file: see `Pusher.run` (and `Pusher.sync`, which `--no-sync` turns off).
public enum InboxCopier {
    public static let tempPrefix = ".courier-push."

    public enum Method: String, Sendable { case copy, link }

    /// The temporary name: `.courier-push.<pid>@<host>.<name>`, so that a later push can tell a
    /// leftover of a dead push (same host, process gone) from one still running elsewhere.
    static func tempName(_ name: String) -> String {
        "\(tempPrefix)\(Sys.processID())@\(shortHost).\(name)"
    }

    static let shortHost: String = String(Sys.hostName().split(separator: ".").first ?? "host")

    /// Removes leftovers of interrupted pushes from an inbox: temporary files of this host whose
    /// process is gone, and any older than `staleAfter` seconds (a push on another host that
    /// died). Returns the names removed.
    public static func cleanLeftovers(inboxFD dfd: Int32, inbox: String, staleAfter: Int64 = 3600) -> [String] {
        guard let entries = try? Sys.listDirectory(dfd, display: inbox) else { return [] }
        var removed: [String] = []
        let now = Int64(time(nil))
        for e in entries where e.name.hasPrefix(tempPrefix) {
            let rest = e.name.dropFirst(tempPrefix.count)
            var dead = false
            if let at = rest.firstIndex(of: "@"), let pid = Int32(rest[..<at]) {
                let host = rest[rest.index(after: at)...].prefix(while: { $0 != "." })
                if host == shortHost && pid != Sys.processID() && !Sys.processExists(pid) { dead = true }
            }
            if !dead, let st = try? Sys.lstatat(dfd, e.name, display: inbox + "/" + e.name),
                now - Int64(st.st_mtim.tv_sec) > staleAfter
            {
                dead = true
            }
            if dead, (try? Sys.unlinkat(dfd, e.name, display: inbox + "/" + e.name)) != nil { removed.append(e.name) }
        }
        return removed
    }

    /// A package written under its temporary name in an inbox, not yet renamed.
    public struct Staged: Sendable {
        public var inbox: String
        public var temp: String
        public var name: String
        public var bytes: Int64
        /// The file system it is on: the one to flush before the rename.
        public var device: UInt64
        /// "reflink", "direct I/O", "copy_file_range", "read/write", "hard link", or
        /// "copy (hard link impossible: …)".
        public var how: String
    }

    /// Step 1: writes `source` into the inbox under a temporary name, mode 0644. Not durable
    /// yet, not visible to the client. On failure nothing is left behind. `cache`: see
    /// `PackageSource.copy` (nil: a durable push).
    /// `throttle`: the run's `--bwlimit` (see `PackageSource.copy`); a hard link moves no bytes
    /// and is not paced.
    public static func stage(
        _ source: PackageSource, name: String, inbox: String, method: Method,
        cache: CacheBudget? = nil, throttle: Throttle? = nil,
        faults: FaultPoints = .none
    ) throws -> Staged {
        let tmp = tempName(name)
        let tmpPath = inbox + "/" + tmp
        var how = ""
        var done = false
        defer { if !done { try? Sys.unlink(tmpPath) } }
        try faults.hit("deliver-before-temp")
        if method == .link {
            do {
                try Sys.linkat(AT_FDCWD, source.path, AT_FDCWD, tmpPath)
                how = "hard link"
            } catch {
                let e = ((error as? CourierError)?.cause as? Errno)?.rawValue ?? EIO
                guard e == EXDEV || e == EPERM || e == EMLINK || e == ENOTSUP else {
                    throw CourierError.io("hard-link \(source.path) as", path: tmpPath, errno: Errno(rawValue: e))
                }
                how = "copy (hard link impossible: \(String(cString: strerror(e))))"
            }
        }
        if how != "hard link" {
            let ofd = try OwnedFD.open(tmpPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            let via = try source.copy(into: ofd.raw, dst: tmpPath, cache: cache, throttle: throttle)
            how = how.isEmpty ? via : how
            try faults.hit("deliver-after-write")
            // The umask may have narrowed 0644; clients' daemons may run as another user.
            try Sys.fchmod(ofd.raw, 0o644, display: tmpPath)
        }
        guard let st = try Sys.lstat(tmpPath) else {
            throw CourierError(.io, "\(tmpPath): vanished right after it was written")
        }
        done = true
        return Staged(inbox: inbox, temp: tmp, name: name, bytes: source.size, device: UInt64(st.st_dev), how: how)
    }

    /// Step 2, once the file system holding the inbox was flushed (`Sys.syncFileSystem`): the
    /// rename that makes the package appear, complete, under its final name.
    public static func commit(_ s: Staged, faults: FaultPoints = .none) throws {
        try faults.hit("deliver-before-rename")
        try Sys.rename(s.inbox + "/" + s.temp, s.inbox + "/" + s.name)
    }

    /// Removes a staged file that will not be committed.
    public static func discard(_ s: Staged) { try? Sys.unlink(s.inbox + "/" + s.temp) }
}
