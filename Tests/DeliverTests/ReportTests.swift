import CourierCore
import Foundation
import Testing

@testable import CourierDeliver

@Suite struct ReportTests {
    /// A client that refused the target revision is stale with that reason (no sender will send it
    /// again), the refusal and its quarantine reach JSON and Prometheus; a refusal of an older
    /// revision than the installed one is history, not a problem.
    @Test func refusedRevisionsAndQuarantineAreReported() throws {
        let f = Fleet("report-refused")
        for r: UInt64 in [1, 2, 3] { try f.publish("virus-defs", r, bases: r > 1 ? [r - 1] : []) }
        let stuck = f.inbox("stuck")
        let past = f.inbox("past")
        try f.writeStatus(stuck, installed: ["virus-defs": 2])
        try f.writeStatus(past, installed: ["virus-defs": 3])
        for (inbox, rev) in [(stuck, UInt64(3)), (past, UInt64(2))] {
            let path = TargetList.statusPath(TargetList.defaultStatusTemplate, inbox: inbox)
            var s = try #require(try ClientStatus.load(path))
            s.types["virus-defs"]!.refused = [
                .init(
                    revision: rev, code: "apply-failed", reason: "test command exited 1",
                    at: RFC3339.format(Int64(time(nil))), package: "virus-defs_\(rev).cpkg")
            ]
            s.quarantine = .init(files: 4, bytes: 4096, evicted: 96)
            try Sys.writeFileAtomically(path, s.encoded())
        }
        var r = FleetReport()
        r.catalog = try Catalog.scan(f.outbox)
        let rows = r.rows(
            [stuck, past].map {
                FleetReport.Source(
                    origin: $0, statusPath: TargetList.statusPath(TargetList.defaultStatusTemplate, inbox: $0))
            })
        let s = try #require(rows.first { $0.client == "host-stuck" })
        let p = try #require(rows.first { $0.client == "host-past" })
        #expect(s.staleReasons == ["refused 3 (apply-failed)"] && s.refused.map(\.revision) == [3])
        #expect(p.stale == false && p.refused.isEmpty)
        #expect(ReportRender.table(rows).contains("STALE: refused 3 (apply-failed)"))
        let prom = ReportRender.prometheus(rows)
        #expect(prom.contains("courier_client_refused_revisions{client=\"host-stuck\",type=\"virus-defs\"} 1\n"))
        #expect(prom.contains("courier_client_refused_revisions{client=\"host-past\",type=\"virus-defs\"} 0\n"))
        #expect(prom.contains("courier_client_quarantine_evicted{client=\"host-stuck\"} 96\n"))
        #expect(ReportRender.json(rows).contains("\"refused\":[{\"at\""))
    }

    @Test func staleClientsAreFlagged() throws {
        let f = Fleet("report")
        for r: UInt64 in [1, 2, 3, 4] { try f.publish("virus-defs", r, bases: r > 1 ? [r - 1] : []) }
        let fresh = f.inbox("fresh")
        let behind = f.inbox("behind")
        let old = f.inbox("old")
        let pinned = f.inbox("pinned")
        let none = f.inbox("none")
        try f.writeStatus(fresh, installed: ["virus-defs": 4])
        try f.writeStatus(behind, installed: ["virus-defs": 2])
        try f.writeStatus(old, installed: ["virus-defs": 4], created: RFC3339.format(Int64(time(nil)) - 72 * 3600))
        try f.writeStatus(pinned, installed: ["virus-defs": 1], pinned: ["virus-defs": 1])
        var r = FleetReport()
        r.catalog = try Catalog.scan(f.outbox)
        let rows = r.rows(
            [fresh, behind, old, pinned, none].map {
                FleetReport.Source(
                    origin: $0, statusPath: TargetList.statusPath(TargetList.defaultStatusTemplate, inbox: $0))
            })
        func row(_ host: String) -> FleetReport.Row { rows.first { $0.client == host }! }
        #expect(row("host-fresh").stale == false && row("host-fresh").behind == 0)
        #expect(row("host-behind").stale && row("host-behind").behind == 2)
        #expect(row("host-behind").staleReasons == ["2 revisions behind"])
        #expect(row("host-old").staleReasons == ["content 3d old"])
        #expect(row("host-pinned").stale == false, "pinned clients are behind on purpose")
        let missing = rows.first { $0.client == none }!
        #expect(missing.stale && missing.problem?.contains("no status file") == true)

        let table = ReportRender.table(rows)
        #expect(table.contains("STALE: 2 revisions behind"))
        #expect(table.hasSuffix("5 clients, 3 stale\n"))
        let prom = ReportRender.prometheus(rows)
        #expect(prom.contains("courier_client_revisions_behind{client=\"host-behind\",type=\"virus-defs\"} 2\n"))
        #expect(prom.contains("courier_fleet_stale_clients 3\n"))
        let json = ReportRender.json(rows).split(separator: "\n")
        #expect(json.count == 5)
        let first = try JSONSerialization.jsonObject(with: Data(json[0].utf8)) as! [String: Any]
        #expect(first["client"] as? String == "host-fresh" && first["installed"] as? Int == 4)
    }

    /// Issue #12.5: with --policy, a client is judged against its group's target: production held
    /// on an older revision is "ok" there (old content included), and off target when it is not.
    @Test func aClientHeldByPolicyIsJudgedAgainstItsGroupsTarget() throws {
        let f = Fleet("held")
        for r: UInt64 in [1, 2, 3, 4] { try f.publish("virus-defs", r) }
        let prod = f.inbox("prod")
        let prodOff = f.inbox("prod-off")
        let pilot = f.inbox("pilot")
        let old = RFC3339.format(Int64(time(nil)) - 30 * 86400)
        try f.writeStatus(prod, installed: ["virus-defs": 1], created: old)
        try f.writeStatus(prodOff, installed: ["virus-defs": 3])
        try f.writeStatus(pilot, installed: ["virus-defs": 2])
        func src(_ inbox: String, _ group: String, _ want: RevisionSpec) -> FleetReport.Source {
            FleetReport.Source(
                origin: inbox, statusPath: TargetList.statusPath(TargetList.defaultStatusTemplate, inbox: inbox),
                group: group, wants: ["virus-defs": want])
        }
        var r = FleetReport()
        r.catalog = try Catalog.scan(f.outbox)
        let rows = r.rows([
            src(prod, "production", .named(1)), src(prodOff, "production", .named(1)), src(pilot, "pilot", .latest),
        ])
        func row(_ host: String) -> FleetReport.Row { rows.first { $0.client == host }! }
        #expect(row("host-prod").stale == false, "\(row("host-prod").staleReasons)")
        #expect(row("host-prod").target == 1 && row("host-prod").behind == 0)
        #expect(row("host-prod-off").staleReasons == ["holds 3, policy group production names 1"])
        #expect(row("host-pilot").staleReasons == ["2 revisions behind"])
        let table = ReportRender.table(rows)
        #expect(table.contains("1 (held at 1 by production)"), "\(table)")
        #expect(table.hasSuffix("3 clients, 2 stale\n"))
    }
}
