import CourierCore
import FoundationEssentials
@preconcurrency import Glibc

/// What push remembers of the packages it verified, so that a later push of the same unchanged
/// file does not decompress and hash it again. An outbox package never changes after it is
/// staged (the stager renames new files into place), yet a push from cron, to a fleet where a
/// few clients lag, verifies the same large package every run: 0.14 s of CPU per 100 MiB.
///
/// A record is one small file in a private directory, named by the SHA-256 of everything the
/// verdict depends on:
/// - the package file's identity: device, inode, size, and the modification and change times
///   to the nanosecond. Any write to the file, in place or by rename, changes the change time
///   (ctime), which no unprivileged process can set back;
/// - the trust store (trusted and revoked key ids, threshold) and the limits it was verified
///   under, and the expected type;
/// - `formatTag`, bumped whenever what verification checks changes.
///
/// The record holds what the manifest said (type, revision, base, created, expires): the
/// checks that depend on the moment — expiry, a creation time in the future — run again on
/// every hit (`VerifyOptions.checkTimeAndType`). Only passes are remembered: a package that
/// failed is verified again next time, and refused again with its reason.
///
/// The directory must be the user's own and writable by nobody else (checked on open, as ssh
/// checks ~/.ssh), for anyone who could write a record could make push skip verification.
/// Clients verify every package themselves in any case; this cache only ever saves push's
/// check, never the client's.
public struct VerifiedCache: Sendable {
    public static let formatTag = "courier-verified-v1"
    /// Records not used for this long are removed (their packages are likely gone).
    public static let keepSeconds: Int64 = 14 * 86400
    /// At most this many records are kept; the least recently used go first.
    public static let maxRecords = 4096

    public let dir: String
    /// A package whose last change (ctime) is more recent than this many seconds is verified
    /// but not remembered: file times advance in clock ticks (a few milliseconds), so two
    /// writes within one tick leave the same ctime, and a file just written may still change.
    public let minimumAge: Int64

    /// Opens (creating it, mode 0700) the cache directory. Throws when it is not a directory,
    /// not owned by this user, or writable by group or others.
    public init(dir: String, minimumAge: Int64 = 2) throws {
        self.dir = dir
        self.minimumAge = minimumAge
        if !Sys.exists(dir) { try Sys.mkdirs(dir, 0o700) }
        guard let st = try Sys.lstat(dir), (st.st_mode & S_IFMT) == S_IFDIR else {
            throw CourierError(.usage, "\(dir): the verification cache is not a directory (a symlink is not accepted)")
        }
        if st.st_uid != Sys.effectiveUserID() {
            throw CourierError(
                .usage,
                "\(dir): the verification cache belongs to uid \(st.st_uid), not to this user (uid \(Sys.effectiveUserID()))"
            )
        }
        if st.st_mode & 0o022 != 0 {
            throw CourierError(
                .usage,
                "\(dir): the verification cache is writable by group or others (mode \(String(st.st_mode & 0o7777, radix: 8))); chmod go-w it"
            )
        }
    }

    /// The default place: $XDG_CACHE_HOME/courier/verified, else ~/.cache/courier/verified;
    /// nil when neither variable is set.
    public static func defaultDirectory(environment env: [String: String]) -> String? {
        if let x = env["XDG_CACHE_HOME"], x.hasPrefix("/") { return x + "/courier/verified" }
        if let h = env["HOME"], h.hasPrefix("/") { return h + "/.cache/courier/verified" }
        return nil
    }

    /// What a record says: the manifest's fields that a remembered verdict is checked against.
    public struct Record: Codable, Sendable, Equatable {
        public var type: String
        public var revision: UInt64
        public var base: UInt64?
        public var created: String
        public var expires: String
    }

    /// The record's name for a package held open as `fd`, verified under `options`.
    static func key(_ st: stat, options o: VerifyOptions) -> String {
        let trust = o.trust
        let parts: [String] = [
            formatTag,
            "\(st.st_dev):\(st.st_ino):\(st.st_size)",
            "m\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec):c\(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)",
            "trusted=" + trust.trusted.keys.sorted().joined(separator: ","),
            "revoked=" + trust.revoked.sorted().joined(separator: ","),
            "threshold=\(trust.threshold)",
            "limits=\(o.limits)",
            "type=\(o.expectedType ?? "")",
        ]
        return Hex.sha256(Array(parts.joined(separator: "\n").utf8))
    }

    /// What `lookup` found: a remembered verdict, or the file's identity now (to hand to
    /// `remember` after verifying: one fstat serves both).
    public enum Lookup {
        case hit(Record)
        case miss(identity: stat?)
    }

    /// The remembered verdict for the package open as `fd`, if there is one; its time and type
    /// checked against `options` (a package that expired since throws, as verification would).
    public func lookup(fd: Int32, path: String, options: VerifyOptions) throws -> Lookup {
        guard let st = try? Sys.fstat(fd, display: path) else { return .miss(identity: nil) }
        let name = Self.key(st, options: options)
        guard let bytes = try? Sys.readFile(dir + "/" + name, limit: 64 << 10),
            let r = try? JSONDecoder().decode(Record.self, from: Data(bytes))
        else { return .miss(identity: st) }
        try options.checkTimeAndType(created: r.created, expires: r.expires, type: r.type, path: path)
        // Marks it used, for pruning; a failure only makes it older.
        try? Sys.touch(dir + "/" + name)
        return .hit(r)
    }

    /// The identity of the package open as `fd`, taken before verifying it: `remember` records
    /// a pass only if the file is still that (a write during verification changes its ctime).
    public func identity(fd: Int32, path: String) -> stat? { try? Sys.fstat(fd, display: path) }

    /// Remembers that the package open as `fd`, as it was at `before` (`identity`), passed
    /// verification under `options` — unless it changed since. A failure to write is not an
    /// error: the next push verifies again.
    public func remember(fd: Int32, path: String, before: stat?, options: VerifyOptions, manifest m: Manifest) {
        guard let before, let st = try? Sys.fstat(fd, display: path),
            Self.key(st, options: options) == Self.key(before, options: options),
            Int64(time(nil)) - Int64(st.st_ctim.tv_sec) >= minimumAge
        else { return }
        let r = Record(type: m.type, revision: m.revision, base: m.base, created: m.created, expires: m.expires)
        guard let json = try? JSONEncoder().encode(r) else { return }
        try? Sys.writeFileAtomically(
            dir + "/" + Self.key(st, options: options), Array(json), mode: 0o600, durable: false)
    }

    /// Removes records unused for `keepSeconds`, then the least recently used beyond
    /// `maxRecords`, and temporaries of writes that died. Returns how many were removed.
    @discardableResult
    public func prune(now: Int64 = Int64(time(nil)), maxRecords: Int = VerifiedCache.maxRecords) -> Int {
        guard let names = try? Sys.listDirectory(dir) else { return 0 }
        var aged: [(name: String, used: Int64)] = []
        var removed = 0
        for n in names {
            guard let st = try? Sys.lstat(dir + "/" + n) else { continue }
            let used = Int64(st.st_mtim.tv_sec)
            // A write that died halfway (`Sys.writeFileAtomically`'s temporary), after an hour.
            if n.hasPrefix("."), n.contains(".tmp-"), now - used > 3600 {
                if (try? Sys.unlink(dir + "/" + n)) != nil { removed += 1 }
                continue
            }
            guard n.utf8.count == 64, n.utf8.allSatisfy({ Hex.isLowerDigit($0) }) else { continue }
            if now - used > Self.keepSeconds {
                if (try? Sys.unlink(dir + "/" + n)) != nil { removed += 1 }
            } else {
                aged.append((n, used))
            }
        }
        if aged.count > maxRecords {
            for victim in aged.sorted(by: { $0.used < $1.used }).prefix(aged.count - maxRecords) {
                if (try? Sys.unlink(dir + "/" + victim.name)) != nil { removed += 1 }
            }
        }
        return removed
    }
}
