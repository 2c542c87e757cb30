import ArgumentParser
import CourierCLI
import CourierCore
import CourierInbox
import CourierPull
import Logging
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public struct PullRunCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "One pull: index.json from the first mirror that answers, then what this client needs, into its inbox.",
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
    @Option(help: ArgumentHelp("Override the configuration's bwlimit (e.g. 2M, 500K; bytes per second).", valueName: "RATE"))
    var bwlimit: String?
    @Flag(help: "Also send a revision the client refused before (status.json 'refused'), once it is fixed upstream or for a retry.")
    var force = false
    @Flag(help: "Print the run's report as JSON on stdout.")
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
        try await mapErrors("courier-pull run") {
            let logger = try makeLogger(logFile: logFile, verbose: verbose, quiet: quiet)
            var cfg = try PullConfig.load(config)
            if let rate { cfg.bwlimit = rate }
            let inbox = try InboxConfig.load(cfg.inboxdConfig)
            let report: PullReport
            do {
                report = try await Puller(config: cfg, inbox: inbox, logger: logger).run(only: types, splay: !noSplay, force: force)
            } catch let e as CourierError {
                appendSummary(logFile: logFile, "failed: \(e.description)")
                throw e
            }
            for line in report.summary().split(separator: "\n") { logger.debug("\(line)") }
            appendSummary(logFile: logFile, report.summary())
            if json { print(report.json()) }
            else if report.exitCode != 0 { for line in report.summary().split(separator: "\n") { printError(String(line)) } }
            else if isatty(1) == 1 && !quiet { print(report.summary()) }
            if report.exitCode != 0 { throw ExitCode(report.exitCode) }
        }
    }
}

/// The pass's summary as one `summary:` line at the end of `logFile`, as `courier-stage run`
/// writes it: `diagnose` (state/last-run.txt) and a grep find the last passes without the
/// journal. Best effort: a log that cannot be written does not fail a pass that delivered.
func appendSummary(logFile: String?, _ summary: String) {
    guard let logFile, let fd = try? LineLogHandler.openLogFile(logFile) else { return }
    defer { Sys.close(fd) }
    let text = summary.split(separator: "\n").map { Escape.text(String($0)) }.joined(separator: " | ")
    let line = "\(RFC3339.format(Int64(time(nil)))) courier-pull[\(getpid())] summary: \(text)\n"
    try? Sys.writeAll(fd, Array(line.utf8), display: logFile)
}

/// One line per event to stderr (info when asked or on a terminal) and to `logFile`.
func makeLogger(logFile: String?, verbose: Bool, quiet: Bool) throws -> Logger {
    let fileFD = try logFile.map { try LineLogHandler.openLogFile($0) }
    let stderrLevel: Logger.Level = quiet ? .error : ((verbose || isatty(2) == 1) ? .info : .warning)
    let handler = LineLogHandler(program: "courier-pull", level: .info, stderrLevel: stderrLevel, fileFD: fileFD)
    return Logger(label: "courier-pull", factory: { _ in handler })
}
