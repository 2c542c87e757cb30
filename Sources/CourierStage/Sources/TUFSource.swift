import CourierCore
import CourierFetch
import CourierTUF
import FoundationEssentials
@preconcurrency import Glibc

/// `tuf` source: targets of a vendor's TUF repository (issue #14), verified by CourierTUF's
/// updater — the python-tuf client workflow: root rotation from the root the admin placed,
/// timestamp, snapshot and targets with their version, expiry, hash and length rules,
/// delegations — before a byte of them reaches the tree.
///
/// State, in `state_dir/<type>/tuf/`: `metadata/` (the trusted metadata, the exact bytes
/// received; the admin's `trusted_root` copied in on first use, and only then) and `targets/`
/// (downloaded targets, reused while their hashes still match the signed ones). A refresh whose
/// targets are the same as the latest revision is no new revision.
///
/// Failures keep their kind, and so the stager's exit code: a signature or threshold problem,
/// or a target that does not match its signed hashes, is `signature` (7); expired metadata or a
/// rollback is `expired` (8); a malformed document `malformed` (6).
public struct TUFSource: ContentSource {
    public let spec: StageConfig.TUFSourceSpec
    public var describe: String { "tuf \(URLRedaction.redact(spec.metadataURL))" }

    public func check(_ ctx: SourceContext) async throws -> CheckResult {
        guard let base = ctx.fetcher else { throw CourierError(.config, "tuf source needs an HTTP fetcher") }
        // The type's own headers, credentials, CA and rate; but no cool-down after a 403 or 404:
        // the end of the root chain answers one of them by design (TUF §5.3.3).
        let own: (inout FetchPolicy) -> Void = {
            spec.transfer.apply(to: &$0)
            $0.forbiddenCoolDown = 0
            $0.busyCoolDown = 0
        }
        return try await withOwnFetcher(base, own) { try await check(ctx, fetcher: $0) }
    }

    func check(_ ctx: SourceContext, fetcher: Fetcher) async throws -> CheckResult {
        let metaDir = ctx.stateDir + "/tuf/metadata"
        let cache = ctx.stateDir + "/tuf/targets"
        try Sys.mkdirs(metaDir)
        try Sys.mkdirs(cache)
        if !Sys.exists(metaDir + "/root.json") {
            // Trust on the admin's word once; every later root must be signed by the one before.
            let root = try Sys.readFile(spec.trustedRoot, limit: UpdaterConfig().rootMaxLength)
            try Sys.writeFileAtomically(metaDir + "/root.json", root)
        }
        let updater = try Updater(
            metadataDir: metaDir, metadataBaseURL: spec.metadataURL, targetDir: cache,
            targetBaseURL: spec.targetsURL, fetcher: fetcher, logger: ctx.logger,
            referenceTime: ctx.now)
        try await updater.refresh()
        ctx.served.mirror = URLRedaction.redact(spec.metadataURL)

        let names = try await chosenTargets(updater)
        let tree = ctx.workDir + "/tree"
        try Sys.removeTree(tree)
        try Sys.mkdirs(tree)
        var downloaded: Int64 = 0
        var total: UInt64 = 0
        var revisions: Set<UInt64> = []
        for name in names {
            if let p = Names.pathProblem(name) {
                throw CourierError(.unsafeEntry, "tuf target \(Escape.quoted(name)) cannot be a file of the tree: \(p)")
            }
        }
        // One updater for all: targets in the listed order, small ones several at a time.
        try await updater.downloadTargets(
            names,
            check: { name, target in
                // Bounded before a byte is fetched: the signed length against the stager's download
                // cap ([http] max_bytes) and the tree against the package limit.
                if target.file.length > fetcher.policy.maxBytes {
                    throw CourierError(
                        .limit,
                        "tuf target \(Escape.quoted(name)) is \(target.file.length) bytes, more than [http] max_bytes (\(fetcher.policy.maxBytes))"
                    )
                }
                total += UInt64(target.file.length)
                if total > ctx.limits.maxTotalBytes {
                    throw CourierError(
                        .limit,
                        "the chosen tuf targets add up to more than the limit of \(ctx.limits.maxTotalBytes) bytes")
                }
            }
        ) { name, target, obtained in
            if case .stored = obtained { downloaded += target.file.length }
            if let key = self.spec.revisionKey, let v = target.file.custom?[field: key] {
                guard
                    let r = v.intValue.flatMap({ $0 > 0 ? UInt64($0) : nil })
                        ?? v.stringValue.flatMap(Names.parseRevision)
                else {
                    throw CourierError(
                        .malformed,
                        "tuf target \(Escape.quoted(name)): custom \(Escape.quoted(key)) is not a revision number")
                }
                revisions.insert(r)
            }
            try self.place(obtained.path, as: name, in: tree)
        }
        var revision: UInt64? = nil
        if let key = spec.revisionKey {
            guard !revisions.isEmpty else {
                throw CourierError(.source, "no chosen tuf target carries custom \(Escape.quoted(key)) (revision_key)")
            }
            guard revisions.count == 1 else {
                throw CourierError(
                    .source,
                    "the chosen tuf targets name different revisions in custom \(Escape.quoted(key)): \(revisions.sorted().map(String.init).joined(separator: ", "))"
                )
            }
            revision = revisions.first
        }
        var o = TreeScanner.Options()
        o.limits = ctx.limits
        let files = try TreeScanner.scan(tree, options: o)
        let versions = roleVersions(updater)
        if try sameContent(files, ctx) {
            return .unchanged(
                "tuf: \(versions.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", ")); targets equal revision \(ctx.latestRevision!)"
            )
        }
        var prov = [
            "source": "tuf", "metadata_url": URLRedaction.redact(spec.metadataURL),
            "targets_url": URLRedaction.redact(spec.targetsURL),
        ]
        for (role, v) in versions { prov["tuf_\(role)_version"] = String(v) }
        return .new(
            Candidate(tree: tree, revision: revision, files: files, provenance: prov, downloadedBytes: downloaded))
    }

    /// The target paths that form the tree: the configured list, or every target of the
    /// top-level and delegated roles whose path matches `target_pattern` — TUF's own path
    /// pattern rule (`PathMatch.matches`, as for delegations: split on `/`, as many segments,
    /// each matched by fnmatch, so `*` stays within a segment) — and that the delegation
    /// search, which decides which role is trusted for a path, resolves. Names and roles are
    /// compared as bytes: two spellings Swift deems equal are two targets.
    func chosenTargets(_ updater: Updater) async throws -> [String] {
        guard let pattern = spec.targetPattern else { return spec.targets }
        var listed = 0
        var chosen: [String] = []
        var seenNames = Set<[UInt8]>()
        var queue: [(role: String, delegator: String)] = [("targets", "root")]
        var seenRoles = Set<[UInt8]>()
        var next = 0
        while next < queue.count, seenRoles.count <= updater.config.maxDelegations {
            let (role, delegator) = queue[next]
            next += 1
            guard seenRoles.insert(Array(role.utf8)).inserted else { continue }
            let md = try await updater.loadRole(role, delegator: delegator)
            for name in md.signed.targets.keys where seenNames.insert(Array(name.utf8)).inserted {
                listed += 1
                if PathMatch.matches(name, pattern: pattern) { chosen.append(name) }
            }
            for r in md.signed.delegations?.roles ?? [] { queue.append((r.name, role)) }
        }
        if chosen.isEmpty {
            throw CourierError(
                .source, "no tuf target matches target_pattern \(Escape.quoted(pattern)) (\(listed) targets listed)")
        }
        return chosen.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// Copies a verified target from the cache into the tree at its path, mode 0644.
    func place(_ local: String, as name: String, in tree: String) throws {
        let parts = name.split(separator: "/")
        if parts.count > 1 { try Sys.mkdirs(tree + "/" + parts.dropLast().joined(separator: "/")) }
        let src = try OwnedFD.open(local, O_RDONLY | O_NOFOLLOW)
        let dst = try OwnedFD.open(tree + "/" + name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644)
        _ = try TreeCopier.copyData(
            src.raw, dst.raw, size: Int(try Sys.fstat(src.raw, display: local).st_size), src: local,
            dst: tree + "/" + name)
    }

    /// The versions of the top-level roles now trusted, for provenance and the report.
    func roleVersions(_ u: Updater) -> [String: Int64] {
        var v = ["root": u.trusted.root.signed.version]
        if let t = u.trusted.timestamp { v["timestamp"] = t.signed.version }
        if let s = u.trusted.snapshot { v["snapshot"] = s.signed.version }
        if let t = u.trusted.targets { v["targets"] = t.signed.version }
        return v
    }
}
