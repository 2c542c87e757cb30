import CourierCore
import FoundationEssentials

/// The three shapes of the fleet report: a table for people, JSON lines of objects for scripts,
/// and the Prometheus text format for node_exporter's textfile collector or a push gateway.
public enum ReportRender {
    public static func table(_ rows: [FleetReport.Row]) -> String {
        var lines: [[String]] = [
            ["CLIENT", "TYPE", "REVISION", "BEHIND", "CONTENT AGE", "APPLIED", "PENDING", "STATE", "LAST ERROR"]
        ]
        for r in rows {
            var rev = r.installed.map(String.init) ?? "-"
            if let p = r.pinned {
                rev += " (pinned \(p))"
            } else if let g = r.group, let t = r.target, t != r.latest {
                rev += " (held at \(t) by \(g))"
            }
            let state = r.stale ? "STALE: " + r.staleReasons.joined(separator: "; ") : "ok"
            let err = r.problem ?? r.lastError.map { "\($0.code): \($0.reason)" } ?? ""
            // Status files are written by the clients: no control character of theirs reaches a terminal.
            lines.append(
                [
                    r.client, r.type ?? "-", rev, r.behind.map(String.init) ?? "-",
                    r.contentAgeSeconds.map(humanAge) ?? "-", r.appliedAt ?? "-",
                    r.pending.isEmpty ? "-" : String(r.pending.count), state, err,
                ].map(Escape.line))
        }
        // Pad every column but the last to its widest cell.
        var widths = [Int](repeating: 0, count: lines[0].count)
        for l in lines { for (i, c) in l.enumerated() { widths[i] = max(widths[i], c.count) } }
        var out = ""
        for l in lines {
            var s = ""
            for (i, c) in l.enumerated() {
                s += i == l.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count + 2)
            }
            while s.hasSuffix(" ") { s.removeLast() }
            out += s + "\n"
        }
        let clients = Set(rows.map(\.client)).count
        let stale = Set(rows.filter(\.stale).map(\.client)).count
        out += "\(clients) client\(clients == 1 ? "" : "s"), \(stale) stale\n"
        return out
    }

    public static func json(_ rows: [FleetReport.Row]) -> String {
        rows.map { ReportJSON.line($0) + "\n" }.joined()
    }

    public static func prometheus(_ rows: [FleetReport.Row]) -> String {
        var out = PrometheusText()
        let typed = rows.filter { $0.type != nil }
        func l(_ r: FleetReport.Row) -> [(String, String)] { [("client", r.client), ("type", r.type ?? "")] }
        out.metric(
            "courier_client_installed_revision", "Revision installed on the client (0: none).",
            typed.map { (l($0), String($0.installed ?? 0)) })
        out.metric(
            "courier_client_revisions_behind", "Published revisions newer than the installed one.",
            typed.compactMap { r in r.behind.map { (l(r), String($0)) } })
        out.metric(
            "courier_client_content_age_seconds", "Age of the installed content (its package's created time).",
            typed.compactMap { r in r.contentAgeSeconds.map { (l(r), String($0)) } })
        out.metric(
            "courier_client_pending_packages", "Packages waiting in the client's inbox at its last pass.",
            typed.map { (l($0), String($0.pending.count)) })
        out.metric(
            "courier_client_last_error", "1 when the type's last package was refused or failed.",
            typed.map { r in (l(r) + [("code", r.lastError?.code ?? "")], r.lastError == nil ? "0" : "1") })
        out.metric(
            "courier_client_refused_revisions",
            "Revisions newer than the installed one that the client refused (senders skip them).",
            typed.map { (l($0), String($0.refused.count)) })
        var seen = Set<String>()
        let perClient = typed.filter { $0.quarantine != nil && seen.insert($0.client).inserted }
        out.metric(
            "courier_client_quarantine_files", "Packages in the client's quarantine.",
            perClient.map { ([("client", $0.client)], String($0.quarantine!.files)) })
        out.metric(
            "courier_client_quarantine_evicted",
            "Quarantined packages its caps evicted (oldest first), since the count began.",
            perClient.map { ([("client", $0.client)], String($0.quarantine!.evicted)) })
        out.metric(
            "courier_client_stale", "1 when the client is stale (behind, old content, no status).",
            rows.map { r in (l(r), r.stale ? "1" : "0") })
        out.gauge("courier_fleet_clients", "Clients in the report.", String(Set(rows.map(\.client)).count))
        out.gauge(
            "courier_fleet_stale_clients", "Clients with at least one stale type.",
            String(Set(rows.filter(\.stale).map(\.client)).count))
        return out.text
    }
}
