import CourierCore
import Foundation
import Testing

@testable import CourierFetch

/// The fetcher against a real HTTP server on 127.0.0.1 (Tests/Support/faultserver.py), one
/// server per test. Serialized: several tests assert on elapsed time, which two cores running
/// five downloads at once would make flaky.
@Suite(.serialized) struct FetcherTests {
    // MARK: - Conditional GET

    @Test func happyPathWritesTheExactFileAtomically() async throws {
        let ws = Workspace("happy")
        let server = try FaultServer(ws)
        defer { server.stop() }
        let dest = ws.path("a.bin")
        let outcome = try await withFetcher(testPolicy(ws)) {
            try await $0.fetch(server.url("/file?size=300000&name=a"), to: dest, validators: nil)
        }
        #expect(
            outcome
                == .downloaded(
                    bytes: 300000,
                    validators: Validators(etag: "\"a-300000\"", lastModified: "Wed, 21 Oct 2015 07:28:00 GMT"),
                    resumed: false))
        #expect(ws.read("a.bin") == expectedContent(300000))
        #expect(!ws.exists("a.bin.partial") && !ws.exists("a.bin.partial.json"))
        let reqs = server.requests()
        #expect(reqs.count == 1)
        #expect(reqs.first?.userAgent == "courier-stage/test")
        #expect(reqs.first?.range == nil)
    }

    @Test func notModifiedIsANoOp() async throws {
        let ws = Workspace("304")
        let server = try FaultServer(ws)
        defer { server.stop() }
        let dest = ws.path("a.bin")
        try await withFetcher(testPolicy(ws)) { f in
            guard
                case .downloaded(_, let v, _) = try await f.fetch(server.url("/file?name=a"), to: dest, validators: nil)
            else {
                Issue.record("expected a download")
                return
            }
            try Data("kept".utf8).write(to: URL(fileURLWithPath: dest))
            #expect(try await f.fetch(server.url("/file?name=a"), to: dest, validators: v) == .notModified)
            // Last-Modified alone is a condition too.
            #expect(
                try await f.fetch(
                    server.url("/file?name=a"), to: dest,
                    validators: Validators(lastModified: v.lastModified)) == .notModified)
        }
        #expect(ws.read("a.bin") == Array("kept".utf8))
        let reqs = server.requests()
        #expect(reqs.count == 3)
        #expect(reqs[1].ifNoneMatch == "\"a-1000\"")
        #expect(reqs[2].ifModifiedSince == "Wed, 21 Oct 2015 07:28:00 GMT")
        #expect(!ws.exists("a.bin.partial"))
    }

    @Test func notFoundFailsAtOnceWithoutRetry() async throws {
        let ws = Workspace("404")
        let server = try FaultServer(ws)
        defer { server.stop() }
        let start = Date()
        let e = await expectCourierError(.download) {
            _ = try await withFetcher(testPolicy(ws, retryFor: 30)) {
                try await $0.fetch(server.url("/notfound"), to: ws.path("x"), validators: nil)
            }
        }
        #expect(e?.message == "\(server.url("/notfound")): HTTP 404 Not Found")
        #expect(e?.httpStatus == 404)
        #expect(server.requests().count == 1)
        #expect(Date().timeIntervalSince(start) < 5)
        #expect(!ws.exists("x") && !ws.exists("x.partial"))
    }

    // MARK: - Retries

    @Test func serverErrorThenSuccessWithinTheWindow() async throws {
        let ws = Workspace("500")
        let server = try FaultServer(ws)
        defer { server.stop() }
        let outcome = try await withFetcher(testPolicy(ws, retryFor: 20)) {
            try await $0.fetch(server.url("/flaky/k1?fail=2&size=5000"), to: ws.path("f"), validators: nil)
        }
        guard case .downloaded(5000, _, false) = outcome else {
            Issue.record("\(outcome)")
            return
        }
        #expect(ws.read("f") == expectedContent(5000))
        #expect(server.requests().count == 3)
    }

    @Test func serverErrorOutlastingTheWindowGivesUp() async throws {
        let ws = Workspace("500x")
        let server = try FaultServer(ws)
        defer { server.stop() }
        let start = Date()
        let e = await expectCourierError(.download) {
            _ = try await withFetcher(testPolicy(ws, retryFor: 1)) {
                try await $0.fetch(server.url("/flaky/k2?fail=1000"), to: ws.path("f"), validators: nil)
            }
        }
        #expect(e?.message.contains("HTTP 500 Internal Server Error") == true)
        #expect(e?.message.contains("gave up after") == true, "\(String(describing: e))")
        #expect(server.requests().count >= 2)
        #expect(Date().timeIntervalSince(start) < 4)
    }

    @Test func connectionRefusedIsANetworkError() async throws {
        let ws = Workspace("refused")
        let port = try freePort()
        let start = Date()
        let e = await expectCourierError(.network) {
            _ = try await withFetcher(testPolicy(ws)) {
                try await $0.fetch("http://127.0.0.1:\(port)/x", to: ws.path("f"), validators: nil)
            }
        }
        #expect(e?.message == "http://127.0.0.1:\(port)/x: connection refused", "\(String(describing: e))")
        #expect(Date().timeIntervalSince(start) < 3)
    }

    // MARK: - Retry-After and cool-down

    @Test func shortRetryAfterIsWaitedFor() async throws {
        let ws = Workspace("ra1")
        let server = try FaultServer(ws)
        defer { server.stop() }
        let start = Date()
        try await withFetcher(testPolicy(ws, retryFor: 10)) { f in
            _ = try await f.fetch(server.url("/retry-after/k1?secs=1"), to: ws.path("a"), validators: nil)
            // The HTTP-date form as well (whole seconds, so somewhere in 0...2 s).
            _ = try await f.fetch(
                server.url("/retry-after/k2?secs=2&date=1&status=429"), to: ws.path("b"), validators: nil)
        }
        #expect(Date().timeIntervalSince(start) >= 1.0)
        #expect(ws.read("a") == expectedContent(1000))
        #expect(ws.read("b") == expectedContent(1000))
        #expect(server.requests().count == 4)
        #expect(!ws.exists("state/cooldown.json"))
    }

    @Test func longRetryAfterPersistsACoolDownHonouredByTheNextRun() async throws {
        let ws = Workspace("ra3600")
        let server = try FaultServer(ws)
        defer { server.stop() }
        let url = server.url("/retry-after/k?secs=3600&times=1000")
        let first = await expectCourierError(.download) {
            _ = try await withFetcher(testPolicy(ws, retryFor: 10)) {
                try await $0.fetch(url, to: ws.path("a"), validators: nil)
            }
        }
        let authority = "127.0.0.1:\(server.port)"
        #expect(
            first?.message.hasPrefix(
                "\(url): \(authority) answered HTTP 503 and asked to retry after 3600s; cooling down until ") == true,
            "\(String(describing: first))")
        #expect(server.requests().count == 1)

        // The persisted state: host -> until.
        let state =
            try JSONSerialization.jsonObject(with: Data(ws.read("state/cooldown.json") ?? []))
            as? [String: [String: Any]]
        let until = state?[authority]?["until"] as? Int
        #expect(until != nil && abs(until! - Int(Date().timeIntervalSince1970) - 3600) < 10)
        #expect(first?.message.hasSuffix(RFC3339.format(Int64(until ?? 0))) == true)

        // A later run (a new fetcher, same state directory) does not contact the host at all,
        // for this URL or any other on it, and says the same thing.
        let start = Date()
        try await withFetcher(testPolicy(ws, retryFor: 10)) { f in
            let again = await expectCourierError(.download) {
                _ = try await f.fetch(url, to: ws.path("a"), validators: nil)
            }
            #expect(again?.message == first?.message)
            let other = await expectCourierError { _ = try await f.fetchSmall(server.url("/file"), limit: 1 << 20) }
            #expect(other?.message.contains("cooling down until") == true)
        }
        #expect(Date().timeIntervalSince(start) < 1)
        #expect(server.requests().count == 1)

        // Another state directory knows nothing of it.
        var fresh = testPolicy(ws)
        fresh.stateDir = ws.path("other-state")
        let bytes = try await withFetcher(fresh) { try await $0.fetchSmall(server.url("/file?size=10"), limit: 100) }
        #expect(bytes == expectedContent(10))
    }

    // MARK: - Truncation and resume

    @Test func truncatedBodyIsResumedWithRange() async throws {
        let ws = Workspace("trunc")
        let server = try FaultServer(ws)
        defer { server.stop() }
        let outcome = try await withFetcher(testPolicy(ws, retryFor: 10)) {
            try await $0.fetch(server.url("/truncated/k?size=200000&cut=50000"), to: ws.path("t"), validators: nil)
        }
        #expect(
            outcome
                == .downloaded(
                    bytes: 200000,
                    validators: Validators(etag: "\"f-200000\"", lastModified: "Wed, 21 Oct 2015 07:28:00 GMT"),
                    resumed: true))
        #expect(ws.read("t") == expectedContent(200000))
        let reqs = server.requests()
        #expect(reqs.count == 2)
        #expect(reqs.first?.range == nil)
        // async-http-client drops body parts it had buffered when the connection fails, so the
        // resume point is "what reached the disk", at most the 50000 bytes the server sent.
        let start = reqs.last?.range.flatMap { Int($0.dropFirst("bytes=".count).dropLast()) }
        #expect(start != nil && start! > 0 && start! <= 50000, "\(String(describing: reqs.last?.range))")
        #expect(reqs.last?.range == "bytes=\(start ?? -1)-")
        #expect(reqs.last?.ifRange == "\"f-200000\"")
        #expect(!ws.exists("t.partial") && !ws.exists("t.partial.json"))
    }

    @Test func truncatedBodyWithoutRetriesLeavesAResumablePartial() async throws {
        let ws = Workspace("trunc0")
        let server = try FaultServer(ws)
        defer { server.stop() }
        let url = server.url("/truncated/k?size=200000&cut=50000")
        let e = await expectCourierError(.download) {
            _ = try await withFetcher(testPolicy(ws)) { try await $0.fetch(url, to: ws.path("t"), validators: nil) }
        }
        let have = ws.read("t.partial")?.count ?? 0
        #expect(have > 0 && have <= 50000)
        #expect(ws.read("t.partial") == expectedContent(have))
        #expect(e?.message == "\(url): truncated: got \(have) of 200000 bytes")
        #expect(ws.exists("t.partial.json") && !ws.exists("t"))
        // The next run picks it up.
        let outcome = try await withFetcher(testPolicy(ws)) {
            try await $0.fetch(url, to: ws.path("t"), validators: nil)
        }
        guard case .downloaded(200000, _, true) = outcome else {
            Issue.record("\(outcome)")
            return
        }
        #expect(ws.read("t") == expectedContent(200000))
    }

    /// What a process killed mid-download leaves: the first half and the sidecar.
    private func leavePartial(_ ws: Workspace, _ name: String, url: String, bytes: Int, etag: String?) throws {
        try Data(expectedContent(bytes)).write(to: URL(fileURLWithPath: ws.path(name + ".partial")))
        if let etag {
            let side = ["url": url, "etag": etag]
            try JSONSerialization.data(withJSONObject: side).write(
                to: URL(fileURLWithPath: ws.path(name + ".partial.json")))
        }
    }

    @Test func resumesAPartialLeftBehind() async throws {
        let ws = Workspace("resume")
        let server = try FaultServer(ws)
        defer { server.stop() }
        let url = server.url("/file?size=2000000&name=r")
        try leavePartial(ws, "r", url: url, bytes: 1_000_000, etag: "\"r-2000000\"")
        let outcome = try await withFetcher(testPolicy(ws)) {
            try await $0.fetch(url, to: ws.path("r"), validators: nil)
        }
        guard case .downloaded(2_000_000, _, true) = outcome else {
            Issue.record("\(outcome)")
            return
        }
        #expect(ws.read("r") == expectedContent(2_000_000))
        let reqs = server.requests()
        #expect(reqs.count == 1)
        #expect(reqs.first?.range == "bytes=1000000-")
        #expect(reqs.first?.ifRange == "\"r-2000000\"")
    }

    @Test func stalePartialIsReplacedNotAppendedTo() async throws {
        let ws = Workspace("stale")
        let server = try FaultServer(ws)
        defer { server.stop() }
        let url = server.url("/file?size=300000&name=s")
        // A partial of an older version: the server's If-Range check fails and it sends all of it.
        try leavePartial(ws, "s", url: url, bytes: 100_000, etag: "\"s-older\"")
        let outcome = try await withFetcher(testPolicy(ws)) {
            try await $0.fetch(url, to: ws.path("s"), validators: nil)
        }
        guard case .downloaded(300_000, _, false) = outcome else {
            Issue.record("\(outcome)")
            return
        }
        #expect(ws.read("s") == expectedContent(300_000))
        // A partial without a sidecar is of unknown origin: no Range at all.
        try leavePartial(ws, "u", url: url, bytes: 100_000, etag: nil)
        _ = try await withFetcher(testPolicy(ws)) { try await $0.fetch(url, to: ws.path("u"), validators: nil) }
        #expect(ws.read("u") == expectedContent(300_000))
        // A partial longer than the resource (416 to the Range): dropped, and fetched afresh at once.
        let shortURL = server.url("/file?size=50000&name=q")
        try leavePartial(ws, "q", url: shortURL, bytes: 60_000, etag: "\"q-50000\"")
        let q = try await withFetcher(testPolicy(ws)) {
            try await $0.fetch(shortURL, to: ws.path("q"), validators: nil)
        }
        guard case .downloaded(50_000, _, false) = q else {
            Issue.record("\(q)")
            return
        }
        #expect(ws.read("q") == expectedContent(50_000))
        let reqs = server.requests()
        #expect(reqs.count == 4)
        #expect(reqs[0].range == "bytes=100000-" && reqs[0].ifRange == "\"s-older\"")
        #expect(reqs[1].range == nil)
        #expect(reqs[2].range == "bytes=60000-" && reqs[3].range == nil)
    }

    // MARK: - Bounds: time, size, redirects

    @Test func slowServerHitsTheReadTimeout() async throws {
        let ws = Workspace("slow")
        let server = try FaultServer(ws)
        defer { server.stop() }
        var policy = testPolicy(ws)
        policy.readTimeout = 1
        let start = Date()
        let e = await expectCourierError(.network) {
            _ = try await withFetcher(policy) {
                try await $0.fetch(server.url("/slow?delay=20"), to: ws.path("s"), validators: nil)
            }
        }
        #expect(e?.message == "\(server.url("/slow?delay=20")): timed out after 1s without data")
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test func stallInTheBodyHitsTheIdleTimeout() async throws {
        let ws = Workspace("stall")
        let server = try FaultServer(ws)
        defer { server.stop() }
        var policy = testPolicy(ws)
        policy.readTimeout = 1
        let start = Date()
        let url = server.url("/stall?size=100000&after=1000&delay=20")
        let e = await expectCourierError(.network) {
            _ = try await withFetcher(policy) { try await $0.fetch(url, to: ws.path("s"), validators: nil) }
        }
        #expect(e?.message == "\(url): timed out after 1s without data (got 1000 of 100000 bytes)")
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test func endlessBodyIsCutAtMaxBytes() async throws {
        let ws = Workspace("endless")
        let server = try FaultServer(ws)
        defer { server.stop() }
        var policy = testPolicy(ws, retryFor: 30)
        policy.maxBytes = 8 << 20
        let start = Date()
        let e = await expectCourierError(.limit) {
            _ = try await withFetcher(policy) {
                try await $0.fetch(server.url("/endless"), to: ws.path("e"), validators: nil)
            }
        }
        #expect(e?.message == "\(server.url("/endless")): body exceeds the limit of \(8 << 20) bytes; download stopped")
        #expect(!ws.exists("e") && !ws.exists("e.partial") && !ws.exists("e.partial.json"))
        #expect(server.requests().count == 1)  // a limit is not retried
        #expect(Date().timeIntervalSince(start) < 10)

        // An announced length over the limit is refused before the body.
        policy.maxBytes = 100_000
        let big = await expectCourierError(.limit) {
            _ = try await withFetcher(policy) {
                try await $0.fetch(server.url("/file?size=200000"), to: ws.path("b"), validators: nil)
            }
        }
        #expect(big?.message.contains("announces 200000 bytes") == true)
    }

    @Test func redirectsAreFollowedAndBounded() async throws {
        let ws = Workspace("redir")
        let server = try FaultServer(ws)
        defer { server.stop() }
        var policy = testPolicy(ws, retryFor: 10)
        policy.maxRedirects = 5
        try await withFetcher(policy) { f in
            _ = try await f.fetch(server.url("/redirect/3"), to: ws.path("r"), validators: nil)
            #expect(ws.read("r") == expectedContent(1000))
            let tooMany = await expectCourierError(.download) {
                _ = try await f.fetch(server.url("/redirect/9"), to: ws.path("r9"), validators: nil)
            }
            #expect(tooMany?.message == "\(server.url("/redirect/9")): more than 5 redirects")
            let loop = await expectCourierError(.download) {
                _ = try await f.fetch(server.url("/loop/a"), to: ws.path("l"), validators: nil)
            }
            #expect(loop?.message.contains("redirect loop") == true)
        }
        // 4 for /redirect/3, at most 6 for /redirect/9, and the loop stops when it comes back to /loop/a.
        let loops = server.requests().filter { $0.path.hasPrefix("/loop/") }
        #expect(loops.count == 2)
    }

    // MARK: - Small bodies and large ones

    @Test func fetchSmallIsBounded() async throws {
        let ws = Workspace("small")
        let server = try FaultServer(ws)
        defer { server.stop() }
        try await withFetcher(testPolicy(ws)) { f in
            let ok = try await f.fetchSmall(server.url("/file?size=500"), limit: 500)
            #expect(ok == expectedContent(500))
            await expectCourierError(.limit) { _ = try await f.fetchSmall(server.url("/file?size=501"), limit: 500) }
            await expectCourierError(.limit) { _ = try await f.fetchSmall(server.url("/endless"), limit: 1 << 20) }
            let missing = await expectCourierError { _ = try await f.fetchSmall(server.url("/notfound"), limit: 500) }
            #expect(missing?.code == .download && missing?.message.contains("HTTP 404") == true)
        }
    }

    @Test func largeDownloadStreamsToDisk() async throws {
        let ws = Workspace("big")
        let server = try FaultServer(ws)
        defer { server.stop() }
        let start = Date()
        let outcome = try await withFetcher(testPolicy(ws)) {
            try await $0.fetch(server.url("/big"), to: ws.path("big"), validators: nil)
        }
        let secs = Date().timeIntervalSince(start)
        guard case .downloaded(let n, _, false) = outcome else {
            Issue.record("\(outcome)")
            return
        }
        #expect(n == 64 << 20)
        #expect(ws.read("big") == expectedContent(64 << 20))
        print("64 MiB from loopback in \(String(format: "%.2f", secs)) s (\(String(format: "%.0f", 64 / secs)) MiB/s)")
    }
}
