import ArgumentParser
import CourierCLI
import CourierCore
import CourierDeliver

public struct ReportCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Print what every client holds, from their status.json files; flag stale clients.",
        discussion: """
            One row per client and type: installed revision (and pin), revisions behind its target \
            (with --outbox), content age (the age of the signatures, not of the apply), last \
            apply, pending packages, last error. A client is STALE when it is --stale-revisions or \
            more behind (unless pinned), when its content is older than --stale-hours, or when its \
            status file is missing or unreadable.

            The target is the outbox's latest, or with --policy the revision the client's group \
            names: a client of a group held on a named revision is "ok" when it holds exactly that \
            revision (old content is no alarm there), and STALE when it holds any other.

            Clients are found from their inboxes (--inbox, --inboxes-from, --policy; status.json at \
            {inbox}/../state/status.json unless --status-path says otherwise) or given as status files \
            (--status, globs allowed: what Ansible's fetch gathers).

            Examples:
              courier-deliver report --inbox '/mnt/clients/*/var/lib/courier/inbox' \\
                  --outbox /srv/courier/outbox
              courier-deliver report --status 'fleet/*/status.json' --prometheus \\
                  > /var/lib/node_exporter/courier.prom

            Exit codes: 0 (also with stale clients, unless --fail-stale: then 16), 2 bad policy file, \
            12 outbox unreadable, 64 usage.
            """)

    @OptionGroup var inboxOptions: InboxOptions
    @Option(
        name: .customLong("status"),
        help: ArgumentHelp("A client's status.json, or a glob of them (repeatable).", valueName: "FILE"))
    var statusFiles: [String] = []
    @Option(help: ArgumentHelp("The outbox, to count how many revisions each client is behind.", valueName: "DIR"))
    var outbox: String?
    @Option(name: .customLong("type"), help: ArgumentHelp("Only this content type (repeatable).", valueName: "TYPE"))
    var types: [String] = []
    @Option(help: "Stale when this many revisions behind the outbox's latest, or more.")
    var staleRevisions: Int = 2
    @Option(help: "Stale when the installed content is older than this many hours.")
    var staleHours: Int = 48
    @Flag(help: "One JSON object per client and type, one per line.")
    var json = false
    @Flag(help: "Prometheus text format (for node_exporter's textfile collector).")
    var prometheus = false
    @Flag(help: "Exit 16 when any client is stale.")
    var failStale = false

    public init() {}

    public func validate() throws {
        if !inboxOptions.given && statusFiles.isEmpty {
            throw ValidationError("name the clients: --inbox, --inboxes-from, --policy or --status")
        }
        if json && prometheus { throw ValidationError("--json or --prometheus, not both") }
        if staleRevisions < 1 || staleHours < 1 {
            throw ValidationError("--stale-revisions and --stale-hours must be at least 1")
        }
    }

    public func run() throws {
        var stale = false
        try mapErrors("courier-deliver report") {
            var sources: [FleetReport.Source] = []
            if inboxOptions.given {
                for t in try inboxOptions.targets(
                    types: [], spec: .latest,
                    // The report reads status files only; no package is checked against limits.
                    limits: Limits())
                {
                    sources.append(
                        FleetReport.Source(
                            origin: t.inbox, statusPath: t.problem == nil ? t.statusPath : t.inbox,
                            group: t.group,
                            wants: Dictionary(t.wants.map { ($0.type, $0.spec) }, uniquingKeysWith: { a, _ in a })))
                }
            }
            for pat in statusFiles {
                let matched = TargetList.expand(pat)
                if matched.isEmpty { sources.append(FleetReport.Source(origin: pat, statusPath: pat)) }
                for f in matched { sources.append(FleetReport.Source(origin: f, statusPath: f)) }
            }
            var r = FleetReport()
            r.staleRevisions = staleRevisions
            r.staleHours = staleHours
            if !types.isEmpty { r.onlyTypes = Set(types) }
            if let o = outbox { r.catalog = try Catalog.scan(o) }
            let rows = r.rows(sources)
            stale = rows.contains { $0.stale }
            print(
                json ? ReportRender.json(rows) : prometheus ? ReportRender.prometheus(rows) : ReportRender.table(rows),
                terminator: "")
        }
        if stale && failStale { throw ExitCode(ExitStatus.partial.rawValue) }
    }
}
