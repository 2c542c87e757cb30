import ArgumentParser
import CourierCLI
import CourierCore
import CourierPull
import Logging
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public struct MirrorCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mirror",
        abstract: "One relay pass: mirror the newest revisions of an upstream outbox (or relay) into a local directory.",
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
    @Option(help: ArgumentHelp("Override the configuration's bwlimit (e.g. 2M, 500K; bytes per second).", valueName: "RATE"))
    var bwlimit: String?
    @Flag(help: "Print the pass's report as JSON on stdout.")
    var json = false
    @Option(help: ArgumentHelp("Append the log to this file (never truncated).", valueName: "FILE"))
    var logFile: String?
    @Flag(help: "Log progress to stderr even when it is not a terminal.")
    var verbose = false
    @Flag(help: "Print nothing but errors, even on a terminal.")
    var quiet = false

    public init() {}

    public func run() async throws {
        let rate = try bwlimit.map { try Throttle.parseRate($0, what: "--bwlimit") }
        try await mapErrors("courier-pull mirror") {
            let logger = try makeLogger(logFile: logFile, verbose: verbose, quiet: quiet)
            var cfg = try RelayConfig.load(config)
            if let rate { cfg.bwlimit = rate }
            let report: Relay.Report
            do {
                report = try await Relay(config: cfg, logger: logger).run()
            } catch let e as CourierError {
                appendSummary(logFile: logFile, "failed: \(e.description)")
                throw e
            }
            appendSummary(logFile: logFile, report.summary())
            if json { print(report.json()) }
            else if report.exitCode != 0 { for line in report.summary().split(separator: "\n") { printError(String(line)) } }
            else if isatty(1) == 1 && !quiet { print(report.summary()) }
            if report.exitCode != 0 { throw ExitCode(report.exitCode) }
        }
    }
}
