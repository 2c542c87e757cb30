import CourierCore

/// The Prometheus textfile (`--metrics-file`, for node_exporter's textfile collector), written
/// atomically so the collector never reads half. `last_success` survives runs through the state
/// directory, so a failing cron job shows as a growing age, which is what an alert keys on.
public enum Metrics {
    public static func text(report: CycleReport, lastSuccess: Int64?, now: Int64, latest: [String: UInt64]) -> String {
        var out = PrometheusText()
        out.gauge("courier_stage_last_run_timestamp_seconds", "Unix time the last run finished.", "\(now)")
        if let s = lastSuccess {
            out.gauge(
                "courier_stage_last_success_timestamp_seconds", "Unix time of the last run with no failed type.", "\(s)"
            )
        }
        out.gauge("courier_stage_duration_seconds", "Wall time of the last run.", "\(report.seconds)")
        out.gauge("courier_stage_downloaded_bytes", "Bytes downloaded by the last run.", "\(report.downloadedBytes)")
        out.gauge("courier_stage_errors", "Content types that failed in the last run.", "\(report.failures)")
        out.gauge("courier_stage_exit_code", "Exit code of the last run.", "\(report.exitCode)")
        func perType(_ value: (CycleReport.TypeResult) -> String) -> [PrometheusText.Sample] {
            report.types.map { ([("type", $0.type)], value($0)) }
        }
        out.metric(
            "courier_stage_type_revision", "Latest published revision per content type.",
            latest.keys.sorted().map { ([("type", $0)], "\(latest[$0]!)") })
        out.metric(
            "courier_stage_type_failed", "1 if the content type failed in the last run.",
            perType { $0.status == .failed ? "1" : "0" })
        out.metric(
            "courier_stage_type_published", "1 if the last run published a new revision of the type.",
            perType { $0.status == .published ? "1" : "0" })
        out.metric(
            "courier_stage_type_held_revisions",
            "Revisions retention keeps because a hold or the hold_from policy names them.",
            perType { "\($0.heldRevisions.count)" })
        out.metric(
            "courier_stage_type_held_missing",
            "Held revisions that are not in the outbox (clients of that group cannot get them).",
            perType { "\($0.missingHeld.count)" })
        out.gauge(
            "courier_stage_warnings", "Warnings of the last run (see its log or --json).", "\(report.warnings.count)")
        return out.text
    }
}
