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
}
