import CourierCore
import Foundation
import Testing

@testable import CourierFetch

/// Per-type request settings against real servers: headers and basic auth (secrets), the rate
/// cap, and a private CA for https://.
@Suite(.serialized) struct HTTPBehaviourTests {
    @Test func headersAndBasicAuthReachTheServerButNoLogOrMessage() async throws {
        let ws = Workspace("secrets")
        let server = try FaultServer(ws)
        defer { server.stop() }
        let token = "tok-3f9a1c77-planted"
        let password = "pw-8b2e-planted"
        let logs = LogCapture()
        var policy = testPolicy(ws)
        policy.headers = ["X-Api-Key": token]
        policy.basicAuth = BasicAuth(user: "courier", password: password)
        _ = try await withFetcher(policy, logger: logs.logger()) {
            try await $0.fetch(server.url("/file?size=100"), to: ws.path("a"), validators: nil)
        }
        let basic = "Basic " + Data("courier:\(password)".utf8).base64EncodedString()
        let h = server.requests().last?.headers ?? [:]
        #expect(h["X-Api-Key"] == token && h["Authorization"] == basic, "\(h)")
        // A failure's message and the trace log carry neither.
        let e = await expectCourierError {
            _ = try await withFetcher(policy, logger: logs.logger()) {
                try await $0.fetch(server.url("/notfound"), to: ws.path("b"), validators: nil)
            }
        }
        #expect(e != nil)
        #expect(!logs.all.isEmpty)
        for text in logs.all + [e?.description ?? "", "\(policy.basicAuth!)"] {
            #expect(
                !text.contains(token) && !text.contains(password) && !text.contains(String(basic.dropFirst(6))),
                "\(text)")
        }
    }

    @Test func maxRateHoldsA20MiBDownloadToTheCap() async throws {
        let ws = Workspace("rate")
        let server = try FaultServer(ws)
        defer { server.stop() }
        var policy = testPolicy(ws)
        policy.maxRate = 3 << 20  // 3 MiB/s: 20 MiB in about 6.7 s
        let size = 20 << 20
        let start = ContinuousClock.now
        let outcome = try await withFetcher(policy) {
            try await $0.fetch(server.url("/file?size=\(size)&name=r"), to: ws.path("r"), validators: nil)
        }
        let d = ContinuousClock.now - start
        let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        guard case .downloaded(Int64(size), _, false) = outcome else {
            Issue.record("\(outcome)")
            return
        }
        let expected = Double(size) / Double(policy.maxRate!)
        #expect(abs(seconds - expected) / expected <= 0.15, "took \(seconds) s, expected \(expected) s ± 15 %")
    }

    @Test func privateCAIsAcceptedViaCAFileAndRefusedWithout() async throws {
        let ws = Workspace("ca")
        let ca = try PrivateCA(ws)
        let server = try FaultServer(ws, tls: (ca.certPath, ca.keyPath))
        defer { server.stop() }
        let url = server.url("/file?size=2000&name=tls")
        #expect(url.hasPrefix("https://127.0.0.1:"))

        // The system store does not know the private CA: a TLS failure, not retried.
        let refused = await expectCourierError {
            _ = try await withFetcher(testPolicy(ws, retryFor: 5)) {
                try await $0.fetch(url, to: ws.path("x"), validators: nil)
            }
        }
        #expect(
            refused?.code == .download && refused?.message.contains("TLS failed") == true,
            "\(String(describing: refused))")
        #expect(server.requests().isEmpty)

        for mode in CAMode.allCases {
            var policy = testPolicy(ws)
            policy.caFile = ca.caPath
            policy.caMode = mode
            let outcome = try await withFetcher(policy) {
                try await $0.fetch(url, to: ws.path("ok-\(mode)"), validators: nil)
            }
            guard case .downloaded(2000, _, false) = outcome else {
                Issue.record("\(mode): \(outcome)")
                continue
            }
            #expect(ws.read("ok-\(mode)") == expectedContent(2000))
        }
        // A directory of PEM files does the same.
        let dir = ws.path("cadir")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: ca.caPath, toPath: dir + "/private.crt")
        var policy = testPolicy(ws)
        policy.caDir = dir
        policy.caMode = .replace
        _ = try await withFetcher(policy) { try await $0.fetchSmall(url, limit: 5000) }

        // Not PEM: a configuration error naming the file.
        try "not a certificate\n".write(toFile: ws.path("bad.pem"), atomically: true, encoding: .utf8)
        policy.caDir = nil
        policy.caFile = ws.path("bad.pem")
        let bad = await expectCourierError {
            _ = try await withFetcher(policy) { try await $0.fetchSmall(url, limit: 5000) }
        }
        #expect(bad?.code == .config && bad?.message.contains("bad.pem") == true, "\(String(describing: bad))")
    }
}
