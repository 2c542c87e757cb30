import CourierCore

/// What an outbox offers, read from its directories (not from `index.json`, which is a summary
/// for humans and may lag a crash): per type, the published revisions, each with its full package
/// and the deltas it has, by base revision. Dot-names are work in progress and skipped.
public struct Catalog: Sendable {
    public struct Revision: Sendable {
        public var full: String
        public var deltas: [UInt64: String] = [:]
    }
    public struct TypeEntry: Sendable {
        public var latest: UInt64?
        public var revisions: [UInt64: Revision] = [:]
    }

    public let outbox: Outbox
    /// Set here by `scan` and by `init(index:)` (Catalog+Index.swift, for pull over HTTP).
    public internal(set) var types: [String: TypeEntry] = [:]

    public init(outbox: Outbox) { self.outbox = outbox }

    /// Scans the outbox for `only` (all types when nil).
    public static func scan(_ root: String, only: Set<String>? = nil) throws -> Catalog {
        guard Sys.isDirectory(root) else {
            throw CourierError(.io, "\(root): the outbox is not a directory (or cannot be read)")
        }
        var c = Catalog(outbox: Outbox(root: Sys.absolutePath(root)))
        for t in try c.outbox.listTypes() where only?.contains(t) ?? true {
            var entry = TypeEntry()
            for rev in try c.outbox.revisions(t) {
                let dir = c.outbox.revisionDir(t, rev)
                var r = Revision(full: c.outbox.fullPackage(t, rev))
                let fullSize = c.outbox.fileSize(r.full)  // listed by revisions(): it exists
                for name in try Sys.listDirectory(dir) {
                    guard let p = Names.parsePackageFileName(name), p.type == t, p.revision == rev,
                        let base = p.base
                    else { continue }
                    // A delta no smaller than the full package saves nothing and costs the client
                    // a base copy: never offered (older stagers published such deltas).
                    if c.outbox.fileSize(dir + "/" + name) >= fullSize { continue }
                    r.deltas[base] = dir + "/" + name
                }
                entry.revisions[rev] = r
            }
            entry.latest = c.outbox.latest(t) ?? entry.revisions.keys.max()
            c.types[t] = entry
        }
        return c
    }
}
