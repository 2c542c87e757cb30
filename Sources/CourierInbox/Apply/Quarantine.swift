import CourierCore
import FoundationEssentials
@preconcurrency import Glibc
import SystemPackage

/// Refused packages leave the inbox for `quarantine/`, each with `<name>.reason.json` saying
/// what, why and when. The reason is written first, then the package renamed, so a crash in
/// between leaves the package in the inbox (it is refused again) rather than a package with no
/// reason.
public struct Quarantine: Sendable {
    public let dir: String
    public var caps = Caps()

    public init(dir: String, caps: Caps = Caps()) {
        self.dir = dir
        self.caps = caps
    }

    /// The bounds `enforce` keeps (inboxd.toml `quarantine_max_files`, `_bytes`, `_age`). The
    /// defaults hold a good many refusals to look at, but not a disk's worth.
    public struct Caps: Sendable, Equatable {
        /// Packages (each with its reason file).
        public var maxFiles = 100
        public var maxBytes: Int64 = 1 << 30
        /// Seconds since an entry was quarantined.
        public var maxAge: Int64 = 30 * 86400
        public init() {}
    }

    public struct Reason: Codable, Sendable {
        public var package: String
        public var code: String
        public var reason: String
        public var at: String
        public var type: String?
        public var revision: UInt64?
    }

    @discardableResult
    public func put(_ packagePath: String, code: CourierError.Code, reason: String, type: String?, revision: UInt64?)
        throws -> String
    {
        try Sys.mkdirs(dir)
        let name = String(packagePath.split(separator: "/").last ?? "package")
        var dest = dir + "/" + name
        if Sys.exists(dest) { dest = dir + "/\(name).\(time(nil))-\(Sys.processID())" }
        let r = Reason(
            package: name, code: code.name, reason: reason, at: RFC3339.format(Int64(time(nil))), type: type,
            revision: revision)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try Sys.writeFileAtomically(dest + ".reason.json", Array(try enc.encode(r)) + [0x0a])
        // File times come from the kernel's coarse clock (a few ms): refusals in a burst would
        // tie. The reason's mtime set to the fine clock orders them for eviction (`entries`).
        try? Sys.setModificationTimeToNow(dest + ".reason.json")
        do { try Sys.rename(packagePath, dest) } catch let e as CourierError where (e.cause as? Errno) == .improperLink
        {
            // Inbox and quarantine on different file systems. Something other than a regular
            // file (a symlink, a FIFO) is not copied — that would follow or read it — but removed.
            if let st = try Sys.lstat(packagePath), st.st_mode & S_IFMT != S_IFREG {
                try Sys.unlink(packagePath)
                return dest
            }
            // A regular file: copy, then remove.
            let src = try OwnedFD.open(packagePath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
            let dst = try OwnedFD.open(dest, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            try TreeCopier.copyData(
                src.raw, dst.raw, size: Int(try Sys.fstat(src.raw, display: packagePath).st_size), src: packagePath,
                dst: dest)
            try Sys.unlink(packagePath)
        }
        return dest
    }
}

extension Quarantine {
    /// One refusal on disk: the package and its reason file (either may be missing after a
    /// crash or a removal by hand), dated by when it was quarantined.
    struct Entry {
        var name: String
        var files: [String] = []
        var bytes: Int64 = 0
        /// Newest status change of its files, in nanoseconds: a rename into the quarantine sets
        /// it, whatever the package's own mtime (that of its copier) says.
        var at: Int64 = 0
        /// Nanoseconds: the reason file's mtime (set at `put`), else the newest ctime.
        var reasonAt: Int64?
        var order: Int64 { reasonAt ?? at }
    }

    /// What is in the quarantine now; dot-names (temporaries of an interrupted write) left out.
    func entries() throws -> [Entry] {
        guard Sys.isDirectory(dir) else { return [] }
        var byName: [String: Entry] = [:]
        for n in try Sys.listDirectory(dir) where !n.hasPrefix(".") {
            let key = n.hasSuffix(".reason.json") ? String(n.dropLast(".reason.json".count)) : n
            guard let st = try Sys.lstat(dir + "/" + n) else { continue }
            var e = byName[key] ?? Entry(name: key)
            e.files.append(n)
            e.bytes += Int64(st.st_size)
            e.at = max(e.at, Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec))
            if n.hasSuffix(".reason.json") {
                e.reasonAt = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
            }
            byName[key] = e
        }
        return byName.values.sorted { ($0.order, $0.name) < ($1.order, $1.name) }
    }

    public struct Enforced: Sendable, Equatable {
        public var files: Int
        public var bytes: Int64
        /// Package names evicted by this call, oldest first.
        public var evicted: [String]
        /// Entries that could not be removed (name, why): skipped, so that one stuck entry
        /// cannot keep every newer one from being evicted; tried again at the next call.
        public var failed: [(String, String)] = []
        public static func == (a: Enforced, b: Enforced) -> Bool {
            a.files == b.files && a.bytes == b.bytes && a.evicted == b.evicted && a.failed.map(\.0) == b.failed.map(\.0)
        }
    }

    /// Evicts the oldest entries — package and reason file together — until the quarantine is
    /// within `caps`: anything older than `maxAge`; then, oldest first, while there are more
    /// than `maxFiles` entries or more than `maxBytes`. The newest entry is kept even when it
    /// alone is over `maxBytes`, so the last refusal can always be looked at.
    @discardableResult
    public func enforce(now: Int64 = Int64(time(nil))) throws -> Enforced {
        var list = try entries()
        var evicted: [String] = []
        var failed: [(String, String)] = []
        var stuck = (files: 0, bytes: Int64(0))  // entries that stay although they were due
        func evict(_ e: Entry) {
            // The reason file last: a crash in between leaves a reason without a package, which
            // the next call evicts, never a package without its reason. removeTree: a refused
            // entry may be a directory (a `.courier` directory dropped in the inbox), and no
            // symlink is followed; a missing file is fine.
            do {
                for f in e.files.sorted(by: { a, _ in !a.hasSuffix(".reason.json") }) {
                    try Sys.removeTree(dir + "/" + f)
                }
                evicted.append(e.name)
            } catch {
                failed.append((e.name, "\(error)"))
                stuck.files += 1
                stuck.bytes += e.bytes
            }
        }
        while let first = list.first, now - first.order / 1_000_000_000 > caps.maxAge {
            evict(first)
            list.removeFirst()
        }
        var bytes = list.reduce(Int64(0)) { $0 + $1.bytes }
        while list.count > 1, list.count + stuck.files > caps.maxFiles || bytes + stuck.bytes > caps.maxBytes {
            let e = list.removeFirst()
            evict(e)
            bytes -= e.bytes
        }
        return Enforced(files: list.count + stuck.files, bytes: bytes + stuck.bytes, evicted: evicted, failed: failed)
    }
}
