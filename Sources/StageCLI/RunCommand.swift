import ArgumentParser
import CourierCLI
import CourierCore
import CourierStage
@preconcurrency import Glibc
import Logging

public struct RunCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one staging cycle: check every source, build and publish what is new.",
        discussion: """
            Made for cron and systemd timers: silent when all is well and stdout is not a terminal, \
            a summary on stderr when something failed, a non-zero exit code that says what \
            (see 'courier-stage --help'). A second run while one is active exits at once with 17.

            Examples:
              courier-stage run --config /etc/courier/stage.toml
              courier-stage run --config stage.toml --splay 10m \\
                  --metrics-file /var/lib/node_exporter/courier.prom \\
                  --log-file /var/log/courier/stage.log
              courier-stage run --config stage.toml --type virus-defs --json
            """)

    @Option(help: ArgumentHelp("The configuration file (docs/STAGE.md).", valueName: "FILE"))
    var config: String = "/etc/courier/stage.toml"
    @Option(name: .customLong("type"), help: ArgumentHelp("Only this content type (repeatable).", valueName: "TYPE"))
    var types: [String] = []
    @Option(
        help: ArgumentHelp(
            "Wait a random time up to DURATION first, to spread load across servers (e.g. 10m).", valueName: "DURATION")
    )
    var splay: String?
    @Flag(help: "Print the run's report as JSON on stdout.")
    var json = false
    @Option(
        help: ArgumentHelp(
            "Write Prometheus metrics (node_exporter textfile format) here, atomically.", valueName: "FILE"))
    var metricsFile: String?
    @Option(help: ArgumentHelp("Append the log to this file (never truncated).", valueName: "FILE"))
    var logFile: String?
    @Flag(help: "Log progress to stderr even when it is not a terminal.")
    var verbose = false
    @Flag(help: "Print nothing but errors, even on a terminal.")
    var quiet = false

    public init() {}

    public func run() async throws {
        let splaySeconds = try splay.map { try parseDuration($0, option: "--splay") } ?? 0
        try await mapErrors("courier-stage run") {
            let tty = Sys.isTerminal(1)
            let logger = try batchLogger(program: "courier-stage", logFile: logFile, verbose: verbose, quiet: quiet)

            let cfg = try StageConfig.load(config)
            if splaySeconds > 0 {
                let wait = UInt64.random(in: 0...UInt64(splaySeconds) * 1000)
                logger.info("splay: waiting \(wait / 1000) s before starting")
                try await Task.sleep(nanoseconds: wait * 1_000_000)
            }
            let runner = StageRunner(config: cfg, logger: logger)
            let report = try await runner.run(only: types)
            if let mf = metricsFile {
                let outbox = Outbox(root: cfg.outbox)
                var latest: [String: UInt64] = [:]
                for t in cfg.types { if let l = outbox.latest(t.name) { latest[t.name] = l } }
                let text = Metrics.text(
                    report: report, lastSuccess: runner.lastSuccess(), now: Int64(time(nil)), latest: latest)
                try Sys.writeFileAtomically(mf, Array(text.utf8))
            }
            if json {
                print(report.json())
            } else if report.exitCode != 0 {
                // Line by line: printError escapes control characters, a newline among them.
                for line in report.summary().split(separator: "\n") { printError(String(line)) }
            } else if tty && !quiet {
                print(report.summary())
            }
            for line in report.summary().split(separator: "\n") { logger.debug("\(line)") }
            appendSummaryLine(program: "courier-stage", logFile: logFile, report.summary())
            if report.exitCode != 0 { throw ExitCode(report.exitCode) }
        }
    }
}
