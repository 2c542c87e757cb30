import CourierCore
import CourierDeliver
import CourierFetch
import CourierInbox
@preconcurrency import Glibc
import Logging

/// `courier-pull run`: one pass of the pull copier for one client (docs/DELIVER.md, "Pull").
///
///     index.json (conditional GET, first mirror that answers)
///     → Catalog(index:) → Pusher.decide per type, from the client's status.json and inbox
///       (the decision `select` and `push` make: pinned, held, up to date, waiting, delta, full)
///     → each chosen package: <inbox>/.<name>.part (resumed), size + SHA-256 from the index,
///       signature with the client's trust; a failure asks the next mirror
///     → rename to <inbox>/<name>, fsync of the inbox: courier-inboxd applies it as any copy.
///
/// Nothing of the client's state is written here: status.json stays the daemon's.
public final class Puller {
    public let config: PullConfig
    public let inbox: InboxConfig
    let logger: Logger
    let faults: FaultPoints

    public init(config: PullConfig, inbox: InboxConfig, logger: Logger, faults: FaultPoints = .fromEnvironment()) {
        self.config = config
        self.inbox = inbox
        self.logger = logger
        self.faults = faults
    }

    public var stateDir: String { config.stateDir ?? inbox.stateDir + "/pull" }

    /// The types this client wants: `types` in pull.toml, else inboxd.toml's; with
    /// `accept_unknown_types` and none declared, whatever the index lists.
    func wantedTypes(_ index: OutboxIndex, only: [String]) -> [String] {
        var types = config.types.isEmpty ? inbox.types.keys.sorted() : config.types
        if types.isEmpty && inbox.acceptUnknownTypes { types = MirrorClient.indexTypes(index, logger: logger) }
        if !only.isEmpty { types = types.filter(only.contains) }
        return types
    }

    /// `force`: send a revision the client refused before (its status.json's `refused`), as
    /// `courier-deliver push --force` does; otherwise such a revision is skipped with code `refused`.
    public func run(only: [String] = [], splay: Bool = true, force: Bool = false) async throws -> PullReport {
        // The trust and the inbox first: a client that cannot verify or receive creates nothing.
        let trust = try TrustStore.load(inbox.trust, threshold: inbox.threshold)
        guard Sys.isDirectory(inbox.inbox) else {
            throw CourierError(.io, "\(inbox.inbox): the inbox (from \(inbox.path)) is not a directory")
        }
        // The splay comes before the lock, as courier-stage's: a timer's pass asleep in its splay
        // must not make a pass run by hand meanwhile fail with "another run holds the lock".
        if splay && config.splay > 0 {
            let wait = Double.random(in: 0...Double(config.splay))
            logger.info("splay: waiting \(Int(wait)) s before contacting a mirror")
            try await Task.sleep(for: .seconds(wait))
        }
        let lock = try RunLock(stateDir, program: "courier-pull")
        defer { withExtendedLifetime(lock) {} }
        var verify = VerifyOptions(trust: trust, limits: inbox.limits)
        verify.clockSkew = inbox.clockSkew
        let throttle = config.bwlimit.map { Throttle(bytesPerSecond: $0) }
        let fetcher = Fetcher(
            policy: try config.http.policy(stateDir: stateDir, throttle: throttle, program: "courier-pull"),
            logger: logger)
        let client = MirrorClient(fetcher: fetcher, mirrors: config.mirrors, stateDir: stateDir, logger: logger)
        do {
            let report = try await pass(client, verify: verify, only: only, force: force)
            try await fetcher.shutdown()
            return report
        } catch {
            try? await fetcher.shutdown()
            throw error
        }
    }

    func pass(_ client: MirrorClient, verify: VerifyOptions, only: [String], force: Bool) async throws -> PullReport {
        let t0 = Sys.monotonicSeconds()
        let got = try await client.fetchIndex()
        logger.info(
            got.notModified ? "index.json not modified" : "index.json downloaded",
            metadata: ["mirror": "\(got.shownURL)"])
        var report = PullReport(mirror: got.shownURL, notModified: got.notModified)
        let types = wantedTypes(got.index, only: only)
        let catalog = Catalog(index: got.index, only: Set(types))
        let infos = Catalog.packages(of: got.index)
        let statusPath = inbox.stateDir + "/status.json"
        let waiting = try Pusher.waiting(in: inbox.inbox)
        let decisions = Pusher.decide(
            types.map { ($0, RevisionSpec.latest) }, catalog: catalog,
            statusPath: statusPath, waiting: waiting, force: force)
        var chosen: Set<String> = []
        for d in decisions {
            var line = PullReport.TypeLine(
                type: d.type, revision: d.revision, action: d.action.rawValue, code: d.code, reason: d.reason)
            guard let rel = d.package, let rev = d.revision else {
                // unknown-type, not-in-outbox: the mirror has nothing to offer for this type.
                if d.action == .error { line.errorCode = .source }
                report.types.append(line)
                continue
            }
            // The delta first; if no mirror serves one that passes, the full package.
            var attempts = [rel]
            if d.action == .delta, let full = catalog.types[d.type]?.revisions[rev]?.full { attempts.append(full) }
            var errors: [String] = []
            for (n, file) in attempts.enumerated() {
                guard let info = infos[file] else { continue }
                let name = String(file.split(separator: "/").last!)
                let part = inbox.inbox + "/." + name + ".part"
                chosen.insert(part)
                do {
                    let dl = try await client.download(
                        info, type: d.type, revision: rev, to: part, first: got.mirrorIndex, verify: verify)
                    try faults.hit("pull-before-rename")
                    try Sys.rename(part, inbox.inbox + "/" + name)
                    Sys.fsyncDirectory(inbox.inbox)
                    line.action = info.kind == .full ? "full" : "delta"
                    if n > 0 { line.code = "delta-failed" }
                    line.package = name
                    line.mirror = dl.mirror
                    line.bytes = dl.bytes
                    line.seconds = dl.seconds
                    line.transferSeconds = dl.transferSeconds
                    line.resumed = dl.resumed
                    line.reason =
                        n > 0
                        ? "the delta failed (\(errors.joined(separator: "; "))); the full package instead" : d.reason
                    errors = []
                    logger.info(
                        "delivered into the inbox",
                        metadata: [
                            "type": "\(d.type)", "package": "\(name)", "bytes": "\(dl.bytes)", "mirror": "\(dl.mirror)",
                        ])
                    break
                } catch let e as CourierError {
                    errors.append(e.message)
                    line.errorCode = e.code
                    logger.error(
                        "package not delivered",
                        metadata: ["type": "\(d.type)", "package": "\(name)", "reason": "\(e.message)"])
                }
            }
            if !errors.isEmpty {
                line.action = "error"
                line.code = "download"
                line.reason = errors.joined(separator: "; ")
            }
            report.types.append(line)
        }
        cleanLeftovers(keeping: chosen)
        report.seconds = Sys.monotonicSeconds() - t0
        return report
    }

    /// Our own temporaries for packages this pass did not want (an older revision's, one the
    /// daemon has since applied): `.<name>.cpkg.part` and the fetcher's `.partial`/`.partial.json`,
    /// and the `.tmp-<pid>` temporaries of those sidecars.
    func cleanLeftovers(keeping: Set<String>) {
        for n in (try? Sys.listDirectory(inbox.inbox)) ?? [] where n.hasPrefix(".") {
            // The temporary of a `.partial.json` sidecar (Sys.writeFileAtomically) that a killed
            // run left: no run is writing it now (we hold the lock), so it is garbage whoever's.
            let sidecarTmp = n.split(separator: ".cpkg.part.partial.json.tmp-", omittingEmptySubsequences: false)
            if n.hasPrefix(".."), sidecarTmp.count == 2, let pid = sidecarTmp.last, !pid.isEmpty,
                pid.allSatisfy({ $0.isASCII && $0.isNumber })
            {
                try? Sys.unlink(inbox.inbox + "/" + n)
                continue
            }
            let stem: Substring
            if n.hasSuffix(".cpkg.part") {
                stem = Substring(n)
            } else if n.hasSuffix(".cpkg.part.partial") {
                stem = n.dropLast(".partial".count)
            } else if n.hasSuffix(".cpkg.part.partial.json") {
                stem = n.dropLast(".partial.json".count)
            } else {
                continue
            }
            if !keeping.contains(inbox.inbox + "/" + stem) { try? Sys.unlink(inbox.inbox + "/" + n) }
        }
    }
}

/// What one pull did, per type: for the log, the terminal and `--json`.
public struct PullReport: Sendable {
    public struct TypeLine: Sendable {
        public var type: String
        public var revision: UInt64?
        /// full, delta, none or error.
        public var action: String
        public var code: String
        public var reason: String
        public var package: String? = nil
        public var mirror: String? = nil
        public var bytes: Int64? = nil
        public var seconds: Double? = nil
        public var transferSeconds: Double? = nil
        public var resumed = false
        public var errorCode: CourierError.Code? = nil
    }
    public var mirror: String
    public var notModified: Bool
    public var types: [TypeLine] = []
    public var seconds = 0.0

    /// 0 when every type is delivered, up to date or rightly left alone; a type's own code when
    /// the only type failed; 16 ("done with errors") when some of several failed.
    public var exitCode: Int32 {
        let failed = types.filter { $0.action == "error" }
        guard let f = failed.first else { return 0 }
        if types.count == 1 { return ExitStatus.for(f.errorCode ?? .download).rawValue }
        return ExitStatus.partial.rawValue
    }

    public func summary() -> String {
        var out = ["index.json from \(mirror)\(notModified ? " (not modified)" : "")"]
        for t in types {
            var s = "\(t.type) \(t.revision.map(String.init) ?? "-") \(t.action) (\(t.code))"
            if let p = t.package, let b = t.bytes {
                s +=
                    ": \(p), \(human(b)) from \(t.mirror ?? "-") in \(String(format1: t.seconds ?? 0)) s\(t.resumed ? " (resumed)" : "")"
            } else {
                s += ": \(Escape.text(t.reason))"
            }
            out.append(s)
        }
        return out.joined(separator: "\n")
    }

    /// `--json`: one line (docs/DELIVER.md, "courier-pull run --json"), through `ReportJSON`.
    public func json() -> String { ReportJSON.line(self) }
}

/// The `--json` object: keys sorted (ReportJSON), an absent value's key left out — as `resumed`
/// when false — and `exit`, the pass's exit code, alongside.
extension PullReport: Encodable {
    enum CodingKeys: String, CodingKey { case mirror, notModified, seconds, exit, types }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(mirror, forKey: .mirror)
        try c.encode(notModified, forKey: .notModified)
        try c.encode(ReportJSON.seconds(seconds), forKey: .seconds)
        try c.encode(exitCode, forKey: .exit)
        try c.encode(types, forKey: .types)
    }
}

extension PullReport.TypeLine: Encodable {
    enum CodingKeys: String, CodingKey {
        case type, action, code, reason, revision, package, mirror, bytes, seconds, transferSeconds, resumed
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encode(action, forKey: .action)
        try c.encode(code, forKey: .code)
        try c.encode(reason, forKey: .reason)
        try c.encodeIfPresent(revision, forKey: .revision)
        try c.encodeIfPresent(package, forKey: .package)
        try c.encodeIfPresent(mirror, forKey: .mirror)
        try c.encodeIfPresent(bytes, forKey: .bytes)
        try c.encodeIfPresent(seconds.map(ReportJSON.seconds), forKey: .seconds)
        try c.encodeIfPresent(transferSeconds.map(ReportJSON.seconds), forKey: .transferSeconds)
        if resumed { try c.encode(true, forKey: .resumed) }
    }
}
