import CourierCore

/// A catalog read from a mirror's `index.json` instead of an outbox's directories: what the pull
/// copier (`courier-pull run`) and the relay (`courier-pull mirror`) decide from. Package paths
/// are the index's own `file` values, relative to the outbox root (`<type>/<revision>/<name>`),
/// which the caller resolves against the mirror's URL; `packages` keeps each one's size and
/// SHA-256 so that a download can be checked before it is renamed into place.
///
/// The same filters as `scan`: a package whose name does not match its type and revision is
/// ignored, and a delta no smaller than its full package is never offered.
extension Catalog {
    public init(index: OutboxIndex, only: Set<String>? = nil) {
        self.init(outbox: Outbox(root: ""))
        for (t, info) in index.types where only?.contains(t) ?? true {
            guard (try? Names.validateType(t)) != nil else { continue }
            var entry = TypeEntry()
            for r in info.revisions {
                let pkgs = r.packages.filter { Catalog.indexEntryIsSane($0, type: t, revision: r.revision) }
                guard let full = pkgs.first(where: { $0.kind == .full && $0.base == nil }) else { continue }
                var rev = Revision(full: full.file)
                for d in pkgs where d.kind == .delta {
                    guard let b = d.base, d.size < full.size else { continue }
                    rev.deltas[b] = d.file
                }
                entry.revisions[r.revision] = rev
            }
            if let l = info.latest, entry.revisions[l] != nil {
                entry.latest = l
            } else {
                entry.latest = entry.revisions.keys.max()
            }
            if !entry.revisions.isEmpty { types[t] = entry }
        }
    }

    /// The index's facts about every package, by its relative path (size, SHA-256, kind, base).
    public static func packages(of index: OutboxIndex) -> [String: OutboxIndex.PackageInfo] {
        var out: [String: OutboxIndex.PackageInfo] = [:]
        for (t, info) in index.types {
            for r in info.revisions {
                for p in r.packages where indexEntryIsSane(p, type: t, revision: r.revision) { out[p.file] = p }
            }
        }
        return out
    }

    /// `file` is exactly `<type>/<revision>/<package name of that type and revision>`, with the
    /// kind and base the name says: an index is untrusted text from the network, and its paths
    /// become URLs and file names in an inbox or a mirror.
    public static func indexEntryIsSane(_ p: OutboxIndex.PackageInfo, type: String, revision: UInt64) -> Bool {
        let parts = p.file.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == type, parts[1] == String(revision),
            let name = Names.parsePackageFileName(String(parts[2])), name.type == type, name.revision == revision,
            name.base == p.base, (p.kind == .full) == (p.base == nil), p.size >= 0
        else { return false }
        return true
    }
}
