import CourierCore
import CourierDeliver
import CourierFetch
@preconcurrency import Glibc
import Logging

/// `courier-pull mirror`: a relay's pass (docs/DELIVER.md, "Relays"). Mirrors a subset of an
/// upstream outbox — or of another relay — over HTTP into `root`, an outbox layout that any web
/// server then serves (scripts/nginx/courier-outbox.conf), with the stager's own guarantees:
///
///     per type, per wanted revision not yet here:
///       <type>/.staging-<rev>/<package>  ← download (resumable), size + SHA-256 from the index,
///                                          signature with the relay's trust; the next mirror on failure
///       rename .staging-<rev> → <rev>   (a revision appears complete or not at all)
///     then per type: latest.txt + latest (atomic), retention of the oldest
///     then index.json, rebuilt from the directories (Outbox.writeIndex), atomically, last.
///
/// A relay killed at any point leaves only dot-names half done, which web servers must not serve
/// (the nginx site refuses them); the next pass resumes or completes them.
public final class Relay {
    public let config: RelayConfig
    let logger: Logger
    let faults: FaultPoints

    public init(config: RelayConfig, logger: Logger, faults: FaultPoints = .fromEnvironment()) {
        self.config = config
        self.logger = logger
        self.faults = faults
    }

    public struct TypeLine: Sendable {
        public var type: String
        public var latest: UInt64?
        public var added: [UInt64] = []
        public var removed: [UInt64] = []
        public var skippedDeltas: [String] = []
        public var bytes: Int64 = 0
        public var error: CourierError? = nil
    }

    public struct Report: Sendable {
        public var mirror: String
        public var notModified: Bool
        public var types: [TypeLine] = []
        public var indexWritten = false
        public var seconds = 0.0

        public var exitCode: Int32 {
            let failed = types.compactMap(\.error)
            guard let f = failed.first else { return 0 }
            return types.count == 1 ? ExitStatus.for(f.code).rawValue : ExitStatus.partial.rawValue
        }

        public func summary() -> String {
            var out = ["upstream index.json from \(mirror)\(notModified ? " (not modified)" : "")"]
            for t in types {
                var s = "\(t.type): latest \(t.latest.map(String.init) ?? "-")"
                if !t.added.isEmpty {
                    s += ", added \(t.added.map(String.init).joined(separator: " ")) (\(human(t.bytes)))"
                }
                if !t.removed.isEmpty { s += ", removed \(t.removed.map(String.init).joined(separator: " "))" }
                if !t.skippedDeltas.isEmpty { s += ", deltas left out: \(t.skippedDeltas.joined(separator: " "))" }
                if let e = t.error { s += ", FAILED: \(e.message)" }
                out.append(s)
            }
            out.append("index.json \(indexWritten ? "written" : "unchanged")")
            return out.joined(separator: "\n")
        }

        /// `--json`: one line (docs/DELIVER.md, "Relays"), through `ReportJSON`.
        public func json() -> String { ReportJSON.line(self) }
    }

    public func run() async throws -> Report {
        // The trust first: a relay that cannot verify creates nothing.
        let trust = try TrustStore.load(config.trust, threshold: config.threshold)
        let lock = try RunLock(config.stateDir, program: "courier-pull mirror")
        defer { withExtendedLifetime(lock) {} }
        let t0 = Sys.monotonicSeconds()
        try Sys.mkdirs(config.root)
        // relay.toml's limits (the defaults unless set): the relay never unpacks, so these are
        // its site's clients' bounds, which each client checks again under its own inboxd.toml.
        var verify = VerifyOptions(trust: trust, limits: config.limits)
        verify.clockSkew = config.clockSkew
        let throttle = config.bwlimit.map { Throttle(bytesPerSecond: $0) }
        let fetcher = Fetcher(
            policy: try config.http.policy(
                stateDir: config.stateDir, throttle: throttle,
                program: "courier-pull"), logger: logger)
        let client = MirrorClient(fetcher: fetcher, mirrors: config.upstream, stateDir: config.stateDir, logger: logger)
        do {
            var report = try await pass(client, trust: trust, verify: verify)
            report.seconds = Sys.monotonicSeconds() - t0
            try await fetcher.shutdown()
            return report
        } catch {
            try? await fetcher.shutdown()
            throw error
        }
    }

    func pass(_ client: MirrorClient, trust: TrustStore, verify: VerifyOptions) async throws -> Report {
        let got = try await client.fetchIndex()
        var report = Report(mirror: got.shownURL, notModified: got.notModified)
        let types = config.types.isEmpty ? MirrorClient.indexTypes(got.index, logger: logger) : config.types
        let catalog = Catalog(index: got.index, only: Set(types))
        let outbox = Outbox(root: config.root)
        for t in types {
            var line = TypeLine(type: t)
            do {
                try await mirrorType(
                    t, catalog: catalog, index: got.index, outbox: outbox, client: client,
                    first: got.mirrorIndex, verify: verify, line: &line)
            } catch let e as CourierError {
                line.error = e
                logger.error("type not mirrored", metadata: ["type": "\(Escape.text(t))", "reason": "\(e.message)"])
            }
            line.latest = outbox.latest(t)
            report.types.append(line)
        }
        try faults.hit("relay-before-index")
        // Last: the index names only what the directories hold (rebuilt from them, hashes reused).
        report.indexWritten = try outbox.writeIndex(
            types: types.filter { Sys.isDirectory(outbox.typeDir($0)) },
            now: Int64(time(nil)), trust: trust, limits: verify.limits
        ).written
        return report
    }

    func mirrorType(
        _ t: String, catalog: Catalog, index: OutboxIndex, outbox: Outbox, client: MirrorClient,
        first: Int, verify: VerifyOptions, line: inout TypeLine
    ) async throws {
        guard let entry = catalog.types[t], let info = index.types[t] else {
            throw CourierError(.source, "the upstream index has no published revision of \(t)")
        }
        // The newest `revisions`, and the upstream's latest whatever its rank (a held stager).
        var wanted = Array(entry.revisions.keys.sorted().suffix(config.revisions))
        if let l = entry.latest, !wanted.contains(l) { wanted.append(l) }
        wanted.sort()
        try Sys.mkdirs(outbox.typeDir(t))
        // Leftovers: a removal cut short, staging for a revision no longer wanted. The staging of
        // a wanted revision is kept: its finished packages are checked and kept, its partial
        // download resumed.
        for n in try Sys.listDirectory(outbox.typeDir(t)) where n.hasPrefix(".") {
            if n.hasPrefix(".staging-"), let r = Names.parseRevision(String(n.dropFirst(".staging-".count))),
                wanted.contains(r)
            {
                continue
            }
            try Sys.removeTree(outbox.typeDir(t) + "/" + n)
        }
        let have = Set(try outbox.revisions(t))
        // Newest first, each revision on its own: an old revision that cannot be mirrored (a
        // corrupt package upstream) must not keep the latest from the clients. Its error is
        // reported for the type once the others are done.
        var failed: [(UInt64, CourierError)] = []
        for rev in wanted.sorted(by: >) where !have.contains(rev) {
            guard let revInfo = info.revisions.first(where: { $0.revision == rev }) else { continue }
            do {
                try await mirrorRevision(
                    t, rev, revInfo, outbox: outbox, client: client, first: first,
                    verify: verify, line: &line)
                line.added.append(rev)
            } catch let e as CourierError {
                logger.error(
                    "revision not mirrored",
                    metadata: [
                        "type": "\(Escape.text(t))", "revision": "\(rev)", "reason": "\(e.message)",
                    ])
                failed.append((rev, e))
            }
        }
        line.added.sort()
        let now = try outbox.revisions(t)
        // The upstream's latest once it is here; until then the relay's own (never a revision the
        // upstream does not point at), or the newest on a first pass.
        if let target = entry.latest.flatMap({ now.contains($0) ? $0 : nil }) ?? outbox.latest(t) ?? now.last,
            outbox.latest(t) != target || outbox.latestLink(t) != target
        {
            try outbox.setLatest(t, target)
        }
        line.removed = try outbox.applyRetention(t, keep: config.revisions)
        if let (_, e) = failed.first {
            throw CourierError(e.code, failed.map { "revision \($0.0): \($0.1.message)" }.joined(separator: "; "))
        }
    }

    /// One revision into `<type>/.staging-<rev>` and renamed into sight, or nothing visible.
    func mirrorRevision(
        _ t: String, _ rev: UInt64, _ revInfo: OutboxIndex.RevisionInfo, outbox: Outbox,
        client: MirrorClient, first: Int, verify: VerifyOptions, line: inout TypeLine
    ) async throws {
        let staging = outbox.typeDir(t) + "/.staging-\(rev)"
        try Sys.mkdirs(staging)
        let pkgs = revInfo.packages.filter { Catalog.indexEntryIsSane($0, type: t, revision: rev) }
            .sorted { ($0.kind == .full ? 0 : 1, $0.file) < ($1.kind == .full ? 0 : 1, $1.file) }
        // The packages downloaded and checked in this pass: nothing else in the staging is published.
        var checked: Set<String> = []
        for p in pkgs {
            let name = String(p.file.split(separator: "/").last!)
            do {
                let dl = try await client.download(
                    p, type: t, revision: rev, to: staging + "/" + name, first: first, verify: verify)
                if !dl.reused { line.bytes += dl.bytes }
                checked.insert(name)
                try faults.hit("relay-after-package")
            } catch let e as CourierError where p.kind == .delta && Relay.isContentError(e) {
                // A delta that no mirror serves intact (or at all) is left out: clients get the
                // full package. A transient failure (network, timeout, 5xx, a limit) is not: it
                // fails the revision, the staging stays, and the next pass resumes it.
                logger.warning(
                    "delta left out", metadata: ["package": "\(Escape.text(name))", "reason": "\(e.message)"])
                line.skippedDeltas.append(name)
            }
        }
        // Only what was checked above: the fetcher's leftovers of a failed delta, and a package
        // an earlier pass left whose entry the index no longer has, are not published.
        for n in try Sys.listDirectory(staging) where !checked.contains(n) {
            try Sys.unlink(staging + "/" + n)
        }
        Sys.fsyncDirectory(staging)
        try faults.hit("relay-before-rename")
        try Sys.rename(staging, outbox.revisionDir(t, rev))
        Sys.fsyncDirectory(outbox.typeDir(t))
        logger.info("revision mirrored", metadata: ["type": "\(Escape.text(t))", "revision": "\(rev)"])
    }

    /// What the package is (corrupt, unsigned, expired, another type's, not there), as opposed to
    /// how the transfer went: only these leave a delta out for good.
    static func isContentError(_ e: CourierError) -> Bool {
        switch e.code {
        case .integrity, .malformed, .signature, .revokedKey, .expired, .wrongType: return true
        default: return e.httpStatus == 404
        }
    }
}

/// The `--json` object of a relay's pass: keys sorted (ReportJSON); per type `added`, `removed`
/// and `bytes` always, `latest` and `error` (its message) when there is one.
extension Relay.Report: Encodable {
    enum CodingKeys: String, CodingKey { case upstream, notModified, indexWritten, seconds, exit, types }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(mirror, forKey: .upstream)
        try c.encode(notModified, forKey: .notModified)
        try c.encode(indexWritten, forKey: .indexWritten)
        try c.encode(ReportJSON.seconds(seconds), forKey: .seconds)
        try c.encode(exitCode, forKey: .exit)
        try c.encode(types, forKey: .types)
    }
}

extension Relay.TypeLine: Encodable {
    enum CodingKeys: String, CodingKey { case type, added, removed, bytes, latest, error }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encode(added, forKey: .added)
        try c.encode(removed, forKey: .removed)
        try c.encode(bytes, forKey: .bytes)
        try c.encodeIfPresent(latest, forKey: .latest)
        try c.encodeIfPresent(error?.message, forKey: .error)
    }
}
