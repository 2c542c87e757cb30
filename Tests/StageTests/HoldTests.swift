import CourierCore
import CourierStage
import Foundation
import Testing

/// Issue #12.5: a revision that a delivery policy (or `hold`) still names survives retention, and
/// a named revision missing from the outbox is a warning in every run.
@Suite struct HoldTests {
    func publish(_ w: StageWorkspace, _ rev: Int) {
        w.write("up/\(rev)/main.ndb", String(repeating: "Sig:\(rev):*:abcdef\n", count: 50))
    }

    @Test func heldRevisionsSurviveTenPublicationsWithKeepTwo() async throws {
        let w = StageWorkspace()
        w.write(
            "policy.toml",
            """
            [groups.pilot]
            inboxes = ["/srv/pilot/*/inbox"]
            types = { virus-defs = "latest" }
            [groups.production]
            inboxes = ["/srv/prod/*/inbox"]
            types = { virus-defs = 1, ips-rules = 7 }
            """)
        let cfg = try w.config(
            """
            [types.virus-defs]
            source = "dir"
            path = "up"
            keep_revisions = 2
            hold = [3]
            """, extra: "hold_from = \"policy.toml\"")
        var last: CycleReport? = nil
        for rev in 1...10 {
            publish(w, rev)
            last = try await run(cfg)
            #expect(last?.exitCode == 0)
        }
        let r = try #require(last)
        #expect(try Outbox(root: w.path("outbox")).revisions("virus-defs") == [1, 3, 9, 10])
        #expect(r.types[0].heldRevisions == [1, 3])
        #expect(r.types[0].missingHeld.isEmpty)
        // The index lists the held revisions too.
        #expect(
            try Outbox(root: w.path("outbox")).readIndex().types["virus-defs"]?.revisions.map(\.revision) == [
                1, 3, 9, 10,
            ])
        #expect(r.warnings.isEmpty, "\(r.warnings)")
    }

    @Test func aHeldRevisionNotInTheOutboxIsAWarningInEveryRun() async throws {
        let w = StageWorkspace()
        w.write(
            "policy.toml",
            """
            [groups.production]
            inboxes = ["/srv/prod/*/inbox"]
            types = { virus-defs = 999 }
            """)
        let cfg = try w.config(
            """
            [types.virus-defs]
            source = "dir"
            path = "up"
            """, extra: "hold_from = \"policy.toml\"")
        publish(w, 1)
        for _ in 0..<2 {  // the second run publishes nothing and still warns
            let r = try await run(cfg)
            #expect(r.exitCode == 0)
            #expect(r.types[0].missingHeld == [999])
            #expect(r.warnings.count == 1)
            #expect(
                r.warnings.first?.contains("virus-defs 999 is held by policy group production but is not in the outbox")
                    == true, "\(r.warnings)")
            #expect(r.summary().contains("WARNING: virus-defs 999"))
            let metrics = Metrics.text(report: r, lastSuccess: nil, now: 0, latest: [:])
            #expect(metrics.contains("courier_stage_type_held_missing{type=\"virus-defs\"} 1"))
            #expect(metrics.contains("courier_stage_warnings 1"))
        }
    }

    @Test func anUnreadablePolicySuspendsRetentionAndWarns() async throws {
        let w = StageWorkspace()
        let cfg = try w.config(
            """
            [types.virus-defs]
            source = "dir"
            path = "up"
            keep_revisions = 1
            """, extra: "hold_from = \"missing-policy.toml\"")
        for rev in 1...3 {
            publish(w, rev)
            let r = try await run(cfg)
            #expect(r.warnings.contains { $0.contains("retention is suspended") }, "\(r.warnings)")
        }
        #expect(try Outbox(root: w.path("outbox")).revisions("virus-defs") == [1, 2, 3])
    }

    @Test func holdMustListRevisions() throws {
        let w = StageWorkspace()
        #expect(throws: CourierError.self) {
            _ = try w.config(
                """
                [types.virus-defs]
                source = "dir"
                path = "up"
                hold = "yesterday"
                """)
        }
    }
}
