import CourierCore
import FoundationEssentials

/// How the stager talks HTTP: timeouts, redirects, the size cap, the retry window, the proxy.
/// The defaults suit a cron job that nobody watches: generous enough to ride out a short outage,
/// bounded everywhere so that a hostile or broken server cannot hold a run forever (TUF's
/// slow-retrieval and endless-data attacks).
public struct FetchPolicy: Sendable {
    /// Seconds to establish a TCP connection (to the server, or to the proxy).
    public var connectTimeout: Int64 = 10
    /// Seconds without a single byte — while waiting for the response head or in the middle of the
    /// body — before the attempt is given up. An idle timeout, not a total one: a large download
    /// on a slow but steady line is fine; a server that stalls is not.
    public var readTimeout: Int64 = 30
    /// Redirects followed per request; cycles are refused outright.
    public var maxRedirects = 5
    /// Largest body accepted, in bytes. A server that sends more (or announces more) is cut off
    /// with a `.limit` error and the partial file is removed.
    public var maxBytes: Int64 = 2 << 30
    /// Retry window in seconds (the endpoint manager's "retry interval"): transient failures — 5xx,
    /// connection errors, timeouts, truncated bodies — are retried with exponential backoff and
    /// jitter until the next wait would end past the window. 0 means a single attempt.
    public var retryFor: Int64 = 300
    /// First backoff and its ceiling, in seconds. Each retry doubles the backoff; the actual wait is
    /// a random point in its upper half, so that many stagers behind one outage do not return in step.
    public var initialBackoff: Double = 1
    public var maxBackoff: Double = 60
    /// Sent on every request. Programs set `courier-stage/<version>`.
    public var userAgent = FetchPolicy.defaultUserAgent
    /// An explicit proxy (from the configuration) for every URL; nil means the environment decides
    /// (`http_proxy`, `https_proxy`, `no_proxy`). An explicit proxy still honours `no_proxy`.
    public var proxy: ProxySettings? = nil
    /// The environment the proxy variables are read from; the process's by default, a dictionary in tests.
    public var environment: [String: String] = ProcessInfo.processInfo.environment
    /// Directory where `cooldown.json` (cool-downs), `mirrors.json` (failed mirrors) and
    /// `contact.json` (last contact per host, for `minInterval`) are kept across runs; nil keeps none.
    public var stateDir: String? = nil

    /// Extra request headers (an API key, a licence token). Secrets: they are sent, never logged,
    /// never quoted in a message. On a redirect they go along, as async-http-client does;
    /// only `Authorization` is dropped when the redirect leaves the origin.
    public var headers: [String: String] = [:]
    /// HTTP basic authentication to the upstream server (not the proxy). A secret like `headers`.
    public var basicAuth: BasicAuth? = nil
    /// PEM certificates (a file, and/or a directory of `*.pem`/`*.crt` files) that are trusted
    /// for https://, in addition to the system store or instead of it (`caMode`).
    public var caFile: String? = nil
    public var caDir: String? = nil
    public var caMode: CAMode = .add
    /// Download speed cap in bytes per second for `fetch` (nil: as fast as the line allows).
    public var maxRate: Int64? = nil
    /// A bandwidth cap shared by every `fetch` of the run (`courier-pull`'s `bwlimit`): one token
    /// bucket, so the index, packages and retries together stay under it. Nil: none.
    public var throttle: CourierCore.Throttle? = nil
    /// Seconds that must pass after a run contacted a host before another run's `fetch` may
    /// contact it again (freshclam's rule for its mirrors); 0 disables. Contacts made by this run
    /// (after `runStarted`) do not count, so one run may fetch a file and its checksum.
    public var minInterval: Int64 = 0
    /// When this run started (Unix seconds): contacts before it are "earlier runs'" for `minInterval`.
    public var runStarted: Int64 = CoolDownStore.now()
    /// How long a host that answered 403 Forbidden is not asked again (default one hour).
    public var forbiddenCoolDown: Int64 = 3600
    /// The first cool-down for a host that answered 429/503 without `Retry-After` until the retry
    /// window ran out; it doubles with each consecutive time, up to `maxBusyCoolDown`.
    public var busyCoolDown: Int64 = 300
    public var maxBusyCoolDown: Int64 = 6 * 3600
    /// How long a mirror that failed is tried after the healthy ones (it is still tried, last).
    public var mirrorDemotion: Int64 = 3600

    /// `courier-stage/<version>`: `courier-stage run` sent `courier-stage` and `fetch` the
    /// versioned form until #17.5; a mirror's log now tells versions apart either way.
    public static let defaultUserAgent = CourierVersion.userAgent("courier-stage")

    public init() {}

    /// The proxy for `url` under this policy: the explicit one unless `no_proxy` bypasses the
    /// host, else the environment's.
    func proxy(for url: FetchURL) throws -> ProxySettings? {
        if let proxy {
            let noProxy = ["no_proxy", "NO_PROXY"].lazy.compactMap { environment[$0] }.first { !$0.isEmpty } ?? ""
            return ProxySettings.bypasses(host: url.host, port: url.port, noProxy: noProxy) ? nil : proxy
        }
        guard let (name, value) = ProxySettings.environmentValue(for: url, env: environment) else { return nil }
        do {
            return try ProxySettings.parse(value)
        } catch let e as CourierError {
            throw CourierError(e.code, "environment variable \(name): \(e.message)")
        }
    }
}

/// `user`/`password` for HTTP basic authentication. `description` never shows the password.
public struct BasicAuth: Sendable, Hashable, CustomStringConvertible {
    public var user: String
    public var password: String
    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }
    public var description: String { "\(user):***" }
    /// The `Authorization` header value.
    var headerValue: String { "Basic " + Data("\(user):\(password)".utf8).base64EncodedString() }
}

/// Whether `caFile`/`caDir` add to the system's trust store or replace it.
public enum CAMode: String, Sendable, CaseIterable {
    case add, replace
}

/// What makes a download conditional: the `ETag` and `Last-Modified` the server sent last time.
/// Sources keep them with their state and hand them back on the next run.
public struct Validators: Codable, Sendable, Equatable {
    public var etag: String?
    public var lastModified: String?

    public init(etag: String? = nil, lastModified: String? = nil) {
        self.etag = etag
        self.lastModified = lastModified
    }

    /// True when there is anything to send as a condition.
    public var isEmpty: Bool { etag == nil && lastModified == nil }

    /// The value for `If-Range`: a strong ETag, else the Last-Modified date. A weak ETag (`W/"…"`)
    /// cannot guarantee byte-identical content, so it never allows a resume (RFC 9110 §13.1.5).
    var ifRange: String? {
        if let etag, !etag.hasPrefix("W/") { return etag }
        return lastModified
    }
}

/// The result of `Fetcher.fetch`.
public enum FetchOutcome: Sendable, Equatable {
    /// The server answered 304: the file the caller holds (per its validators) is current.
    case notModified
    /// A new body is at the destination path. `bytes` is the file's full size; `resumed` says an
    /// earlier partial download was continued with a `Range` request rather than restarted.
    case downloaded(bytes: Int64, validators: Validators, resumed: Bool)
}
