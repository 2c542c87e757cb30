import CourierCore
import Testing

@testable import CourierFetch

/// Pure unit tests: proxy strings, the environment, `no_proxy`, URLs, `Retry-After`.
@Suite struct ProxySettingsTests {
    @Test func parsesFullProxyURL() throws {
        let p = try ProxySettings.parse("http://user:pass@proxy.example.com:3128")
        #expect(p == ProxySettings(host: "proxy.example.com", port: 3128, username: "user", password: "pass"))
    }

    @Test func parsesWithoutSchemeOrCredentials() throws {
        #expect(try ProxySettings.parse("proxy:8080") == ProxySettings(host: "proxy", port: 8080))
        #expect(
            try ProxySettings.parse("http://Proxy.Example.com/") == ProxySettings(host: "proxy.example.com", port: 80))
        #expect(try ProxySettings.parse(" http://[::1]:3128 ") == ProxySettings(host: "::1", port: 3128))
    }

    @Test func decodesPercentEncodedCredentials() throws {
        let p = try ProxySettings.parse("http://dom%5Cuser:p%40ss%3Aword@proxy:3128")
        #expect(p.username == "dom\\user")
        #expect(p.password == "p@ss:word")
        // Password contains '@': the last '@' separates the host.
        let q = try ProxySettings.parse("http://u:a@b@proxy:1")
        #expect(q.password == "a@b" && q.host == "proxy")
    }

    @Test func descriptionHidesPassword() throws {
        let p = try ProxySettings.parse("http://user:s3cr3t@proxy:3128")
        #expect(p.description == "http://user:***@proxy:3128")
        #expect(!"\(p)".contains("s3cr3t"))
    }

    @Test func refusesBadProxiesWithoutQuotingThePassword() {
        for bad in [
            "https://user:s3cr3t@proxy:3128", "socks5://user:s3cr3t@proxy:1080",
            "http://user:s3cr3t@proxy:99999", "http://user:s3cr3t@:3128",
            "http://user:s3cr3t@proxy:3128/path", "http://user:s3%zzcr3t@proxy:3128",
        ] {
            let e = expectCourierError(.config) { _ = try ProxySettings.parse(bad) }
            #expect(e?.description.contains("s3cr3t") == false, "\(bad): \(String(describing: e))")
            #expect(e?.description.contains("s3%zzcr3t") == false, "\(bad): \(String(describing: e))")
        }
    }

    @Test func environmentPicksVariableByScheme() {
        let env = ["http_proxy": "http://plain:3128", "https_proxy": "http://secure:3129"]
        #expect(
            ProxySettings.fromEnvironment(for: "http://a.example/x", env: env)
                == ProxySettings(host: "plain", port: 3128))
        #expect(
            ProxySettings.fromEnvironment(for: "https://a.example/x", env: env)
                == ProxySettings(host: "secure", port: 3129))
        #expect(
            ProxySettings.fromEnvironment(for: "https://a.example/x", env: ["http_proxy": "http://plain:3128"]) == nil)
    }

    @Test func environmentLowerCaseWinsAndEmptyIsUnset() {
        let env = ["HTTP_PROXY": "http://upper:1", "http_proxy": "http://lower:2"]
        #expect(ProxySettings.fromEnvironment(for: "http://h/", env: env)?.host == "lower")
        #expect(ProxySettings.fromEnvironment(for: "http://h/", env: ["HTTP_PROXY": "http://upper:1"])?.host == "upper")
        #expect(
            ProxySettings.fromEnvironment(for: "http://h/", env: ["http_proxy": "", "HTTP_PROXY": "http://upper:1"])?
                .host == "upper")
        #expect(ProxySettings.fromEnvironment(for: "http://h/", env: [:]) == nil)
    }

    @Test func environmentHonoursNoProxy() {
        var env = ["https_proxy": "http://p:3128", "no_proxy": "localhost, .internal.example,10.0.0.0/8"]
        #expect(ProxySettings.fromEnvironment(for: "https://localhost/x", env: env) == nil)
        #expect(ProxySettings.fromEnvironment(for: "https://mirror.internal.example/x", env: env) == nil)
        #expect(ProxySettings.fromEnvironment(for: "https://10.20.30.40/x", env: env) == nil)
        #expect(ProxySettings.fromEnvironment(for: "https://updates.vendor.example/x", env: env) != nil)
        env["no_proxy"] = nil
        env["NO_PROXY"] = "*"
        #expect(ProxySettings.fromEnvironment(for: "https://updates.vendor.example/x", env: env) == nil)
    }

    @Test func noProxyMatching() {
        func by(_ host: String, _ list: String) -> Bool {
            ProxySettings.bypasses(host: host, port: 80, noProxy: list)
        }
        func by(_ host: String, _ port: Int, _ list: String) -> Bool {
            ProxySettings.bypasses(host: host, port: port, noProxy: list)
        }
        #expect(by("example.com", "example.com"))
        #expect(by("www.example.com", "example.com"))  // suffix on a label boundary
        #expect(!by("badexample.com", "example.com"))  // not a mere string suffix
        #expect(by("www.example.com", ".example.com"))
        #expect(by("example.com", ".example.com"))  // curl: the domain itself too
        #expect(by("a.b.example.com", "*.example.com"))
        #expect(by("EXAMPLE.com", "Example.COM"))
        #expect(by("anything", "*"))
        #expect(!by("anything", ""))
        #expect(by("mirror", 8080, "mirror:8080"))  // host:port
        #expect(!by("mirror", 80, "mirror:8080"))
        #expect(by("127.0.0.1", "127.0.0.1"))
        #expect(by("::1", "::1"))  // bare IPv6: no port split
        #expect(by("::1", 8080, "[::1]:8080"))
        #expect(!by("::1", 80, "[::1]:8080"))
        #expect(by("192.168.1.7", "192.168.0.0/16"))
        #expect(!by("192.169.1.7", "192.168.0.0/16"))
        #expect(!by("example.com", "10.0.0.0/8"))
        #expect(by("b.example", "a.example b.example"))  // blanks separate too
    }

    @Test func explicitProxyStillHonoursNoProxy() throws {
        var policy = FetchPolicy()
        policy.proxy = try ProxySettings.parse("http://cfg:3128")
        policy.environment = ["no_proxy": "internal.example"]
        #expect(try policy.proxy(for: FetchURL("http://mirror.internal.example/f")) == nil)
        #expect(try policy.proxy(for: FetchURL("http://vendor.example/f"))?.host == "cfg")
    }

    @Test func malformedEnvironmentProxyIsAnErrorNamingTheVariable() throws {
        var policy = FetchPolicy()
        policy.environment = ["https_proxy": "socks5://u:topsecret@p:1080"]
        let e = expectCourierError(.config, "https_proxy") {
            _ = try policy.proxy(for: FetchURL("https://vendor.example/f"))
        }
        #expect(e?.message.contains("topsecret") == false)
    }

    @Test func urlParsingAndRedaction() throws {
        let u = try FetchURL("https://user:pw@Mirror.Example.com:8443/defs/a.tar.gz?x=1")
        #expect(u.scheme == "https" && u.host == "mirror.example.com" && u.port == 8443)
        #expect(u.redacted == "https://Mirror.Example.com:8443/defs/a.tar.gz?x=1")
        #expect(u.authority == "mirror.example.com:8443")
        #expect(try FetchURL("http://h/").authority == "h")
        #expect(try FetchURL("https://[::1]/x").authority == "[::1]")
        #expect(throws: CourierError.self) { try FetchURL("ftp://h/x") }
        #expect(throws: CourierError.self) { try FetchURL("no-scheme") }
        #expect(URLRedaction.redact("http://u:p@h/x") == "http://***@h/x")
    }

    @Test func retryAfterSecondsAndDates() {
        let now: Int64 = 784_111_777  // Sun, 06 Nov 1994 08:49:37 GMT
        #expect(RetryAfter.seconds("120", now: now) == 120)
        #expect(RetryAfter.seconds(" 0 ", now: now) == 0)
        #expect(RetryAfter.httpDate("Sun, 06 Nov 1994 08:49:37 GMT") == now)
        #expect(RetryAfter.httpDate("Sunday, 06-Nov-94 08:49:37 GMT") == now)
        #expect(RetryAfter.httpDate("Sun Nov  6 08:49:37 1994") == now)
        #expect(RetryAfter.seconds("Sun, 06 Nov 1994 08:51:37 GMT", now: now) == 120)
        #expect(RetryAfter.seconds("Sun, 06 Nov 1994 08:00:00 GMT", now: now) == 0)  // past: now
        #expect(RetryAfter.seconds("soon", now: now) == nil)
        #expect(RetryAfter.seconds("-5", now: now) == nil)
        #expect(RetryAfter.httpDate("Sun, 31 Feb 1994 08:49:37 GMT") == nil)
    }

    @Test func validatorsIfRange() {
        #expect(Validators(etag: "\"a\"", lastModified: "d").ifRange == "\"a\"")
        #expect(Validators(etag: "W/\"a\"", lastModified: "d").ifRange == "d")
        #expect(Validators(etag: "W/\"a\"").ifRange == nil)
        #expect(Validators().isEmpty)
    }

    /// `courier-stage run` sent a bare `courier-stage` while `fetch` sent the versioned form.
    @Test func defaultUserAgentNamesTheVersion() {
        #expect(FetchPolicy().userAgent == "courier-stage/\(CourierVersion.string)")
        #expect(CourierVersion.userAgent("courier-tuf") == "courier-tuf/\(CourierVersion.string)")
    }
}
