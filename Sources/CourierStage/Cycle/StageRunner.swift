import CourierConfig
import CourierCore
import CourierFetch
@preconcurrency import Glibc
import Logging

/// One run of `courier-stage run`: lock, then for each content type check the source, build and
/// publish, apply retention; repeat for types whose source moved on meanwhile (bounded); then
/// the index. One failing type never stops the others.
public final class StageRunner {
    public let config: StageConfig
    public let logger: Logger
    public var faults = FaultPoints.fromEnvironment()
    public var clock: @Sendable () -> Int64 = { Int64(time(nil)) }

    public init(config: StageConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    public func run(only: [String] = []) async throws -> CycleReport {
        let t0 = Sys.monotonicSeconds()
        let started = clock()
        let outbox = Outbox(root: config.outbox)
        try Sys.mkdirs(config.stateDir)
        try Sys.mkdirs(config.outbox)
        let lock = try RunLock(path: config.stateDir + "/lock")
        defer { withExtendedLifetime(lock) {} }

        let keys = try config.keys.map { try SigningKey.load($0) }
        let trust = TrustStore(keys: keys.map(\.publicKey) + (try config.verifyKeys.map { try PublicKey.load($0) }))
        for o in only where !config.types.contains(where: { $0.name == o }) {
            throw CourierError(.usage, "no content type '\(o)' in \(config.path)")
        }
        let types = config.types.filter { only.isEmpty || only.contains($0.name) }
        var fetcher: Fetcher? = nil
        if types.contains(where: {
            switch $0.source {
            case .url, .tuf: return true
            default: return false
            }
        }) {
            fetcher = Fetcher(policy: try fetchPolicy(), logger: logger)
        }

        // Revisions retention must keep: `hold` per type, and what the delivery policy names.
        var warnings: [String] = []
        var held: [String: Set<UInt64>] = [:]
        var heldBy: [String: [UInt64: [String]]] = [:]
        for t in types { held[t.name] = Set(t.hold) }
        var retentionSuspended = false
        if let policy = config.holdFrom {
            do {
                heldBy = try PolicyRevisions.named(policyPath: policy)
                for (t, revs) in heldBy { held[t, default: []].formUnion(revs.keys) }
            } catch {
                // Without the policy, retention could remove what production is held on.
                retentionSuspended = true
                warnings.append("hold_from \(policy) cannot be read, so retention is suspended in this run: \(error)")
            }
        }

        var results: [String: CycleReport.TypeResult] = [:]
        var pending = types
        var cycles = 0
        while !pending.isEmpty && cycles < config.maxCycles {
            cycles += 1
            var movedOn: [StageConfig.ContentType] = []
            for type in pending {
                let r = await stageOne(
                    type, outbox: outbox, keys: keys, trust: trust, fetcher: fetcher,
                    held: retentionSuspended ? nil : held[type.name] ?? [])
                if let prev = results[type.name], prev.status == .published, r.status != .published {
                    // The re-check found nothing newer: keep what this run published.
                    if r.status == .failed { results[type.name]?.detail += "; re-check failed: \(r.detail)" }
                } else {
                    results[type.name] = r
                }
                if r.status == .published { movedOn.append(type) }
            }
            if !movedOn.isEmpty && cycles < config.maxCycles {
                logger.info("re-checking \(movedOn.count) type(s) in case the upstream moved on during the run")
            }
            pending = movedOn
        }
        try? await fetcher?.shutdown()

        // Every run, whatever happened to each type: the index is derived from the outbox and
        // is rewritten whenever it no longer matches it (a previous run killed before its index
        // write, retention, a revision removed by hand); an unchanged outbox keeps its file.
        try faults.hit("before-index")
        try outbox.writeIndex(types: types.map(\.name), now: clock(), trust: trust, limits: config.limits)
        for t in types {
            let h = (held[t.name] ?? []).sorted()
            let missing = h.filter { !Sys.exists(outbox.fullPackage(t.name, $0)) }
            results[t.name]?.heldRevisions = h.filter { !missing.contains($0) }
            results[t.name]?.missingHeld = missing
            for r in missing {
                let who =
                    heldBy[t.name]?[r].map { "policy group\($0.count == 1 ? "" : "s") \($0.joined(separator: ", "))" }
                    ?? "hold"
                warnings.append(
                    "\(t.name) \(r) is held by \(who) but is not in the outbox: clients held there cannot get it")
            }
        }
        for w in warnings { logger.warning("\(w)") }
        let ordered = types.compactMap { results[$0.name] }
        var report = CycleReport(
            started: RFC3339.format(started), seconds: Sys.monotonicSeconds() - t0, cycles: cycles,
            types: ordered, exitCode: 0, warnings: warnings)
        report.exitCode = StageRunner.exitCode(ordered)
        if report.failures == 0 {
            try? Sys.writeFileAtomically(config.stateDir + "/last-success", Array("\(clock())\n".utf8))
        }
        return report
    }

    /// 0 when every type is fine; the failure's own code when every type failed the same way;
    /// 16 ("done with errors") otherwise.
    static func exitCode(_ results: [CycleReport.TypeResult]) -> Int32 {
        let failed = results.filter { $0.status == .failed }
        if failed.isEmpty { return 0 }
        let codes = Set(failed.compactMap(\.exitCode))
        if failed.count == results.count, codes.count == 1 { return codes.first! }
        return ExitStatus.partial.rawValue
    }

    public func lastSuccess() -> Int64? {
        guard let b = try? Sys.readFile(config.stateDir + "/last-success", limit: 64) else { return nil }
        return Int64(String(decoding: b, as: UTF8.self).trimming(" \n"))
    }

    func fetchPolicy() throws -> FetchPolicy {
        var p = FetchPolicy()
        p.connectTimeout = config.http.connectTimeout
        p.readTimeout = config.http.readTimeout
        p.retryFor = config.http.retryFor
        p.maxBytes = config.http.maxBytes
        if let ua = config.http.userAgent { p.userAgent = ua }
        p.stateDir = config.stateDir
        if let proxy = config.http.proxy {
            var s = try ProxySettings.parse(proxy)
            if let u = config.http.proxyUser { s.username = u }
            if let pw = config.http.proxyPassword { s.password = pw }
            p.proxy = s
        }
        return p
    }

    /// `held`: revisions retention keeps; nil suspends retention (the policy could not be read).
    func stageOne(
        _ type: StageConfig.ContentType, outbox: Outbox, keys: [SigningKey], trust: TrustStore,
        fetcher: Fetcher?, held: Set<UInt64>?
    ) async -> CycleReport.TypeResult {
        let t0 = Sys.monotonicSeconds()
        let log = { (msg: String) in self.logger.info("\(msg)", metadata: ["type": "\(type.name)"]) }
        var result = CycleReport.TypeResult(type: type.name, status: .unchanged, detail: "")
        do {
            let leftovers = try outbox.cleanStaging(type.name)
            if !leftovers.isEmpty {
                log("removed leftovers of an interrupted run: \(leftovers.joined(separator: ", "))")
            }
            var latest = outbox.latest(type.name)
            // A revision renamed into place whose `latest` switch was interrupted: the rename is
            // the commit point, so finish the switch (after checking the package) and go on.
            // `latest.txt` is written before the `latest` link, so a crash between the two leaves
            // them disagreeing: finish that switch too.
            if let newest = try outbox.revisions(type.name).last,
                newest > (latest ?? 0) || outbox.latestLink(type.name) != newest
            {
                _ = try outbox.manifest(type.name, newest, trust: trust, limits: config.limits)
                try outbox.setLatest(type.name, newest)
                log("completed the interrupted publication of revision \(newest)")
                latest = newest
                result.repaired = true
            }
            result.revision = latest
            let typeState = config.stateDir + "/" + type.name
            let work = typeState + "/work"
            try Sys.removeTree(work)
            try Sys.mkdirs(work)
            let source = type.source.makeSource()
            let ctx = SourceContext(
                type: type.name, stateDir: typeState, workDir: work, latestRevision: latest,
                latestFiles: { [outbox, latest, limits = config.limits] in
                    try outbox.manifest(type.name, latest!, trust: trust, limits: limits).files.map { $0 }
                },
                limits: config.limits, logger: logger, fetcher: fetcher, now: clock())
            let checked = try await source.check(ctx)
            result.mirror = ctx.served.mirror
            switch checked {
            case .unchanged(let why):
                result.detail = why
                log("unchanged: \(why)")
            case .new(let c):
                let existing = try outbox.revisions(type.name)
                let floor = max(latest ?? 0, existing.last ?? 0)
                let revision = c.revision ?? max(floor + 1, Names.defaultRevision(unixTime: clock(), sequence: 1))
                guard revision > floor else {
                    throw CourierError(
                        .rollback, "source offers revision \(revision), not above the published \(floor)")
                }
                let bases = try existing.filter { $0 < revision }.suffix(type.deltas).map {
                    (
                        revision: $0,
                        files: Array(try outbox.manifest(type.name, $0, trust: trust, limits: config.limits).files)
                    )
                }
                var opts = PackageBuilder.Options(
                    type: type.name, revision: revision, keys: keys, limits: config.limits)
                opts.lifetime = config.lifetime
                opts.compression = config.compression
                opts.deltaFormat = config.deltaFormat
                opts.provenance = c.provenance.merging([
                    "tool": "courier-stage \(CourierVersion.string)", "host": Sys.hostName(),
                ]) { a, _ in a }
                log("publishing revision \(revision) (\(c.files.count) files) from \(source.describe)")
                let p = try outbox.publish(
                    type: type.name, revision: revision, tree: c.tree, files: c.files,
                    bases: Array(bases), options: opts, trust: trust, faults: faults)
                try c.commit()
                result.status = .published
                result.previous = latest
                result.revision = revision
                result.fullBytes = p.full.size
                result.deltas = p.deltas.map { .init(base: $0.base, bytes: $0.size) }
                result.skippedDeltas = p.skippedDeltas.map { .init(base: $0.base, bytes: $0.size) }
                for d in p.skippedDeltas {
                    log(
                        "skipped the delta from \(d.base): \(human(d.size)) is not smaller than 90 % of the full package (\(human(p.full.size)))"
                    )
                }
                result.downloadedBytes = c.downloadedBytes
                result.detail = "\(c.files.count) files from \(source.describe)"
                try faults.hit("before-retention")
            }
            // Every run, not only after a publication: a run killed before its retention leaves
            // too many revisions, and the next one (with nothing new) still trims them.
            if let held {
                result.removedRevisions = try outbox.applyRetention(type.name, keep: type.keepRevisions, held: held)
            }
            if !result.removedRevisions.isEmpty {
                log("retention removed revision(s) \(result.removedRevisions.map(String.init).joined(separator: ", "))")
            }
        } catch let e as CourierError {
            result.status = .failed
            result.detail = e.description
            result.errorCode = e.code.name
            result.exitCode = ExitStatus.for(e.code).rawValue
            logger.error("\(e.description)", metadata: ["type": "\(type.name)", "code": "\(e.code)"])
        } catch {
            result.status = .failed
            result.detail = "\(error)"
            result.errorCode = "internal"
            result.exitCode = ExitStatus.failure.rawValue
            logger.error("\(error)", metadata: ["type": "\(type.name)"])
        }
        try? Sys.removeTree(config.stateDir + "/" + type.name + "/work")
        result.seconds = Sys.monotonicSeconds() - t0
        return result
    }
}
