import CourierCore
@preconcurrency import Glibc
import SystemPackage

/// The client's content store (docs/INBOXD.md):
///
///     store/<type>/<revision>/…        complete, checked trees
///     store/<type>/<revision>.tmp/     a tree being built (never pointed at; removed at start-up)
///     store/<type>/current → <revision>   what the product uses; switched by an atomic rename
///
/// `current` is the commit point: whatever it names is complete and checked, at every instant,
/// including after a crash at any step.
public struct Store: Sendable {
    public let root: String
    public init(root: String) { self.root = root }

    public func typeDir(_ t: String) -> String { root + "/" + t }
    public func revisionDir(_ t: String, _ r: UInt64) -> String { typeDir(t) + "/" + String(r) }
    public func tempDir(_ t: String, _ r: UInt64) -> String { typeDir(t) + "/\(r).tmp" }
    public func currentLink(_ t: String) -> String { typeDir(t) + "/current" }
    /// The manifest a revision was applied from, kept beside it so that a rollback can check the
    /// kept tree before switching to it.
    public func manifestPath(_ t: String, _ r: UInt64) -> String { typeDir(t) + "/\(r).manifest.json" }

    /// Removes a revision directory without ever leaving a partial tree under its real name:
    /// renamed to a `.tmp` name first (recovery removes those), then deleted.
    public func removeRevision(_ t: String, _ r: UInt64) throws {
        let dir = revisionDir(t, r)
        if Sys.exists(dir) {
            let doomed = typeDir(t) + "/\(r).removing.tmp"
            try Sys.removeTree(doomed)
            try Sys.rename(dir, doomed)
            try Sys.removeTree(doomed)
        }
        try? Sys.unlink(manifestPath(t, r))
    }

    /// Checks a kept revision against the manifest it was applied from (rollback's safety net).
    public func checkRevision(_ t: String, _ r: UInt64, limits: Limits) throws {
        let p = manifestPath(t, r)
        guard Sys.exists(p) else {
            throw CourierError(
                .integrity, "\(revisionDir(t, r)): no manifest kept for revision \(r); cannot check the tree")
        }
        let m = try Manifest.decode(try Sys.readFile(p, limit: limits.maxManifestBytes))
        try TreeChecker.check(revisionDir(t, r), against: m, limits: limits)
    }

    /// The revision `current` points at, if any.
    public func current(_ t: String) -> UInt64? {
        guard let target = Sys.readLink(currentLink(t)) else { return nil }
        return Names.parseRevision(target)
    }

    /// Complete revision directories of a type, ascending.
    public func revisions(_ t: String) throws -> [UInt64] {
        guard Sys.isDirectory(typeDir(t)) else { return [] }
        return try Sys.listDirectory(typeDir(t)).compactMap { Names.parseRevision($0) }.sorted()
    }

    public func types() throws -> [String] {
        guard Sys.isDirectory(root) else { return [] }
        return try Sys.listDirectory(root).filter {
            (try? Names.validateType($0)) != nil && Sys.isDirectory(root + "/" + $0)
        }.sorted()
    }

    /// Points `current` at `revision`: a new symlink under a temporary name, renamed over the old
    /// one (rename is atomic), then the directory fsynced so the switch survives a power cut.
    public func switchCurrent(_ t: String, to revision: UInt64, durable: Bool = true, faults: FaultPoints = .none)
        throws
    {
        try Sys.replaceSymlink(in: typeDir(t), name: "current", target: String(revision), durable: durable) {
            try faults.hit("switch-before-rename")
        }
    }

    /// Start-up recovery: removes trees that were being built and temporary links. Returns what
    /// it removed, for the log.
    @discardableResult
    public func recover() throws -> [String] {
        var removed: [String] = []
        for t in try types() {
            let names = try Sys.listDirectory(typeDir(t))
            for name in names where name.hasSuffix(".tmp") || name.hasPrefix(".") {
                try Sys.removeTree(typeDir(t) + "/" + name)
                removed.append(t + "/" + name)
            }
            // A manifest written just before a crash, for a revision that never got renamed in.
            for name in names where name.hasSuffix(".manifest.json") && !names.contains(String(name.dropLast(14))) {
                try? Sys.unlink(typeDir(t) + "/" + name)
                removed.append(t + "/" + name)
            }
        }
        return removed
    }

    /// Keeps `current` and the `keep` newest other revisions; removes the rest (renamed to a
    /// `.tmp` name first, so a crash mid-removal leaves something recovery cleans).
    @discardableResult
    public func applyRetention(_ t: String, keep: Int) throws -> [UInt64] {
        let cur = current(t)
        let others = try revisions(t).filter { $0 != cur }
        var removed: [UInt64] = []
        for r in others.dropLast(keep) {
            try removeRevision(t, r)
            removed.append(r)
        }
        return removed
    }
}
