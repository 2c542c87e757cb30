import AsyncHTTPClient
import CourierCore
@preconcurrency import Glibc
import NIOCore

/// Why one attempt failed, and what the retry loop may do about it. Only `error` ever leaves the
/// fetcher; `kind` is the retry decision, made where the failure is best understood.
struct FetchFailure: Error {
    enum Kind: Equatable {
        /// Retrying cannot help (404, a redirect loop, the size cap, a full disk, bad proxy credentials).
        case fatal
        /// Worth another attempt after a backoff (5xx, connection refused, timeout, truncation).
        case transient
        /// The server said when to come back (`Retry-After` on 429/503), in seconds.
        case retryAfter(seconds: Int64, status: Int)
    }

    var error: CourierError
    var kind: Kind

    static func fatal(_ code: CourierError.Code, _ message: String, cause: (any Error & Sendable)? = nil)
        -> FetchFailure
    {
        FetchFailure(error: CourierError(code, message, cause: cause), kind: .fatal)
    }

    static func transient(_ code: CourierError.Code, _ message: String) -> FetchFailure {
        FetchFailure(error: CourierError(code, message), kind: .transient)
    }

    /// True when the message is about a timeout while waiting for bytes.
    var isReadTimeout = false
    /// The HTTP status the server answered, when the failure is one (403 and 429/503 start cool-downs).
    var status: Int? = nil
}

/// The HTTP status of a response the fetcher refused, as the `cause` of the `CourierError` it
/// throws for a final (non-retried) status such as 404 or 403. `CourierError.httpStatus` reads it.
public struct HTTPStatus: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: Int
    public init(code: Int) { self.code = code }
    public var description: String { "status \(code)" }
}

extension CourierError {
    /// The HTTP status the server answered when this error is a refused response (404, 403, …)
    /// from `Fetcher`; nil for anything else (network, size cap, retried statuses).
    public var httpStatus: Int? { (cause as? HTTPStatus)?.code }
}

/// Turns what async-http-client and NIO throw into Courier's vocabulary: a code (`.network` for
/// the path to the server, `.proxy` when the proxy is the one that failed, `.download` for what
/// the server said) and a message that names the URL — always without credentials — and the
/// reason in words an operator can act on. The underlying error is deliberately not kept as the
/// `cause`: NIO's descriptions can quote addresses and configuration, and the proxy's
/// credentials must not reach a log by any path.
enum FailureMapper {
    static func map(_ error: any Error, url: FetchURL, proxy: ProxySettings?, policy: FetchPolicy) -> FetchFailure {
        if let f = error as? FetchFailure { return f }
        if let e = error as? CourierError { return FetchFailure(error: e, kind: .fatal) }
        if error is CancellationError { return .fatal(.network, "\(url.redacted): cancelled") }
        let u = url.redacted
        if let e = error as? HTTPClientError {
            switch e {
            case .readTimeout, .deadlineExceeded:
                var f = FetchFailure.transient(.network, "\(u): timed out after \(policy.readTimeout)s without data")
                f.isReadTimeout = true
                return f
            case .connectTimeout:
                if let proxy {
                    return .transient(
                        .proxy, "\(u): connecting to proxy \(proxy) timed out after \(policy.connectTimeout)s")
                }
                return .transient(.network, "\(u): connect timed out after \(policy.connectTimeout)s")
            case .httpProxyHandshakeTimeout:
                return .transient(
                    .proxy, "\(u): proxy \(proxy?.description ?? "?") did not answer the CONNECT request in time")
            case .proxyAuthenticationRequired:
                let how =
                    proxy?.username == nil
                    ? "no credentials configured" : "the proxy refused the configured credentials"
                return .fatal(
                    .proxy, "\(u): proxy authentication required (407) by proxy \(proxy?.description ?? "?"): \(how)")
            case .invalidProxyResponse:
                return .transient(
                    .proxy,
                    "\(u): proxy \(proxy?.description ?? "?") refused to connect to \(url.authority) (CONNECT failed)")
            case .redirectLimitReached:
                return .fatal(.download, "\(u): more than \(policy.maxRedirects) redirects")
            case .redirectCycleDetected:
                return .fatal(.download, "\(u): redirect loop (a redirect leads back to a URL already visited)")
            case .remoteConnectionClosed:
                return .transient(.network, "\(u): the server closed the connection before answering")
            case .tlsHandshakeTimeout:
                return .transient(.network, "\(u): TLS handshake timed out")
            case .cancelled:
                return .fatal(.network, "\(u): cancelled")
            default:
                return .transient(.network, "\(u): \(e)")
            }
        }
        if let c = error as? ChannelError, case .connectTimeout = c {
            if let proxy {
                return .transient(
                    .proxy, "\(u): connecting to proxy \(proxy) timed out after \(policy.connectTimeout)s")
            }
            return .transient(.network, "\(u): connect timed out after \(policy.connectTimeout)s")
        }
        let typeName = String(reflecting: type(of: error))
        if typeName.contains("NIOSSL") || typeName.contains("BoringSSL") {
            // Certificate and protocol failures do not heal by themselves.
            return .fatal(.download, "\(u): TLS failed: \(error)")
        }
        if let code = errnoCode(in: error) {
            let why: String
            switch code {
            case ECONNREFUSED: why = "connection refused"
            case ECONNRESET: why = "connection reset"
            case ENETUNREACH: why = "network unreachable"
            case EHOSTUNREACH: why = "host unreachable"
            case ETIMEDOUT: why = "connection timed out"
            default: why = String(cString: strerror(code))
            }
            if let proxy { return .transient(.proxy, "\(u): proxy \(proxy): \(why)") }
            return .transient(.network, "\(u): \(why)")
        }
        if typeName.contains("SocketAddressError") || typeName.contains("NIOConnectionError") {
            if let proxy { return .transient(.proxy, "\(u): cannot resolve the proxy host \(proxy.host)") }
            return .transient(.network, "\(u): cannot resolve host \(url.host)")
        }
        return .transient(.network, "\(u): \(error)")
    }

    /// The failure for a proxy's answer to `CONNECT`, as `ProxyProbe` read it.
    static func proxyStatus(_ status: Int, url: FetchURL, proxy: ProxySettings) -> FetchFailure {
        let u = url.redacted
        let target = url.hostPort
        switch status {
        case 407:
            let how =
                proxy.username == nil ? "no credentials configured" : "the proxy refused the configured credentials"
            return .fatal(.proxy, "\(u): proxy authentication required (407) by proxy \(proxy): \(how)")
        case 401:
            // tinyproxy's answer to wrong credentials (it keeps 407 for missing ones).
            return .fatal(
                .proxy,
                "\(u): proxy authentication required (401 from proxy \(proxy)): the proxy refused the configured credentials"
            )
        case 403:
            return .fatal(.proxy, "\(u): proxy \(proxy) forbids CONNECT to \(target) (403)")
        default:
            return .transient(.proxy, "\(u): proxy \(proxy) could not connect to \(target) (HTTP \(status) to CONNECT)")
        }
    }

    /// The errno inside NIO's connection errors. `NIOConnectionError` lives in NIOPosix, which this
    /// module does not import, and wraps one `IOError` per address tried; a mirror walk finds
    /// them without depending on the type.
    static func errnoCode(in error: Any, depth: Int = 0) -> Int32? {
        if let io = error as? IOError { return io.errnoCode }
        guard depth < 5 else { return nil }
        for child in Mirror(reflecting: error).children {
            if let code = errnoCode(in: child.value, depth: depth + 1) { return code }
        }
        // Optionals and arrays of errors appear as nested mirrors without labels.
        return nil
    }
}
