import AsyncHTTPClient
import CourierCore
import Logging
import NIOCore
import NIOHTTP1

/// The stager's HTTP client: conditional GETs into files with resume, small bodies into memory,
/// and one behaviour around both — a retry window with backoff, `Retry-After` and persisted
/// cool-downs, bounded redirects, an idle read timeout, a size cap, a proxy from configuration
/// or environment with credentials that never reach a log or a message.
///
/// One `HTTPClient` (on the process-wide NIO event loops) per distinct proxy, created on first use:
/// async-http-client fixes the proxy per client, and `no_proxy` may send some hosts direct.
/// Call `shutdown()` once done.
public final class Fetcher: Sendable {
    public let policy: FetchPolicy
    let logger: Logger
    private let clients = Locked<(map: [ProxySettings?: HTTPClient], closed: Bool)>(([:], false))
    /// Cool-downs seen by this fetcher, also when the policy keeps no state directory.
    private let coolDowns = Locked<[String: CoolDownStore.Entry]>([:])
    let store: CoolDownStore
    let mirrorStore: MirrorStore
    let contacts: ContactStore

    public init(policy: FetchPolicy, logger: Logger) {
        self.policy = policy
        self.logger = logger
        self.store = CoolDownStore(stateDir: policy.stateDir)
        self.mirrorStore = MirrorStore(stateDir: policy.stateDir)
        self.contacts = ContactStore(stateDir: policy.stateDir)
    }

    public func shutdown() async throws {
        let all = clients.withLock { state -> [HTTPClient] in
            state.closed = true
            defer { state.map = [:] }
            return Array(state.map.values)
        }
        for c in all { try await c.shutdown() }
    }

    // MARK: - Public operations

    /// Conditional GET (If-None-Match / If-Modified-Since from `validators`) into `path`: the body
    /// goes to `path + ".partial"` (fsync), then rename to `path`. If a `.partial` exists from an
    /// interrupted earlier run (a sidecar `path + ".partial.json"` records url + etag/last-modified),
    /// resume with `Range: bytes=N-` and `If-Range`; a 206 appends, a 200 restarts from zero.
    /// Content-Length mismatch => truncated => retry/resume within the window. Never more than maxBytes.
    public func fetch(_ url: String, to path: String, validators: Validators?) async throws -> FetchOutcome {
        try await fetch(mirrors: [url], to: path, validators: { _ in validators }).value
    }

    /// `fetch` from the first mirror that serves (docs/STAGE.md, "Mirrors"). `validators` is asked
    /// per mirror, with the URL as `Served.mirror` names it (without credentials): validators are
    /// one server's names for one version of the file, so a 304 from mirror B to mirror A's ETag
    /// would claim something B never said. Likewise a partial download is resumed only from the
    /// mirror it came from (its sidecar names the URL); another mirror starts from zero.
    ///
    /// Subject to `minInterval`: a mirror whose host an earlier run contacted too recently is not
    /// contacted; when that leaves none, the error has the code `.minInterval`.
    ///
    /// `maxBytes`, when given, is this file's own cap (an index, a package of known size) in place
    /// of `policy.maxBytes` (capped by it): a body past it is stopped, not written to the end.
    public func fetch(
        mirrors: [String], to path: String, maxBytes: Int64? = nil,
        validators: (String) -> Validators?
    ) async throws -> Served<FetchOutcome> {
        let partial = PartialDownload(path: path)
        let cap = min(maxBytes ?? policy.maxBytes, policy.maxBytes)
        return try await withMirrors(mirrors, gateMinInterval: true) { u, client in
            try await self.attemptFile(
                u, into: partial, validators: validators(u.redacted), maxBytes: cap, client: client)
        }
    }

    /// Small bodies (checksum files, signatures) into memory, bounded by `limit`.
    public func fetchSmall(_ url: String, limit: Int) async throws -> [UInt8] {
        try await fetchSmall(mirrors: [url], limit: limit).value
    }

    /// `fetchSmall` from the first mirror that serves.
    public func fetchSmall(mirrors: [String], limit: Int) async throws -> Served<[UInt8]> {
        try await withMirrors(mirrors, gateMinInterval: false) { u, client in
            try await self.attemptSmall(u, limit: Int64(limit), client: client)
        }
    }

    /// A copy of this fetcher with a changed policy (a content type's own headers, credentials,
    /// CA, rate): its own HTTP clients, the same state directory. Shut it down when done.
    public func with(_ change: (inout FetchPolicy) -> Void) -> Fetcher {
        var p = policy
        change(&p)
        return Fetcher(policy: p, logger: logger)
    }

    // MARK: - Clients

    func client(for proxy: ProxySettings?) throws -> HTTPClient {
        try clients.withLock { state in
            if state.closed { throw CourierError(.network, "the fetcher has been shut down") }
            if let c = state.map[proxy] { return c }
            var config = HTTPClient.Configuration()
            config.timeout = .init(connect: .seconds(policy.connectTimeout), read: .seconds(policy.readTimeout))
            config.redirectConfiguration =
                policy.maxRedirects > 0
                ? .follow(max: policy.maxRedirects, allowCycles: false) : .disallow
            // The retry window is ours: the pool must report a refused connection at once
            // instead of quietly retrying until the connect timeout.
            config.connectionPool.retryConnectionEstablishment = false
            config.decompression = .disabled
            if let tls = try TrustConfig.tlsConfiguration(policy) { config.tlsConfiguration = tls }
            if let p = proxy {
                config.proxy = .server(
                    host: p.host, port: p.port,
                    authorization: p.username.map { .basic(username: $0, password: p.password ?? "") })
            }
            let c = HTTPClient(
                eventLoopGroupProvider: .singleton, configuration: config,
                backgroundActivityLogger: logger)
            state.map[proxy] = c
            return c
        }
    }

    /// How long the response head may take, all redirects included. The idle read timeout is the
    /// real guard; this is the backstop async-http-client asks for, and it ends when the head is
    /// in — the body is never cut by it.
    var headTimeout: TimeAmount {
        .seconds((policy.connectTimeout + policy.readTimeout) * Int64(policy.maxRedirects + 1))
    }

    // MARK: - Retry window and cool-down

    /// The mapped failure; for a `CONNECT` the proxy refused with a status async-http-client does
    /// not report, the status read by `ProxyProbe`, which decides between a wrong password (no
    /// retry) and a proxy that cannot reach the server for now (retry).
    func failure(for error: any Error, url: FetchURL, proxy: ProxySettings?) async -> FetchFailure {
        let mapped = FailureMapper.map(error, url: url, proxy: proxy, policy: policy)
        guard let proxy, let e = error as? HTTPClientError, e == .invalidProxyResponse,
            let status = await ProxyProbe.connectStatus(
                proxy: proxy, target: url.hostPort,
                timeout: max(policy.connectTimeout, policy.readTimeout))
        else { return mapped }
        return FailureMapper.proxyStatus(status, url: url, proxy: proxy)
    }

    /// Exponential backoff with jitter: the n-th wait is a random point in the upper half of
    /// `initialBackoff * 2^(n-1)`, capped at `maxBackoff`.
    func backoff(_ attempt: Int) -> Double {
        let base = min(policy.maxBackoff, policy.initialBackoff * Double(1 << min(attempt - 1, 30)))
        return base <= 0 ? 0 : Double.random(in: (base / 2)...base)
    }

    /// The cool-down in force for `url`'s host, if any (this fetcher's, else the state file's).
    func activeCoolDown(_ url: FetchURL) -> CoolDownStore.Entry? {
        let now = CoolDownStore.now()
        return coolDowns.withLock { map in map[url.authority].flatMap { $0.until > now ? $0 : nil } }
            ?? store.active(for: url.authority, now: now)
    }

    func recordCoolDown(_ entry: CoolDownStore.Entry, for authority: String, log: Logger) {
        coolDowns.withLock { map in
            map[authority] = entry
            // Under the same lock: two failing fetches must not lose each other's entry.
            do {
                try store.record(entry, for: authority)
            } catch {
                // The cool-down still holds for this run; the next run may ask once too early.
                log.error("cannot persist the cool-down", metadata: ["error": "\(error)"])
            }
        }
    }
}
