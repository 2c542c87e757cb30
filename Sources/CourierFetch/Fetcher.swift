import AsyncHTTPClient
import CourierCore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

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
    private let clients = Mutex<(map: [ProxySettings?: HTTPClient], closed: Bool)>(([:], false))
    /// Cool-downs seen by this fetcher, also when the policy keeps no state directory.
    private let coolDowns = Mutex<[String: CoolDownStore.Entry]>([:])
    private let store: CoolDownStore

    public init(policy: FetchPolicy, logger: Logger) {
        self.policy = policy
        self.logger = logger
        self.store = CoolDownStore(stateDir: policy.stateDir)
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
        let u = try FetchURL(url)
        try checkCoolDown(u)
        let proxy = try policy.proxy(for: u)
        let client = try client(for: proxy)
        let partial = PartialDownload(path: path)
        return try await withRetries(u, proxy: proxy) {
            try await self.attemptFile(u, into: partial, validators: validators, client: client)
        }
    }

    /// Small bodies (checksum files, signatures) into memory, bounded by `limit`.
    public func fetchSmall(_ url: String, limit: Int) async throws -> [UInt8] {
        let u = try FetchURL(url)
        try checkCoolDown(u)
        let proxy = try policy.proxy(for: u)
        let client = try client(for: proxy)
        return try await withRetries(u, proxy: proxy) {
            try await self.attemptSmall(u, limit: Int64(limit), client: client)
        }
    }

    // MARK: - Clients

    private func client(for proxy: ProxySettings?) throws -> HTTPClient {
        try clients.withLock { state in
            if state.closed { throw CourierError(.network, "the fetcher has been shut down") }
            if let c = state.map[proxy] { return c }
            var config = HTTPClient.Configuration()
            config.timeout = .init(connect: .seconds(policy.connectTimeout), read: .seconds(policy.readTimeout))
            config.redirectConfiguration = policy.maxRedirects > 0
                ? .follow(max: policy.maxRedirects, allowCycles: false) : .disallow
            // The retry window is ours: the pool must report a refused connection at once
            // instead of quietly retrying until the connect timeout.
            config.connectionPool.retryConnectionEstablishment = false
            config.decompression = .disabled
            if let p = proxy {
                config.proxy = .server(host: p.host, port: p.port,
                                       authorization: p.username.map { .basic(username: $0, password: p.password ?? "") })
            }
            let c = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config,
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

    func request(_ url: FetchURL) -> HTTPClientRequest {
        var r = HTTPClientRequest(url: url.string)
        r.method = .GET
        r.headers.add(name: "User-Agent", value: policy.userAgent)
        return r
    }

    // MARK: - Retry window and cool-down

    /// Runs `attempt` until it succeeds, fails for good, or the retry window is used up.
    private func withRetries<T: Sendable>(_ url: FetchURL, proxy: ProxySettings?,
                                          _ attempt: () async throws -> T) async throws -> T {
        let clock = ContinuousClock()
        let start = clock.now
        var n = 0
        var log = logger
        log[metadataKey: "url"] = "\(url.redacted)"
        if let proxy { log[metadataKey: "proxy"] = "\(proxy)" }
        while true {
            n += 1
            let failure: FetchFailure
            do {
                return try await attempt()
            } catch {
                failure = await self.failure(for: error, url: url, proxy: proxy)
            }
            let elapsed = Double((clock.now - start).components.seconds)
                + Double((clock.now - start).components.attoseconds) / 1e18
            let remaining = Double(policy.retryFor) - elapsed
            switch failure.kind {
            case .fatal:
                throw failure.error
            case .retryAfter(let seconds, let status):
                // Never faster than our own backoff, so `Retry-After: 0` cannot make a busy loop.
                let wait = max(Double(seconds), backoff(n))
                if wait <= remaining {
                    log.warning("server asked to retry later", metadata: [
                        "status": "\(status)", "retry-after": "\(seconds)s", "attempt": "\(n)"])
                    try await Task.sleep(for: .seconds(wait))
                    continue
                }
                let entry = CoolDownStore.Entry(until: CoolDownStore.now() + seconds, retryAfter: seconds, status: status)
                recordCoolDown(entry, for: url.authority, log: log)
                throw CourierError(.download, CoolDownStore.message(url: url.redacted, authority: url.authority, entry: entry))
            case .transient:
                let wait = backoff(n)
                guard wait <= remaining else {
                    if n == 1 { throw failure.error }
                    throw CourierError(failure.error.code, failure.error.message
                        + " (gave up after \(n) attempts in \(Int(elapsed.rounded()))s; retry window \(policy.retryFor)s)")
                }
                log.warning("attempt failed; retrying", metadata: [
                    "attempt": "\(n)", "reason": "\(failure.error.message)",
                    "wait": "\(Int((wait * 1000).rounded()))ms"])
                try await Task.sleep(for: .seconds(wait))
            }
        }
    }

    /// The mapped failure; for a `CONNECT` the proxy refused with a status async-http-client does
    /// not report, the status read by `ProxyProbe`, which decides between a wrong password (no
    /// retry) and a proxy that cannot reach the server for now (retry).
    private func failure(for error: any Error, url: FetchURL, proxy: ProxySettings?) async -> FetchFailure {
        let mapped = FailureMapper.map(error, url: url, proxy: proxy, policy: policy)
        guard let proxy, let e = error as? HTTPClientError, e == .invalidProxyResponse,
              let status = await ProxyProbe.connectStatus(proxy: proxy, target: url.hostPort,
                                                          timeout: max(policy.connectTimeout, policy.readTimeout))
        else { return mapped }
        return FailureMapper.proxyStatus(status, url: url, proxy: proxy)
    }

    /// Exponential backoff with jitter: the n-th wait is a random point in the upper half of
    /// `initialBackoff * 2^(n-1)`, capped at `maxBackoff`.
    private func backoff(_ attempt: Int) -> Double {
        let base = min(policy.maxBackoff, policy.initialBackoff * Double(1 << min(attempt - 1, 30)))
        return base <= 0 ? 0 : Double.random(in: (base / 2)...base)
    }

    /// Fails at once, without touching the network, while `url`'s host is in cool-down.
    private func checkCoolDown(_ url: FetchURL) throws {
        let now = CoolDownStore.now()
        let entry = coolDowns.withLock { map in map[url.authority].flatMap { $0.until > now ? $0 : nil } }
            ?? store.active(for: url.authority, now: now)
        guard let entry else { return }
        logger.warning("host is cooling down; not contacted", metadata: [
            "url": "\(url.redacted)", "state": "\(store.path ?? "(memory)")"])
        throw CourierError(.download, CoolDownStore.message(url: url.redacted, authority: url.authority, entry: entry))
    }

    private func recordCoolDown(_ entry: CoolDownStore.Entry, for authority: String, log: Logger) {
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
