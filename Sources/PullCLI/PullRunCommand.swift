import ArgumentParser
import CourierCLI
import CourierCore
import CourierInbox
import CourierPull
@preconcurrency import Glibc
import Logging

public struct PullRunCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "run",
        abstract:
            "One pull: index.json from the first mirror that answers, then what this client needs, into its inbox.",
        discussion: """
            Made for a systemd timer or cron: silent when all is well and stdout is not a terminal, \
            a summary on stderr when something failed. The configuration (docs/DELIVER.md, "Pull") \
            names the client's inboxd.toml (inbox, state, trust, types) and the mirrors, site relay \
            first and the stager last.

            Examples:
              courier-pull run --config /etc/courier/pull.toml
              courier-pull run --config pull.toml --no-splay --json
            """)

    @Option(help: ArgumentHelp("The configuration file.", valueName: "FILE"))
    var config: String = "/etc/courier/pull.toml"
    @Option(name: .customLong("type"), help: ArgumentHelp("Only this content type (repeatable).", valueName: "TYPE"))
    var types: [String] = []
    @Flag(help: "Start at once, ignoring the configured splay (for a run by hand).")
    var noSplay = false
    @Flag(
        help:
            "Also send a revision the client refused before (status.json 'refused'), once it is fixed upstream or for a retry."
    )
    var force = false
    @OptionGroup var pass: PassOptions

    public init() {}

    public func run() async throws {
        try await mapErrors("courier-pull run") {
            let rate = try pass.rate()
            let logger = try pass.logger()
            var cfg = try PullConfig.load(config)
            if let rate { cfg.bwlimit = rate }
            let inbox = try InboxConfig.load(cfg.inboxdConfig)
            // A --type this client does not pull is a typo, not "nothing to do": say so (64)
            // before any mirror is asked. Only accept_unknown_types without declared types
            // leaves the choice to the index.
            let configured = cfg.types.isEmpty ? inbox.types.keys.sorted() : cfg.types
            if !(configured.isEmpty && inbox.acceptUnknownTypes),
                let bad = types.first(where: { !configured.contains($0) })
            {
                throw ValidationError(
                    "--type \(Escape.quoted(bad)): not a type this client pulls (types of \(cfg.types.isEmpty ? inbox.path : cfg.path)): \(configured.isEmpty ? "none" : configured.joined(separator: ", "))"
                )
            }
            try await pass.report(logger) {
                try await Puller(config: cfg, inbox: inbox, logger: logger).run(
                    only: types, splay: !noSplay, force: force)
            }
        }
    }
}
