import CourierCore
import Foundation
import Testing

@testable import CourierFetch

/// Mirrors, cool-downs and `min_interval` against real servers on 127.0.0.1: each mirror is its
/// own fault server (cool-downs are per host:port), a refused mirror is a port nobody listens on.
@Suite(.serialized) struct MirrorTests {
    func stateJSON(_ ws: Workspace, _ name: String) -> [String: Any] {
        guard let d = ws.read("state/" + name),
            let o = try? JSONSerialization.jsonObject(with: Data(d)) as? [String: Any]
        else { return [:] }
        return o
    }

    @Test func threeMirrorsFailOverAndTheFailuresAreTriedLastNextRun() async throws {
        let ws = Workspace("mirrors")
        let forbidden = try FaultServer(ws, name: "forbidden")
        let good = try FaultServer(ws, name: "good")
        defer {
            forbidden.stop()
            good.stop()
        }
        let refused = "http://127.0.0.1:\(try freePort())/feed"
        let mirrors = [refused, forbidden.url("/forbidden"), good.url("/file?size=5000&name=m")]
        let logs = LogCapture()
        let policy = testPolicy(ws, retryFor: 5)

        let served = try await withFetcher(policy, logger: logs.logger()) {
            try await $0.fetch(mirrors: mirrors, to: ws.path("m"), validators: { _ in nil })
        }
        #expect(served.index == 2 && served.mirror == mirrors[2])
        guard case .downloaded(5000, _, false) = served.value else {
            Issue.record("\(served.value)")
            return
        }
        #expect(ws.read("m") == expectedContent(5000))
        #expect(logs.all.contains { $0.contains("served by mirror 3 of 3") })
        // Both failures are remembered, the 403 also as a cool-down of its host.
        let failed = stateJSON(ws, "mirrors.json")
        #expect(Set(failed.keys) == [mirrors[0], mirrors[1]], "\(failed)")
        let cool = stateJSON(ws, "cooldown.json")["127.0.0.1:\(forbidden.port)"] as? [String: Any]
        #expect(
            cool?["kind"] as? String == "forbidden" && cool?["status"] as? Int == 403, "\(String(describing: cool))")
        #expect(forbidden.requests().count == 1 && good.requests().count == 1)

        // The next run (a new fetcher): the good mirror first, the refused one after it, the
        // forbidden host not contacted at all while it cools down.
        let logs2 = LogCapture()
        let again = try await withFetcher(testPolicy(ws, retryFor: 5), logger: logs2.logger()) { f in
            #expect(f.mirrorOrder(mirrors) == [mirrors[2], mirrors[0], mirrors[1]])
            return try await f.fetch(mirrors: mirrors, to: ws.path("m2"), validators: { _ in nil })
        }
        #expect(again.index == 2)
        #expect(
            logs2.all.contains {
                $0.contains("mirror order")
                    && $0.contains("\(mirrors[2]), \(mirrors[0]) (failed recently), \(mirrors[1]) (failed recently)")
            },
            "\(logs2.all)")
        #expect(forbidden.requests().count == 1, "a host cooling down after 403 is not asked")
        #expect(good.requests().count == 2)
        #expect(
            !logs2.all.contains { $0.contains("attempt failed") || $0.contains("mirror failed") },
            "the first mirror tried served")
    }

    @Test func allMirrorsFailingNamesEachReason() async throws {
        let ws = Workspace("allfail")
        let server = try FaultServer(ws)
        defer { server.stop() }
        let mirrors = ["http://127.0.0.1:\(try freePort())/x", server.url("/notfound")]
        let e = await expectCourierError {
            _ = try await withFetcher(testPolicy(ws)) {
                try await $0.fetch(mirrors: mirrors, to: ws.path("x"), validators: { _ in nil })
            }
        }
        #expect(e?.message.hasPrefix("all 2 mirrors failed: mirror 1: ") == true, "\(String(describing: e))")
        #expect(
            e?.message.contains("connection refused") == true
                && e?.message.contains("mirror 2: \(mirrors[1]): HTTP 404") == true)
    }

    @Test func validatorsAndResumeArePerMirror() async throws {
        let ws = Workspace("validators")
        let a = try FaultServer(ws, name: "a")
        let b = try FaultServer(ws, name: "b")
        defer {
            a.stop()
            b.stop()
        }
        // Both serve the same bytes, under different ETags ("a-1000" and "b-1000").
        let ma = a.url("/file?size=1000&name=a")
        let mb = b.url("/file?size=1000&name=b")
        let va = Validators(etag: "\"a-1000\"", lastModified: nil)
        // Mirror A is gone; B must not be asked with A's validators (B would rightly answer 200,
        // but a server that ignored ETags and compared dates could answer 304 for the wrong file).
        a.stop()
        var asked: [String] = []
        let first = try await withFetcher(testPolicy(ws)) {
            try await $0.fetch(
                mirrors: [ma, mb], to: ws.path("f"),
                validators: {
                    asked.append($0)
                    return $0 == ma ? va : nil
                })
        }
        #expect(first.index == 1)
        guard case .downloaded(1000, let vb, _) = first.value else {
            Issue.record("\(first.value)")
            return
        }
        #expect(b.requests().last?.ifNoneMatch == nil, "A's ETag never goes to B")
        #expect(asked == [ma, mb], "each mirror is asked for its own validators")
        // With B's own validators, B answers 304.
        let second = try await withFetcher(testPolicy(ws)) {
            try await $0.fetch(mirrors: [ma, mb], to: ws.path("f"), validators: { $0 == mb ? vb : nil })
        }
        #expect(second.value == .notModified && second.index == 1)
        #expect(b.requests().last?.ifNoneMatch == "\"b-1000\"")

        // A partial from mirror B is not resumed from mirror C.
        let c = try FaultServer(ws, name: "c")
        defer { c.stop() }
        try Data(expectedContent(400)).write(to: URL(fileURLWithPath: ws.path("g.partial")))
        try JSONSerialization.data(withJSONObject: ["url": b.url("/file?size=1000&name=b"), "etag": "\"b-1000\""])
            .write(to: URL(fileURLWithPath: ws.path("g.partial.json")))
        let third = try await withFetcher(testPolicy(ws)) {
            try await $0.fetch(mirrors: [c.url("/file?size=1000&name=c")], to: ws.path("g"), validators: { _ in nil })
        }
        guard case .downloaded(1000, _, false) = third.value else {
            Issue.record("\(third.value)")
            return
        }
        #expect(c.requests().last?.range == nil)
    }

    @Test func forbiddenCoolsTheHostDownAcrossRuns() async throws {
        let ws = Workspace("forbidden")
        let server = try FaultServer(ws)
        defer { server.stop() }
        var policy = testPolicy(ws, retryFor: 5)
        policy.forbiddenCoolDown = 3600
        let e1 = await expectCourierError {
            _ = try await withFetcher(policy) {
                try await $0.fetch(server.url("/forbidden"), to: ws.path("x"), validators: nil)
            }
        }
        #expect(e1?.code == .download && e1?.message.contains("HTTP 403") == true, "\(String(describing: e1))")
        #expect(server.requests().count == 1, "403 is not retried")
        // The next run: not contacted, with the cool-down's message.
        let e2 = await expectCourierError {
            _ = try await withFetcher(policy) {
                try await $0.fetch(server.url("/file"), to: ws.path("x"), validators: nil)
            }
        }
        #expect(
            e2?.message.contains("answered HTTP 403 Forbidden; not asked again for 3600s, until ") == true,
            "\(String(describing: e2))")
        #expect(server.requests().count == 1)
    }

    @Test func busyWithoutRetryAfterCoolsDownExponentiallyAcrossRuns() async throws {
        let ws = Workspace("busy")
        let server = try FaultServer(ws)
        defer { server.stop() }
        var policy = testPolicy(ws)  // no retry window: one attempt, then the cool-down
        policy.busyCoolDown = 1
        let e1 = await expectCourierError {
            _ = try await withFetcher(policy) {
                try await $0.fetch(server.url("/busy/k?status=429"), to: ws.path("x"), validators: nil)
            }
        }
        #expect(e1?.message.contains("HTTP 429") == true, "\(String(describing: e1))")
        var entry = stateJSON(ws, "cooldown.json")["127.0.0.1:\(server.port)"] as? [String: Any]
        #expect(
            entry?["kind"] as? String == "busy" && entry?["strikes"] as? Int == 1 && entry?["retryAfter"] as? Int == 1,
            "\(String(describing: entry))")
        // Within the cool-down: not contacted.
        let e2 = await expectCourierError {
            _ = try await withFetcher(policy) {
                try await $0.fetch(server.url("/busy/k?status=429"), to: ws.path("x"), validators: nil)
            }
        }
        #expect(
            e2?.message.contains("without Retry-After (1 time in a row); cooling down for 1s") == true,
            "\(String(describing: e2))")
        #expect(server.requests().count == 1)
        // After it: busy again, and the next cool-down is twice as long; then 4 s (503 too).
        try await Task.sleep(for: .milliseconds(2100))
        await expectCourierError {
            _ = try await withFetcher(policy) {
                try await $0.fetch(server.url("/busy/k?status=503"), to: ws.path("x"), validators: nil)
            }
        }
        entry = stateJSON(ws, "cooldown.json")["127.0.0.1:\(server.port)"] as? [String: Any]
        #expect(
            entry?["strikes"] as? Int == 2 && entry?["retryAfter"] as? Int == 2 && entry?["status"] as? Int == 503,
            "\(String(describing: entry))")
        #expect(server.requests().count == 2)
        // A success clears the host's record.
        try await Task.sleep(for: .milliseconds(3100))
        _ = try await withFetcher(policy) {
            try await $0.fetch(server.url("/file?size=10"), to: ws.path("ok"), validators: nil)
        }
        #expect(stateJSON(ws, "cooldown.json")["127.0.0.1:\(server.port)"] == nil)
    }

    @Test func minIntervalSkipsAHostContactedByAnEarlierRun() async throws {
        let ws = Workspace("mininterval")
        let server = try FaultServer(ws)
        defer { server.stop() }
        var policy = testPolicy(ws)
        policy.minInterval = 3600
        _ = try await withFetcher(policy) {
            try await $0.fetch(server.url("/file?size=10"), to: ws.path("a"), validators: nil)
        }
        // The same run may come back (a checksum file after the download).
        _ = try await withFetcher(policy) {
            try await $0.fetch(server.url("/file?size=10"), to: ws.path("b"), validators: nil)
        }
        #expect(server.requests().count == 2)
        // A later run may not.
        policy.runStarted = CoolDownStore.now() + 1
        let e = await expectCourierError {
            _ = try await withFetcher(policy) {
                try await $0.fetch(server.url("/file?size=10"), to: ws.path("c"), validators: nil)
            }
        }
        #expect(
            e?.code == .minInterval
                && e?.message.hasPrefix("min_interval: 127.0.0.1:\(server.port) was contacted ") == true,
            "\(String(describing: e))")
        #expect(server.requests().count == 2)
        // Small files (checksums, signatures) are not gated.
        _ = try await withFetcher(policy) { try await $0.fetchSmall(server.url("/file?size=10"), limit: 100) }
        #expect(server.requests().count == 3)
    }
}
