import CourierCore

/// `dir` source, `revisions` layout: the publisher drops each revision into `<root>/<revision>/`.
/// The newest numeric directory above the latest published revision is staged; directories being
/// written are skipped if their name is not a plain revision (publishers should write to a
/// temporary name and rename, as rsync does).
public struct DirRevisionsSource: ContentSource {
    public let root: String
    public var settle = SettleRule()
    public var describe: String { "dir \(root) (revisions)" }

    public func check(_ ctx: SourceContext) async throws -> CheckResult {
        guard Sys.isDirectory(root) else {
            throw CourierError(.source, "\(root): source directory does not exist")
        }
        let revs = try Sys.listDirectory(root).compactMap { Names.parseRevision($0) }.sorted()
        guard let newest = revs.last else { return .unchanged("no revision directories in \(root)") }
        if let l = ctx.latestRevision, newest <= l {
            return .unchanged("newest upstream revision \(newest) is already staged")
        }
        let tree = root + "/" + String(newest)
        if let why = try settle.notReady(tree, stateDir: ctx.stateDir, now: ctx.now) { return .unchanged(why) }
        var o = TreeScanner.Options()
        o.limits = ctx.limits
        let files = try TreeScanner.scan(tree, options: o).filter { $0.path != settle.readyFile }
        return .new(
            Candidate(
                tree: tree, revision: newest, files: files,
                provenance: ["source": "dir", "path": tree, "upstream_revision": String(newest)]))
    }
}

/// `dir` source, `snapshot` layout: one folder (a sneakernet import, a mounted share) whose
/// content becomes a new revision whenever it differs from the latest published one.
public struct DirSnapshotSource: ContentSource {
    public let root: String
    public var settle = SettleRule()
    public var describe: String { "dir \(root) (snapshot)" }

    public func check(_ ctx: SourceContext) async throws -> CheckResult {
        guard Sys.isDirectory(root) else {
            throw CourierError(.source, "\(root): source directory does not exist")
        }
        if let why = try settle.notReady(root, stateDir: ctx.stateDir, now: ctx.now) { return .unchanged(why) }
        var o = TreeScanner.Options()
        o.limits = ctx.limits
        let files = try TreeScanner.scan(root, options: o).filter { $0.path != settle.readyFile }
        if files.isEmpty { return .unchanged("\(root) is empty") }
        if try sameContent(files, ctx) { return .unchanged("content unchanged since revision \(ctx.latestRevision!)") }
        return .new(Candidate(tree: root, revision: nil, files: files, provenance: ["source": "dir", "path": root]))
    }
}
