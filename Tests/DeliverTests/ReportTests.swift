import CourierCore
@testable import CourierDeliver
import Foundation
import Testing

@Suite struct ReportTests {
    @Test func staleClientsAreFlagged() throws {
        let f = Fleet("report")
        for r: UInt64 in [1, 2, 3, 4] { try f.publish("virus-defs", r, bases: r > 1 ? [r - 1] : []) }
        let fresh = f.inbox("fresh"), behind = f.inbox("behind"), old = f.inbox("old"), pinned = f.inbox("pinned")
        let none = f.inbox("none")
        try f.writeStatus(fresh, installed: ["virus-defs": 4])
        try f.writeStatus(behind, installed: ["virus-defs": 2])
        try f.writeStatus(old, installed: ["virus-defs": 4], created: RFC3339.format(Int64(time(nil)) - 72 * 3600))
        try f.writeStatus(pinned, installed: ["virus-defs": 1], pinned: ["virus-defs": 1])
        var r = FleetReport()
        r.catalog = try Catalog.scan(f.outbox)
        let rows = r.rows([fresh, behind, old, pinned, none].map {
            FleetReport.Source(origin: $0, statusPath: TargetList.statusPath(TargetList.defaultStatusTemplate, inbox: $0))
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
        let prod = f.inbox("prod"), prodOff = f.inbox("prod-off"), pilot = f.inbox("pilot")
        let old = RFC3339.format(Int64(time(nil)) - 30 * 86400)
        try f.writeStatus(prod, installed: ["virus-defs": 1], created: old)
        try f.writeStatus(prodOff, installed: ["virus-defs": 3])
        try f.writeStatus(pilot, installed: ["virus-defs": 2])
        func src(_ inbox: String, _ group: String, _ want: RevisionSpec) -> FleetReport.Source {
            FleetReport.Source(origin: inbox, statusPath: TargetList.statusPath(TargetList.defaultStatusTemplate, inbox: inbox),
                               group: group, wants: ["virus-defs": want])
        }
        var r = FleetReport()
        r.catalog = try Catalog.scan(f.outbox)
        let rows = r.rows([src(prod, "production", .named(1)), src(prodOff, "production", .named(1)), src(pilot, "pilot", .latest)])
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
