import CourierCore
import FoundationEssentials
@preconcurrency import Glibc

/// `courier-deliver report`: what every client holds, read from the `status.json` files the
/// clients write (docs/INBOXD.md), with stale clients flagged (docs/DELIVER.md, "report").
public struct FleetReport: Sendable {
    public struct Source: Sendable {
        /// Where the client was named: its inbox, or the status file given.
        public var origin: String
        public var statusPath: String
        /// The policy group that names this client, and what it wants per type (`--policy`):
        /// a client is judged against its group's target, not the outbox's latest.
        public var group: String?
        public var wants: [String: RevisionSpec] = [:]
        public init(origin: String, statusPath: String, group: String? = nil, wants: [String: RevisionSpec] = [:]) {
            self.origin = origin
            self.statusPath = statusPath
            self.group = group
            self.wants = wants
        }
    }

    public struct Row: Codable, Sendable {
        public var client: String
        public var statusPath: String
        public var type: String?
        public var installed: UInt64?
        public var pinned: UInt64?
        public var latest: UInt64?
        /// What the client should hold: its policy group's named revision, else `latest`.
        public var target: UInt64?
        public var group: String?
        /// Published revisions newer than the installed one, up to the target (needs the outbox).
        public var behind: Int?
        public var contentAgeSeconds: Int64?
        public var appliedAt: String?
        public var pending: [String] = []
        public var lastError: ClientStatus.LastError?
        /// Revisions the client refused (test or apply failed, …) that are newer than what it
        /// holds: senders skip them, so the client stays behind until a newer one or `--force`.
        public var refused: [ClientStatus.Refused] = []
        /// The client's quarantine (one summary per client, repeated on each of its rows).
        public var quarantine: ClientStatus.QuarantineSummary?
        public var problem: String?
        public var stale: Bool = false
        public var staleReasons: [String] = []
    }

    public var staleRevisions = 2
    public var staleHours = 48
    public var catalog: Catalog?
    public var onlyTypes: Set<String>?
    public var now = Int64(time(nil))

    public init() {}

    public func rows(_ sources: [Source]) -> [Row] {
        var rows: [Row] = []
        for src in sources {
            let loaded: ClientStatus?
            var why = "no status file at \(src.statusPath)"
            do { loaded = try ClientStatus.load(src.statusPath) } catch {
                loaded = nil
                why = "unreadable status: \(error)"
            }
            guard let status = loaded else {
                rows.append(
                    Row(client: src.origin, statusPath: src.statusPath, problem: why, stale: true, staleReasons: [why]))
                continue
            }
            var types = Set(status.types.keys)
            if let only = onlyTypes { types.formIntersection(only) }
            if types.isEmpty {
                rows.append(
                    Row(
                        client: status.host, statusPath: src.statusPath, problem: "no content type applied yet",
                        stale: true, staleReasons: ["nothing installed"]))
            }
            for t in types.sorted() {
                var r = row(
                    host: status.host, path: src.statusPath, type: t, ts: status.types[t]!,
                    group: src.group, want: src.wants[t])
                r.quarantine = status.quarantine
                rows.append(r)
            }
        }
        disambiguate(&rows, sources)
        return rows
    }

    func row(
        host: String, path: String, type t: String, ts: ClientStatus.TypeStatus,
        group: String? = nil, want: RevisionSpec? = nil
    ) -> Row {
        var r = Row(client: host, statusPath: path, type: t)
        r.group = group
        r.installed = ts.installed
        r.pinned = ts.pinned
        r.appliedAt = ts.appliedAt
        r.pending = ts.pending
        r.lastError = ts.lastError
        r.refused = (ts.refused ?? []).filter { $0.revision > (ts.installed ?? 0) }
        if let c = ts.contentCreated, let secs = RFC3339.parse(c) { r.contentAgeSeconds = max(0, now - secs) }
        if let entry = catalog?.types[t] { r.latest = entry.latest }
        var heldByPolicy = false
        if case .named(let n)? = want {
            r.target = n
            heldByPolicy = true
        } else {
            r.target = r.latest
        }
        if let entry = catalog?.types[t], let target = r.target {
            let have = ts.installed ?? 0
            r.behind = entry.revisions.keys.filter { $0 > have && $0 <= target }.count
        }
        if ts.installed == nil { r.staleReasons.append("nothing installed") }
        // A refused target is the one case where waiting changes nothing: no sender sends it again.
        if let target = r.target, let x = r.refused.first(where: { $0.revision == target }) {
            r.staleReasons.append("refused \(target) (\(x.code))")
        }
        if heldByPolicy, let target = r.target, let have = ts.installed, have != target, r.pinned == nil {
            // Held on a named revision: anything else is off target, however few revisions away.
            r.staleReasons.append("holds \(have), policy group \(group ?? "?") names \(target)")
        } else if let b = r.behind, b >= staleRevisions, r.pinned == nil {
            r.staleReasons.append("\(b) revisions behind")
        }
        // A client held on a named revision holds old content on purpose: its age is no alarm.
        let onNamedTarget = heldByPolicy && ts.installed == r.target
        if let a = r.contentAgeSeconds, a > Int64(staleHours) * 3600, !onNamedTarget {
            r.staleReasons.append("content \(humanAge(a)) old")
        }
        r.stale = !r.staleReasons.isEmpty
        return r
    }

    /// Clients are named by the host in their status file; two files with one host name (clients
    /// cloned from one image, or several inboxes on one machine) get their paths appended.
    func disambiguate(_ rows: inout [Row], _ sources: [Source]) {
        var paths: [String: Set<String>] = [:]
        for r in rows { paths[r.client, default: []].insert(r.statusPath) }
        let origin = Dictionary(sources.map { ($0.statusPath, $0.origin) }, uniquingKeysWith: { a, _ in a })
        for i in rows.indices where (paths[rows[i].client]?.count ?? 0) > 1 {
            rows[i].client += " (" + (origin[rows[i].statusPath] ?? rows[i].statusPath) + ")"
        }
    }
}
