import CourierCore
import Crypto
import FoundationEssentials
@preconcurrency import Glibc

/// Is a `dir` source's folder finished? A person copying files in, or an rsync filling a new
/// revision directory, leaves a half-written folder for a while; staging it would publish half a
/// signature set, signed. Two ways to tell, per type (docs/STAGE.md, "Settled sources"):
///
/// - `ready_file = "READY"`: the publisher drops a marker when done; nothing is staged without it,
///   and the marker itself is not content.
/// - `settle = "30s"`: the folder is taken once nothing in it has changed for that long. One walk
///   (no hashing) reads every entry's ctime, which any write, rename, chmod or new entry moves and
///   no copier can set back (`cp -p` and `rsync -t` preserve mtimes, not ctimes): the newest one
///   older than `settle` means settled. For clocks that disagree (a share whose server sets
///   ctimes), the walk's fingerprint (paths, sizes, mtimes, ctimes, inodes) is also kept in the
///   type's state: the same fingerprint seen `settle` seconds apart, by two runs, also settles it.
public struct SettleRule: Sendable, Equatable {
    public var settle: Int64 = 0
    public var readyFile: String? = nil
    public init(settle: Int64 = 0, readyFile: String? = nil) {
        self.settle = settle
        self.readyFile = readyFile
    }

    public var isOff: Bool { settle <= 0 && readyFile == nil }

    /// nil when `dir` may be staged now; otherwise why not (for the log: "still being written").
    func notReady(_ dir: String, stateDir: String, now: Int64) throws -> String? {
        if let marker = readyFile, (try Sys.lstat(dir + "/" + marker)) == nil {
            return "\(dir): no \(Escape.quoted(marker)) marker yet: still being written"
        }
        guard settle > 0 else { return nil }
        let walk = try SettleRule.walk(dir)
        let quiet = now - walk.newestChange
        if quiet >= settle { return nil }
        // The clock route failed (changed recently, or ctimes from a server in the future):
        // compare with what an earlier run saw.
        let statePath = stateDir + "/settle.json"
        let seen = (try? Sys.readFile(statePath, limit: 4096)).flatMap {
            try? JSONDecoder().decode(Seen.self, from: Data($0))
        }
        if let seen, seen.fingerprint == walk.fingerprint {
            if now - seen.since >= settle { return nil }
        } else {
            try Sys.mkdirs(stateDir)
            try Sys.writeFileAtomically(
                statePath, Array(try JSONEncoder().encode(Seen(fingerprint: walk.fingerprint, since: now))),
                durable: false)
        }
        return "\(dir): changed \(max(quiet, 0)) s ago, settle is \(settle) s: still being written"
    }

    struct Seen: Codable {
        var fingerprint: String
        var since: Int64
    }

    /// Newest ctime of any entry (the folder itself included) and a fingerprint of the walk.
    /// Links are not followed; what is not a file or directory counts by its own metadata.
    static func walk(_ root: String) throws -> (newestChange: Int64, fingerprint: String) {
        let fd = try OwnedFD.openDirectory(root)
        var newest = Int64(try Sys.fstat(fd.raw, display: root).st_ctim.tv_sec)
        var lines: [String] = []
        func visit(_ dirfd: Int32, _ prefix: String) throws {
            for ent in try Sys.listDirectory(dirfd, display: root + "/" + prefix) {
                let rel = prefix.isEmpty ? ent.name : prefix + "/" + ent.name
                guard let st = try Sys.lstatat(dirfd, ent.name, display: root + "/" + rel) else { continue }
                newest = max(newest, Int64(st.st_ctim.tv_sec))
                lines.append(
                    "\(rel)\u{0}\(st.st_size)\u{0}\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)\u{0}\(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)\u{0}\(st.st_ino)"
                )
                if st.st_mode & S_IFMT == S_IFDIR {
                    let sub = try OwnedFD.openDirectory(at: dirfd, ent.name, display: root + "/" + rel)
                    try visit(sub.raw, rel)
                }
            }
        }
        try visit(fd.raw, "")
        lines.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var h = SHA256()
        for l in lines { h.update(data: Array(l.utf8) + [0x0a]) }
        return (newest, Hex.encode(h.finalize()))
    }
}
