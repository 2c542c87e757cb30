import CourierCore
@testable import CourierFetch
import Foundation
import Testing

/// Through a real forward proxy on loopback: Debian's tinyproxy, started per test with a
/// generated configuration. The proxy's log shows the CONNECT; the fault server's log shows the
/// request arriving through the tunnel.
@Suite(.serialized, .enabled(if: TinyProxy.available, "tinyproxy is not installed (apt-get install -y tinyproxy)"))
struct ProxyTests {
    @Test func fetchesThroughTheConfiguredProxy() async throws {
        let ws = Workspace("proxy")
        let server = try FaultServer(ws)
        let proxy = try TinyProxy(ws)
        defer { server.stop(); proxy.stop() }
        var policy = testPolicy(ws)
        policy.proxy = ProxySettings(host: "127.0.0.1", port: proxy.port)
        let outcome = try await withFetcher(policy) {
            try await $0.fetch(server.url("/file?size=100000&name=p"), to: ws.path("p"), validators: nil)
        }
        guard case .downloaded(100000, _, false) = outcome else { Issue.record("\(outcome)"); return }
        #expect(ws.read("p") == expectedContent(100000))
        #expect(proxy.log.contains("CONNECT 127.0.0.1:\(server.port)"))
        #expect(server.requests().count == 1)
    }

    @Test func fetchesThroughTheEnvironmentProxy() async throws {
        let ws = Workspace("envproxy")
        let server = try FaultServer(ws)
        let proxy = try TinyProxy(ws)
        defer { server.stop(); proxy.stop() }
        var policy = testPolicy(ws)
        policy.environment = ["http_proxy": "http://127.0.0.1:\(proxy.port)"]
        let bytes = try await withFetcher(policy) { try await $0.fetchSmall(server.url("/file?size=100"), limit: 1000) }
        #expect(bytes == expectedContent(100))
        #expect(proxy.log.contains("CONNECT 127.0.0.1:\(server.port)"))
    }

    @Test func noProxyGoesDirect() async throws {
        let ws = Workspace("noproxy")
        let server = try FaultServer(ws)
        let proxy = try TinyProxy(ws)
        defer { server.stop(); proxy.stop() }
        var policy = testPolicy(ws)
        policy.environment = ["http_proxy": "http://127.0.0.1:\(proxy.port)", "no_proxy": "localhost,127.0.0.1"]
        let bytes = try await withFetcher(policy) { try await $0.fetchSmall(server.url("/file?size=100"), limit: 1000) }
        #expect(bytes == expectedContent(100))
        #expect(!proxy.log.contains("CONNECT 127.0.0.1:\(server.port)"))
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
        defer { server.stop(); proxy.stop() }
        let logs = LogCapture()

        var policy = testPolicy(ws, retryFor: 5)
        policy.proxy = try ProxySettings.parse("http://courier:\(password)@127.0.0.1:\(proxy.port)")
        let outcome = try await withFetcher(policy, logger: logs.logger()) {
            try await $0.fetch(server.url("/file?size=5000"), to: ws.path("a"), validators: nil)
        }
        guard case .downloaded(5000, _, false) = outcome else { Issue.record("\(outcome)"); return }
        #expect(proxy.log.contains("CONNECT 127.0.0.1:\(server.port)"))
        let served = server.requests().count
        #expect(served == 1)

        // Wrong password: .proxy, 407 in words, no retry, and the secret nowhere.
        let wrong = "Wr0ng-passw0rd"
        policy.proxy = try ProxySettings.parse("http://courier:\(wrong)@127.0.0.1:\(proxy.port)")
        let start = Date()
        let e = await courierError {
            _ = try await withFetcher(policy, logger: logs.logger()) {
                try await $0.fetch(server.url("/file?size=5000"), to: ws.path("b"), validators: nil)
            }
        }
        #expect(e?.code == .proxy)
        // tinyproxy answers wrong credentials with 401 (and missing ones with 407).
        #expect(e?.message.contains("proxy authentication required (401 from proxy http://courier:***@") == true,
                "\(String(describing: e))")
        #expect(Date().timeIntervalSince(start) < 3)
        #expect(server.requests().count == served)

        // No credentials at all.
        policy.proxy = ProxySettings(host: "127.0.0.1", port: proxy.port)
        let none = await courierError {
            _ = try await withFetcher(policy, logger: logs.logger()) { try await $0.fetchSmall(server.url("/file"), limit: 5000) }
        }
        #expect(none?.code == .proxy)
        #expect(none?.message.contains("proxy authentication required (407) by proxy http://127.0.0.1:\(proxy.port): no credentials configured") == true,
                "\(String(describing: none))")

        // Credentials from the environment variable, wrong, also end up nowhere.
        policy.proxy = nil
        policy.environment = ["http_proxy": "http://courier:\(wrong)@127.0.0.1:\(proxy.port)"]
        let env = await courierError {
            _ = try await withFetcher(policy, logger: logs.logger()) { try await $0.fetchSmall(server.url("/file"), limit: 5000) }
        }
        #expect(env?.code == .proxy)

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
        let e = await courierError {
            _ = try await withFetcher(policy) { try await $0.fetchSmall("http://127.0.0.1:9/x", limit: 10) }
        }
        #expect(e?.code == .proxy)
        #expect(e?.message == "http://127.0.0.1:9/x: proxy http://u:***@127.0.0.1:\(port): connection refused",
                "\(String(describing: e))")
    }
}
