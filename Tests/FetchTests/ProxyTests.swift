import CourierCore
import Foundation
import Testing

@testable import CourierFetch

/// Through a real forward proxy on loopback: Debian's tinyproxy, started per test with a
/// generated configuration. The proxy's log shows `GET http://…` for plain http:// and the
/// CONNECT for https://; the fault server's log shows the request arriving.
@Suite(.serialized, .enabled(if: TinyProxy.available, "tinyproxy is not installed (apt-get install -y tinyproxy)"))
struct ProxyTests {
    @Test func fetchesThroughTheConfiguredProxy() async throws {
        let ws = Workspace("proxy")
        let server = try FaultServer(ws)
        let proxy = try TinyProxy(ws)
        defer {
            server.stop()
            proxy.stop()
        }
        var policy = testPolicy(ws)
        policy.proxy = ProxySettings(host: "127.0.0.1", port: proxy.port)
        let outcome = try await withFetcher(policy) {
            try await $0.fetch(server.url("/file?size=100000&name=p"), to: ws.path("p"), validators: nil)
        }
        guard case .downloaded(100000, _, false) = outcome else {
            Issue.record("\(outcome)")
            return
        }
        #expect(ws.read("p") == expectedContent(100000))
        // Plain http:// goes to the proxy in absolute form, not through a CONNECT tunnel.
        #expect(
            proxy.log.contains("GET http://127.0.0.1:\(server.port)/file?size=100000&name=p HTTP/1.1"), "\(proxy.log)")
        #expect(!proxy.log.contains("CONNECT 127.0.0.1"))
        #expect(server.requests().count == 1)
    }

    @Test func fetchesThroughTheEnvironmentProxy() async throws {
        let ws = Workspace("envproxy")
        let server = try FaultServer(ws)
        let proxy = try TinyProxy(ws)
        defer {
            server.stop()
            proxy.stop()
        }
        var policy = testPolicy(ws)
        policy.environment = ["http_proxy": "http://127.0.0.1:\(proxy.port)"]
        let bytes = try await withFetcher(policy) { try await $0.fetchSmall(server.url("/file?size=100"), limit: 1000) }
        #expect(bytes == expectedContent(100))
        #expect(proxy.log.contains("GET http://127.0.0.1:\(server.port)/file?size=100 HTTP/1.1"), "\(proxy.log)")
    }

    @Test func noProxyGoesDirect() async throws {
        let ws = Workspace("noproxy")
        let server = try FaultServer(ws)
        let proxy = try TinyProxy(ws)
        defer {
            server.stop()
            proxy.stop()
        }
        var policy = testPolicy(ws)
        policy.environment = ["http_proxy": "http://127.0.0.1:\(proxy.port)", "no_proxy": "localhost,127.0.0.1"]
        let bytes = try await withFetcher(policy) { try await $0.fetchSmall(server.url("/file?size=100"), limit: 1000) }
        #expect(bytes == expectedContent(100))
        #expect(!proxy.log.contains("127.0.0.1:\(server.port)"))
        #expect(server.requests().count == 1)
        // And an explicit proxy that is dead does not matter for a bypassed host either.
        policy.environment = ["no_proxy": "127.0.0.1"]
        policy.proxy = ProxySettings(host: "127.0.0.1", port: try freePort())
        _ = try await withFetcher(policy) { try await $0.fetchSmall(server.url("/file?size=100"), limit: 1000) }
    }

    @Test func basicAuthProxyWithRightAndWrongCredentials() async throws {
        let ws = Workspace("authproxy")
        let server = try FaultServer(ws)
        let password = "Pr0xy-s3cret"
        let proxy = try TinyProxy(ws, auth: ("courier", password))
        defer {
            server.stop()
            proxy.stop()
        }
        let logs = LogCapture()

        var policy = testPolicy(ws, retryFor: 5)
        policy.proxy = try ProxySettings.parse("http://courier:\(password)@127.0.0.1:\(proxy.port)")
        let outcome = try await withFetcher(policy, logger: logs.logger()) {
            try await $0.fetch(server.url("/file?size=5000"), to: ws.path("a"), validators: nil)
        }
        guard case .downloaded(5000, _, false) = outcome else {
            Issue.record("\(outcome)")
            return
        }
        #expect(proxy.log.contains("GET http://127.0.0.1:\(server.port)/file?size=5000"))
        #expect(server.requests().last?.proxyAuthorization == false, "the proxy's credentials stay with the proxy")
        let served = server.requests().count
        #expect(served == 1)

        // Wrong password: .proxy, 407 in words, no retry, and the secret nowhere.
        let wrong = "Wr0ng-passw0rd"
        policy.proxy = try ProxySettings.parse("http://courier:\(wrong)@127.0.0.1:\(proxy.port)")
        let start = Date()
        let e = await expectCourierError(.proxy) {
            _ = try await withFetcher(policy, logger: logs.logger()) {
                try await $0.fetch(server.url("/file?size=5000"), to: ws.path("b"), validators: nil)
            }
        }
        // tinyproxy answers wrong credentials with 401 (and missing ones with 407).
        #expect(
            e?.message.contains("proxy authentication required (401 from proxy http://courier:***@") == true,
            "\(String(describing: e))")
        #expect(Date().timeIntervalSince(start) < 3)
        #expect(server.requests().count == served)

        // No credentials at all.
        policy.proxy = ProxySettings(host: "127.0.0.1", port: proxy.port)
        let none = await expectCourierError(.proxy) {
            _ = try await withFetcher(policy, logger: logs.logger()) {
                try await $0.fetchSmall(server.url("/file"), limit: 5000)
            }
        }
        #expect(
            none?.message.contains(
                "proxy authentication required (407) by proxy http://127.0.0.1:\(proxy.port): no credentials configured"
            ) == true,
            "\(String(describing: none))")

        // Credentials from the environment variable, wrong, also end up nowhere.
        policy.proxy = nil
        policy.environment = ["http_proxy": "http://courier:\(wrong)@127.0.0.1:\(proxy.port)"]
        let env = await expectCourierError(.proxy) {
            _ = try await withFetcher(policy, logger: logs.logger()) {
                try await $0.fetchSmall(server.url("/file"), limit: 5000)
            }
        }

        let basicRight = Data("courier:\(password)".utf8).base64EncodedString()
        let basicWrong = Data("courier:\(wrong)".utf8).base64EncodedString()
        for text in [e?.description, none?.description, env?.description].compactMap({ $0 }) + logs.all {
            #expect(!text.contains(password), "\(text)")
            #expect(!text.contains(wrong), "\(text)")
            #expect(!text.contains(basicRight) && !text.contains(basicWrong), "\(text)")
        }
        #expect(!logs.all.isEmpty)
    }

    @Test func deadProxyIsAProxyError() async throws {
        let ws = Workspace("deadproxy")
        var policy = testPolicy(ws)
        let port = try freePort()
        policy.proxy = try ProxySettings.parse("http://u:hidden-pw@127.0.0.1:\(port)")
        let e = await expectCourierError(.proxy) {
            _ = try await withFetcher(policy) { try await $0.fetchSmall("http://127.0.0.1:9/x", limit: 10) }
        }
        #expect(
            e?.message == "http://127.0.0.1:9/x: proxy http://u:***@127.0.0.1:\(port): connection refused",
            "\(String(describing: e))")
    }

    @Test func httpsThroughTinyproxyIsAConnectTunnel() async throws {
        let ws = Workspace("tlsproxy")
        let ca = try PrivateCA(ws)
        let server = try FaultServer(ws, tls: (ca.certPath, ca.keyPath))
        let proxy = try TinyProxy(ws)
        defer {
            server.stop()
            proxy.stop()
        }
        var policy = testPolicy(ws)
        policy.proxy = ProxySettings(host: "127.0.0.1", port: proxy.port)
        policy.caFile = ca.caPath
        let bytes = try await withFetcher(policy) { try await $0.fetchSmall(server.url("/file?size=300"), limit: 1000) }
        #expect(bytes == expectedContent(300))
        #expect(proxy.log.contains("CONNECT 127.0.0.1:\(server.port)"), "\(proxy.log)")
    }
}

/// Debian's Squid with its stock rules: plain http:// in absolute form passes; `CONNECT` only to
/// `SSL_ports` — which is why tunnelling http:// (async-http-client's way) fails there.
@Suite(.serialized, .enabled(if: Squid.available, "squid is not installed (scripts/bootstrap.sh installs it)"))
struct SquidTests {
    @Test func stockSquidCarriesHTTPInAbsoluteFormAndHTTPSByConnect() async throws {
        let ws = Workspace("squid")
        let ca = try PrivateCA(ws)
        let plain = try FaultServer(ws, name: "plain")
        let tls = try FaultServer(ws, name: "tls", tls: (ca.certPath, ca.keyPath))
        defer {
            plain.stop()
            tls.stop()
        }

        // Stock SSL_ports (443 only): http:// works, https:// to another port is refused by
        // `http_access deny CONNECT !SSL_ports` — as a CONNECT for http:// would be.
        let stock = try Squid(ws)
        var policy = testPolicy(ws)
        policy.proxy = ProxySettings(host: "127.0.0.1", port: stock.port)
        policy.caFile = ca.caPath
        let outcome = try await withFetcher(policy) {
            try await $0.fetch(plain.url("/file?size=70000&name=sq"), to: ws.path("sq"), validators: nil)
        }
        guard case .downloaded(70000, _, false) = outcome else {
            Issue.record("\(outcome)")
            return
        }
        #expect(ws.read("sq") == expectedContent(70000))
        let denied = await expectCourierError {
            _ = try await withFetcher(policy) { try await $0.fetchSmall(tls.url("/file?size=10"), limit: 100) }
        }
        #expect(
            denied?.code == .proxy
                && denied?.message.contains("forbids CONNECT to 127.0.0.1:\(tls.port) (403)") == true,
            "\(String(describing: denied))")
        // Squid logs a request when it is done, without the query (strip_query_terms).
        #expect(waitFor(5) { stock.log.contains("GET http://127.0.0.1:\(plain.port)/file? ") }, "\(stock.log)")
        stock.stop()
        #expect(
            stock.log.contains("TCP_DENIED/403") && stock.log.contains("CONNECT 127.0.0.1:\(tls.port)"), "\(stock.log)")
        #expect(!stock.log.contains("CONNECT 127.0.0.1:\(plain.port)"))

        // With the test server's port among SSL_ports, https:// goes through the tunnel.
        let ws2 = Workspace("squid2")
        let squid = try Squid(ws2, sslPorts: [tls.port])
        policy.proxy = ProxySettings(host: "127.0.0.1", port: squid.port)
        let bytes = try await withFetcher(policy) { try await $0.fetchSmall(tls.url("/file?size=500"), limit: 1000) }
        #expect(bytes == expectedContent(500))
        let again = try await withFetcher(policy) { try await $0.fetchSmall(plain.url("/file?size=50"), limit: 1000) }
        #expect(again == expectedContent(50))
        #expect(
            waitFor(5) {
                squid.log.contains("CONNECT 127.0.0.1:\(tls.port)")
                    && squid.log.contains("GET http://127.0.0.1:\(plain.port)/file? ")
            },
            "\(squid.log)")
        squid.stop()
    }
}

/// Polls `condition` for up to `seconds`.
func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}
