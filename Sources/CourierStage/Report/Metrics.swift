import CourierCore

/// The Prometheus textfile (`--metrics-file`, for node_exporter's textfile collector), written
/// atomically so the collector never reads half. `last_success` survives runs through the state
/// directory, so a failing cron job shows as a growing age, which is what an alert keys on.
public enum Metrics {
    public static func text(report: CycleReport, lastSuccess: Int64?, now: Int64, latest: [String: UInt64]) -> String {
        var out: [String] = []
        func metric(_ name: String, _ help: String, _ type: String, _ samples: [(String, String)]) {
            out.append("# HELP \(name) \(help)")
            out.append("# TYPE \(name) \(type)")
            for (labels, v) in samples { out.append("\(name)\(labels) \(v)") }
        }
        metric(
            "courier_stage_last_run_timestamp_seconds", "Unix time the last run finished.", "gauge", [("", "\(now)")])
        if let s = lastSuccess {
            metric(
                "courier_stage_last_success_timestamp_seconds", "Unix time of the last run with no failed type.",
                "gauge", [("", "\(s)")])
        }
        metric("courier_stage_duration_seconds", "Wall time of the last run.", "gauge", [("", "\(report.seconds)")])
        metric(
            "courier_stage_downloaded_bytes", "Bytes downloaded by the last run.", "gauge",
            [("", "\(report.downloadedBytes)")])
        metric(
            "courier_stage_errors", "Content types that failed in the last run.", "gauge", [("", "\(report.failures)")])
        metric("courier_stage_exit_code", "Exit code of the last run.", "gauge", [("", "\(report.exitCode)")])
        metric(
            "courier_stage_type_revision", "Latest published revision per content type.", "gauge",
            latest.keys.sorted().map { ("{type=\"\($0)\"}", "\(latest[$0]!)") })
        metric(
            "courier_stage_type_failed", "1 if the content type failed in the last run.", "gauge",
            report.types.map { ("{type=\"\($0.type)\"}", $0.status == .failed ? "1" : "0") })
        metric(
            "courier_stage_type_published", "1 if the last run published a new revision of the type.", "gauge",
            report.types.map { ("{type=\"\($0.type)\"}", $0.status == .published ? "1" : "0") })
        metric(
            "courier_stage_type_held_revisions",
            "Revisions retention keeps because a hold or the hold_from policy names them.", "gauge",
            report.types.map { ("{type=\"\($0.type)\"}", "\($0.heldRevisions.count)") })
        metric(
            "courier_stage_type_held_missing",
            "Held revisions that are not in the outbox (clients of that group cannot get them).", "gauge",
            report.types.map { ("{type=\"\($0.type)\"}", "\($0.missingHeld.count)") })
        metric(
            "courier_stage_warnings", "Warnings of the last run (see its log or --json).", "gauge",
            [("", "\(report.warnings.count)")])
        return out.joined(separator: "\n") + "\n"
    }
}
