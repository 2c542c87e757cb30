import CourierCore
import FoundationEssentials

/// The parts of an http(s) URL the fetcher needs: scheme, host, port, and a form without
/// credentials for logs and error messages. A deliberately small parser (no Foundation `URL`):
/// it only has to split `scheme://[userinfo@]host[:port][/path][?query]`, and doing it here keeps
/// the redaction rule — userinfo never leaves this type — in one place.
struct FetchURL: Sendable, Equatable {
    /// The URL as given, credentials included: only ever handed to the HTTP client.
    let string: String
    /// `http` or `https`, lower-cased.
    let scheme: String
    /// Host name or address, lower-cased, without IPv6 brackets.
    let host: String
    let port: Int
    /// The URL with any `user:password@` removed: the only form that may be logged or shown.
    let redacted: String
    /// `user:password@` from the URL, decoded: only ever sent as `Authorization: Basic`.
    let userinfo: BasicAuth?

    /// The request target a proxy is sent (`GET http://host/path HTTP/1.1`): the URL without
    /// credentials and without a fragment.
    var absoluteForm: String {
        guard let hash = redacted.firstIndex(of: "#") else { return redacted }
        return String(redacted[..<hash])
    }

    /// `host[:port]` as the cool-down file keys it: the port only when it is not the scheme's default,
    /// so two servers on one address (tests, alternate ports) cool down separately.
    var authority: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == FetchURL.defaultPort(scheme) ? h : "\(h):\(port)"
    }

    /// `host:port` with the port always present, as a `CONNECT` request names its target.
    var hostPort: String { (host.contains(":") ? "[\(host)]" : host) + ":\(port)" }

    static func defaultPort(_ scheme: String) -> Int { scheme == "https" ? 443 : 80 }

    init(_ text: String) throws {
        string = text
        guard let sep = text.schemeSeparator else {
            throw CourierError(.config, "'\(URLRedaction.redact(text))': not an http:// or https:// URL")
        }
        scheme = text[..<sep.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else {
            throw CourierError(
                .config, "'\(URLRedaction.redact(text))': unsupported scheme '\(scheme)' (http or https)")
        }
        let rest = text[sep.upperBound...]
        let authEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        var authority = rest[..<authEnd]
        let tail = rest[authEnd...]
        var info: BasicAuth? = nil
        if let at = authority.lastIndex(of: "@") {
            let ui = authority[..<at]
            let colon = ui.firstIndex(of: ":")
            if let user = ProxySettings.percentDecode(ui[..<(colon ?? ui.endIndex)]),
                let pw = ProxySettings.percentDecode(colon.map { ui[ui.index(after: $0)...] } ?? ""), !user.isEmpty
            {
                info = BasicAuth(user: user, password: pw)
            }
            authority = authority[authority.index(after: at)...]
        }
        userinfo = info
        guard let hp = FetchURL.splitHostPort(authority, defaultPort: FetchURL.defaultPort(scheme)) else {
            throw CourierError(.config, "'\(URLRedaction.redact(text))': bad host or port")
        }
        host = hp.host
        port = hp.port
        redacted = String(scheme + "://" + authority + tail)
    }

    /// Splits `host`, `host:port`, `[v6]`, `[v6]:port`. Nil when the host is empty or the port is
    /// not a number in 1...65535.
    static func splitHostPort(_ s: Substring, defaultPort: Int) -> (host: String, port: Int)? {
        var host: Substring
        var portText: Substring? = nil
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            let after = s[s.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = s.lastIndex(of: ":") {
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
        } else {
            host = s
        }
        guard !host.isEmpty else { return nil }
        var port = defaultPort
        if let p = portText {
            guard let v = Int(p), (1...65535).contains(v) else { return nil }
            port = v
        }
        return (host.lowercased(), port)
    }
}
