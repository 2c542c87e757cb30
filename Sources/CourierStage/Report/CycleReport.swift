import CourierCore
import FoundationEssentials

/// What one run did, per type: the source of the human summary, `--json` and the metrics file.
public struct CycleReport: Codable, Sendable {
    public struct TypeResult: Codable, Sendable {
        public enum Status: String, Codable, Sendable { case unchanged, published, failed }
        public struct Delta: Codable, Sendable {
            public var base: UInt64
            public var bytes: Int64
        }
        public var type: String
        public var status: Status
        public var detail: String
        public var revision: UInt64?
        public var previous: UInt64?
        public var fullBytes: Int64?
        public var deltas: [Delta] = []
        /// Deltas built but not published: not enough smaller than the full package.
        public var skippedDeltas: [Delta] = []
        public var downloadedBytes: Int64 = 0
        /// The mirror (URL without credentials) that answered for a url type: served the
        /// download, or said it is unchanged (304).
        public var mirror: String? = nil
        public var removedRevisions: [UInt64] = []
        /// Revisions retention keeps because `hold` or the `hold_from` policy names them.
        public var heldRevisions: [UInt64] = []
        /// Held revisions that are not in the outbox: a policy group would fail to get them.
        public var missingHeld: [UInt64] = []
        /// An interrupted earlier publication was completed by this run.
        public var repaired = false
        public var seconds: Double = 0
        public var errorCode: String?
        public var exitCode: Int32?
    }

    public var started: String
    public var seconds: Double
    public var cycles: Int
    public var types: [TypeResult]
    public var exitCode: Int32
    /// Problems that did not fail the run but need a person: a held revision missing from the
    /// outbox, a `hold_from` policy that cannot be read. Repeated in every run until fixed.
    public var warnings: [String] = []

    public var downloadedBytes: Int64 { types.reduce(0) { $0 + $1.downloadedBytes } }
    public var failures: Int { types.filter { $0.status == .failed }.count }

    public func json() -> String { ReportJSON.line(self) }

    /// A few lines a human reads in a terminal or a cron mail.
    public func summary() -> String {
        var lines: [String] = []
        for t in types {
            switch t.status {
            case .unchanged:
                lines.append(
                    "\(t.type): unchanged at \(t.revision.map(String.init) ?? "(none)") — \(t.detail)\(t.mirror.map { " (mirror \($0))" } ?? "")"
                )
            case .published:
                let from = t.previous.map { "\($0) → " } ?? "new: "
                let deltas =
                    t.deltas.isEmpty
                    ? ""
                    : ", \(t.deltas.count) delta\(t.deltas.count == 1 ? "" : "s") (\(t.deltas.map { "from \($0.base) \(human($0.bytes))" }.joined(separator: ", ")))"
                let skipped =
                    t.skippedDeltas.isEmpty
                    ? ""
                    : ", \(t.skippedDeltas.count) delta\(t.skippedDeltas.count == 1 ? "" : "s") skipped (no smaller than 90 % of the full package)"
                let dl = t.downloadedBytes > 0 ? ", downloaded \(human(t.downloadedBytes))" : ""
                let mirror = t.mirror.map { ", from mirror \($0)" } ?? ""
                lines.append(
                    "\(t.type): \(from)\(t.revision!) — full \(human(t.fullBytes ?? 0))\(deltas)\(skipped)\(dl)\(mirror), \(String(format1: t.seconds)) s"
                )
            case .failed:
                lines.append("\(t.type): FAILED (\(t.errorCode ?? "error")) — \(t.detail)")
            }
        }
        for w in warnings { lines.append("WARNING: \(w)") }
        let ok = types.count - failures
        lines.append(
            "\(ok)/\(types.count) types ok, \(types.filter { $0.status == .published }.count) published, \(String(format1: seconds)) s, exit \(exitCode)"
        )
        return lines.joined(separator: "\n")
    }
}
