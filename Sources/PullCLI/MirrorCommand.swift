import ArgumentParser
import CourierCLI
import CourierCore
import CourierPull
@preconcurrency import Glibc
import Logging

public struct MirrorCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mirror",
        abstract:
            "One relay pass: mirror the newest revisions of an upstream outbox (or relay) into a local directory.",
        discussion: """
            Only verified, complete packages appear: each revision is built under a dot-name and \
            renamed into place, then latest and index.json are written, last and atomically. Serve \
            the directory with any web server (scripts/nginx/courier-outbox.conf). A killed pass \
            leaves nothing half-done in sight; the next one resumes. See docs/DELIVER.md, "Relays".

            Examples:
              courier-pull mirror --config /etc/courier/relay.toml
              courier-pull mirror --config relay.toml --json
            """)

    @Option(help: ArgumentHelp("The relay's configuration file.", valueName: "FILE"))
    var config: String = "/etc/courier/relay.toml"
    @OptionGroup var pass: PassOptions

    public init() {}

    public func run() async throws {
        try await mapErrors("courier-pull mirror") {
            let rate = try pass.rate()
            let logger = try pass.logger()
            var cfg = try RelayConfig.load(config)
            if let rate { cfg.bwlimit = rate }
            try await pass.report(logger) { try await Relay(config: cfg, logger: logger).run() }
        }
    }
}
