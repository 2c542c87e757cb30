import CourierCore
import FoundationEssentials

/// A forward HTTP proxy, from the configuration (`proxy = "http://user:pass@host:3128"`) or from
/// the environment (`http_proxy`, `https_proxy`, `no_proxy`, as curl and most Unix tools read
/// them). https:// goes through it with `CONNECT`, so TLS is end-to-end and the proxy sees only
/// host and port; plain http:// is sent to it in absolute form (`GET http://host/path`), as
/// proxies expect (`PlainProxyClient`).
///
/// The password is a secret: `description` shows `***` in its place, and every message that
/// quotes a proxy string goes through `URLRedaction.redact` first.
public struct ProxySettings: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?

    public init(host: String, port: Int, username: String? = nil, password: String? = nil) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
    }

    /// `http://user:***@host:port`: safe for logs and messages.
    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        guard let username else { return "http://\(h):\(port)" }
        return "http://\(username):***@\(h):\(port)"
    }

    /// Parses `[http://][user[:password]@]host[:port][/]`. User and password may be
    /// percent-encoded (`p%40ss` for `p@ss`), as in curl. Without a port, 80 — the http scheme's
    /// default, as Python and Go read proxy variables (curl would say 1080; write the port).
    /// Only plain-http proxies exist here: TLS to the proxy itself and SOCKS are refused, not ignored.
    public static func parse(_ text: String) throws -> ProxySettings {
        let shown = URLRedaction.redact(text)
        var rest = Substring(text.trimming(" \t"))
        if let sep = rest.schemeSeparator {
            let scheme = rest[..<sep.lowerBound].lowercased()
            guard scheme == "http" else {
                throw CourierError(.config, "proxy '\(shown)': only http:// proxies are supported (not \(scheme)://)")
            }
            rest = rest[sep.upperBound...]
        }
        if let slash = rest.firstIndex(of: "/") {
            guard rest[slash...].allSatisfy({ $0 == "/" }) else {
                throw CourierError(.config, "proxy '\(shown)': a proxy URL has no path")
            }
            rest = rest[..<slash]
        }
        var username: String? = nil
        var password: String? = nil
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let user: Substring
            if let colon = userinfo.firstIndex(of: ":") {
                user = userinfo[..<colon]
                guard let p = percentDecode(userinfo[userinfo.index(after: colon)...]) else {
                    throw CourierError(.config, "proxy '\(shown)': bad percent-encoding in the password")
                }
                password = p
            } else {
                user = userinfo
            }
            guard let u = percentDecode(user), !u.isEmpty else {
                throw CourierError(.config, "proxy '\(shown)': empty or badly encoded user name")
            }
            username = u
        }
        guard let hp = FetchURL.splitHostPort(rest, defaultPort: 80) else {
            throw CourierError(.config, "proxy '\(shown)': bad host or port")
        }
        return ProxySettings(host: hp.host, port: hp.port, username: username, password: password)
    }

    /// The proxy the environment asks for when fetching `url`, or nil for a direct connection:
    /// `http_proxy`/`HTTP_PROXY` for http, `https_proxy`/`HTTPS_PROXY` for https (lower case
    /// first, as curl), unless `no_proxy`/`NO_PROXY` names the host. A value that does not parse
    /// yields nil here; `Fetcher` reports it as a configuration error instead of ignoring it.
    public static func fromEnvironment(for url: String, env: [String: String]) -> ProxySettings? {
        guard let u = try? FetchURL(url), let v = environmentValue(for: u, env: env) else { return nil }
        return try? parse(v.value)
    }

    /// The proxy variable that applies to `url` (name and value), nil when none is set or
    /// `no_proxy` bypasses the host.
    static func environmentValue(for url: FetchURL, env: [String: String]) -> (name: String, value: String)? {
        let names = url.scheme == "https" ? ["https_proxy", "HTTPS_PROXY"] : ["http_proxy", "HTTP_PROXY"]
        guard let name = names.first(where: { !(env[$0] ?? "").isEmpty }), let value = env[name] else { return nil }
        let noProxy = ["no_proxy", "NO_PROXY"].lazy.compactMap { env[$0] }.first { !$0.isEmpty } ?? ""
        if bypasses(host: url.host, port: url.port, noProxy: noProxy) { return nil }
        return (name, value)
    }

    /// Whether `no_proxy` sends `host:port` direct. The list is split on commas and blanks; an
    /// entry is `*` (everything), a domain (`example.com`, `.example.com` or `*.example.com`:
    /// the host itself and every sub-domain), an address (`10.1.2.3`, `::1`, `[::1]`), an IPv4
    /// network (`10.0.0.0/8`), any of those with `:port` to bypass only that port. Case-insensitive.
    public static func bypasses(host: String, port: Int, noProxy: String) -> Bool {
        var host = host.lowercased()[...]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        let entries = noProxy.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" })
        for raw in entries {
            var entry = raw.lowercased()[...]
            if entry == "*" { return true }
            var entryPort: Int? = nil
            // A port is only there when the colon is not part of an IPv6 address.
            if entry.hasPrefix("[") {
                guard let close = entry.firstIndex(of: "]") else { continue }
                let after = entry[entry.index(after: close)...]
                if after.hasPrefix(":") {
                    entryPort = Int(after.dropFirst())
                    if entryPort == nil { continue }
                }
                entry = entry[entry.index(after: entry.startIndex)..<close]
            } else if entry.filter({ $0 == ":" }).count == 1, let colon = entry.firstIndex(of: ":") {
                guard let p = Int(entry[entry.index(after: colon)...]) else { continue }
                entryPort = p
                entry = entry[..<colon]
            }
            if let entryPort, entryPort != port { continue }
            if entry.contains("/") {
                if cidrContains(String(entry), String(host)) { return true }
                continue
            }
            if entry.hasPrefix("*.") {
                entry = entry.dropFirst(2)
            } else if entry.hasPrefix(".") {
                entry = entry.dropFirst()
            }
            if entry.isEmpty { continue }
            if host == entry || host.hasSuffix("." + entry) { return true }
        }
        return false
    }

    /// IPv4 CIDR membership (`10.0.0.0/8`); false for anything else.
    static func cidrContains(_ cidr: String, _ host: String) -> Bool {
        let parts = cidr.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let bits = Int(parts[1]), (0...32).contains(bits),
            let net = ipv4(parts[0]), let addr = ipv4(Substring(host))
        else { return false }
        let mask: UInt32 = bits == 0 ? 0 : ~UInt32(0) << (32 - bits)
        return net & mask == addr & mask
    }

    static func ipv4(_ s: Substring) -> UInt32? {
        let octets = s.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var v: UInt32 = 0
        for o in octets {
            guard !o.isEmpty, o.count <= 3, o.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt32(o), n < 256
            else { return nil }
            v = v << 8 | n
        }
        return v
    }

    /// `%XX` decoding of a user name or password; nil on a malformed escape or invalid UTF-8.
    static func percentDecode(_ s: Substring) -> String? {
        var out: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let c = it.popFirst() {
            if c == UInt8(ascii: "%") {
                guard it.count >= 2, let hi = hexValue(it.removeFirst()), let lo = hexValue(it.removeFirst()) else {
                    return nil
                }
                out.append(hi << 4 | lo)
            } else {
                out.append(c)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
