import ArgumentParser
import CourierCLI
import CourierCore
import CourierDeliver

public struct SelectCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "select",
        abstract: "Print the outbox packages one client needs, from its status.json (for Ansible and other copiers).",
        discussion: """
            The choice push makes, for one client, without copying: one absolute path per line, \
            nothing when the client is up to date. A missing status file is a new client: full \
            packages. With --inbox, packages already waiting there are not selected again; with \
            --trust, the selected packages are verified first, and against the client's limits \
            (the group's max_tree_bytes and delta_window with --policy, else --max-tree-bytes and \
            --delta-window): a delta over them is replaced by the full package, a package over them \
            is an error (code limit). A revision the client refused \
            (its status.json lists it under refused) is not selected (code refused) unless --force.

            Example (what scripts/ansible/deliver.yml runs on the controller):
              courier-deliver select --outbox /srv/courier/outbox \\
                  --status fleet/client-01/status.json --json
            """)

    @OptionGroup var source: OutboxOptions
    @Option(help: ArgumentHelp("The client's status.json (absent or missing: a new client).", valueName: "FILE"))
    var status: String?
    @Option(
        help: ArgumentHelp(
            "The client's inbox, when reachable: skips packages already waiting there; its status.json is found from it unless --status is given.",
            valueName: "DIR"))
    var inbox: String?
    @Option(help: ArgumentHelp("A policy file; with --group, the revisions that group should have.", valueName: "FILE"))
    var policy: String?
    @Option(help: ArgumentHelp("The policy group the client is in.", valueName: "NAME"))
    var group: String?
    @Option(
        help: ArgumentHelp(
            "Verify the selected packages with this trust (a .pub file or directory).", valueName: "PATH"))
    var trust: String?
    @OptionGroup(title: "Client limits (checked with --trust; with --policy, the group's own)")
    var clientLimits: ClientLimitOptions
    @Flag(help: "One JSON object per type: type, revision, action (full, delta, none, error), path, code, reason.")
    var json = false
    @Flag(
        help: ArgumentHelp(
            "Select a revision the client refused before (status.json's refused list); without it that type selects nothing, with code 'refused'."
        ))
    var force = false

    public init() {}

    public func validate() throws {
        if (policy == nil) != (group == nil) { throw ValidationError("--policy and --group go together") }
        if policy != nil && source.revision != nil { throw ValidationError("--revision does not go with --policy") }
        if policy != nil && clientLimits.given {
            throw ValidationError(
                "--max-tree-bytes and --delta-window do not go with --policy: the group sets its limits")
        }
    }

    public func run() throws {
        var failed = false
        try mapErrors("courier-deliver select") {
            let catalog = try source.catalog()
            var wants: [(type: String, spec: RevisionSpec)] =
                source.types.isEmpty
                ? catalog.types.keys.sorted().map { ($0, RevisionSpec.latest) }
                : source.types.map { ($0, source.spec) }
            var limits = try clientLimits.limits()
            if let p = policy, let g = group {
                let pg = try Policy.load(p).group(named: g)
                wants = pg.types.filter { source.types.isEmpty || source.types.contains($0.type) }
                limits = pg.limits
            }
            let statusPath =
                status ?? inbox.map { TargetList.statusPath(TargetList.defaultStatusTemplate, inbox: $0) } ?? ""
            let waiting = try inbox.map { try Pusher.waiting(in: $0) } ?? []
            var decisions = Pusher.decide(
                wants, catalog: catalog, statusPath: statusPath, waiting: waiting, force: force)
            var bad: [String: String] = [:]
            if let t = trust {
                let o = VerifyOptions(trust: try TrustStore.load(t, threshold: 1), limits: Limits.loosest([limits]))
                let check = ClientLimitCheck(options: o)
                let who = group.map { "group \($0)" } ?? "--max-tree-bytes/--delta-window"
                decisions = decisions.map { check.adjust($0, limits: limits, catalog: catalog, who: who) }
                bad = Pusher.verifyOnce(decisions, options: o, jobs: 8).failures
            }
            for d in decisions {
                let problem = d.package.flatMap { bad[$0] }
                if json {
                    print(DeliverJSON.select(d, problem: problem))
                } else if let path = d.package, problem == nil {
                    print(path)
                }
                if let why = problem ?? (d.action == .error ? d.reason : nil) {
                    failed = true
                    printError("courier-deliver select: \(d.type): \(why)")
                }
            }
        }
        if failed { throw ExitCode(ExitStatus.partial.rawValue) }
    }
}
