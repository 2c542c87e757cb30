import AsyncHTTPClient
import CourierCore
import Logging
import NIOCore
import NIOHTTP1

/// The status line and headers of a response, whichever client carried it.
struct ResponseHead: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
}

/// The body of a response as chunks, pulled one at a time (so a slow consumer — `max_rate` —
/// slows the socket down instead of filling memory). Nil at the end.
final class BodyReader {
    private let nextChunk: () async throws -> ByteBuffer?
    init(_ next: @escaping () async throws -> ByteBuffer?) { nextChunk = next }
    func next() async throws -> ByteBuffer? { try await nextChunk() }
}

/// What one hop of the plain-proxy path ended with.
enum ExchangeStep<T> {
    case done(T)
    case redirect(String)
}

/// Holds an async iterator for a `BodyReader` closure, which cannot capture a `var`.
final class IteratorBox<I: AsyncIteratorProtocol> {
    var it: I
    init(_ it: I) { self.it = it }
}

extension Fetcher {
    /// One request for `url` and its response, handed to `handle` while the connection is open.
    ///
    /// Plain `http://` through a proxy goes in absolute form (`GET http://host/path HTTP/1.1` to
    /// the proxy), as proxies expect and as Squid's stock `http_access deny CONNECT !SSL_ports`
    /// demands: async-http-client 1.37 tunnels every proxied request with `CONNECT host:80`,
    /// so that path is `PlainProxyClient`, with its own redirect handling. Everything else —
    /// direct requests, and https:// through a proxy (`CONNECT`, end-to-end TLS) — goes through
    /// async-http-client. A redirect from the plain path to https:// continues there.
    func exchange<T>(
        _ url: FetchURL, proxy: ProxySettings?, client: HTTPClient, extra: HTTPHeaders = [:],
        _ handle: (ResponseHead, BodyReader) async throws -> T
    ) async throws -> T {
        var current = url
        var visited: Set<String> = [url.absoluteForm]
        var hops = 0
        var headers = requestHeaders(for: url)
        headers.add(contentsOf: extra)
        while true {
            if let proxy, current.scheme == "http", try policy.proxy(for: current) != nil {
                let step: ExchangeStep<T> = try await PlainProxyClient.exchange(
                    current, proxy: proxy, headers: headers, policy: policy
                ) { head, body in
                    // The proxy's own refusals, told apart from the server's: 407, and the 401
                    // tinyproxy answers to wrong credentials. That one carries WWW-Authenticate
                    // like a server's 401 would, so it is recognised by the proxy's own
                    // `Server: tinyproxy/…` (a server's answer through tinyproxy keeps the server's).
                    let code = Int(head.status.code)
                    let server = head.headers.first(name: "Server")?.lowercased() ?? ""
                    if code == 407
                        || (code == 401
                            && (head.headers.contains(name: "Proxy-Authenticate")
                                || server.hasPrefix("tinyproxy/")))
                    {
                        throw FailureMapper.proxyStatus(code, url: current, proxy: proxy)
                    }
                    if policy.maxRedirects > 0, [301, 302, 303, 307, 308].contains(head.status.code),
                        let location = head.headers.first(name: "Location")
                    {
                        return .redirect(location)
                    }
                    return .done(try await handle(head, body))
                }
                switch step {
                case .done(let v): return v
                case .redirect(let location):
                    hops += 1
                    guard hops <= policy.maxRedirects else { throw HTTPClientError.redirectLimitReached }
                    let next = try current.resolve(location)
                    guard visited.insert(next.absoluteForm).inserted else {
                        throw HTTPClientError.redirectCycleDetected
                    }
                    if next.scheme != current.scheme || next.host != current.host || next.port != current.port {
                        headers.remove(name: "Authorization")
                    }
                    if let auth = next.userinfo, policy.basicAuth == nil {
                        headers.replaceOrAdd(name: "Authorization", value: auth.headerValue)
                    }
                    logger.debug("redirected", metadata: ["from": "\(current.redacted)", "to": "\(next.redacted)"])
                    current = next
                    continue
                }
            }
            var req = HTTPClientRequest(url: current.string)
            req.method = .GET
            req.headers = headers
            let response = try await client.execute(req, timeout: headTimeout, logger: logger)
            let box = IteratorBox(response.body.makeAsyncIterator())
            return try await handle(
                ResponseHead(status: response.status, headers: response.headers),
                BodyReader { try await box.it.next() })
        }
    }

    /// What every request carries: the User-Agent, the configured headers and basic auth (the
    /// type's `user`/`password`, else the URL's own `user:password@`). Secrets; never logged.
    func requestHeaders(for url: FetchURL) -> HTTPHeaders {
        var h = HTTPHeaders()
        h.add(name: "User-Agent", value: policy.userAgent)
        for (name, value) in policy.headers.sorted(by: { $0.key < $1.key }) { h.replaceOrAdd(name: name, value: value) }
        if let auth = policy.basicAuth ?? url.userinfo {
            h.replaceOrAdd(name: "Authorization", value: auth.headerValue)
        }
        return h
    }
}

extension FetchURL {
    /// A `Location` value against this URL: absolute (`http(s)://…`), scheme-relative (`//host/…`),
    /// absolute path (`/…`) or relative path.
    func resolve(_ location: String) throws -> FetchURL {
        let l = location.trimming(" \t")
        if l.schemeSeparator != nil { return try FetchURL(l) }
        if l.hasPrefix("//") { return try FetchURL(scheme + ":" + l) }
        let base = scheme + "://" + authority
        if l.hasPrefix("/") { return try FetchURL(base + l) }
        var path = String(absoluteForm.dropFirst(base.count))
        if let q = path.firstIndex(of: "?") { path = String(path[..<q]) }
        let dir = path.lastIndex(of: "/").map { String(path[...$0]) } ?? "/"
        return try FetchURL(base + dir + l)
    }
}
