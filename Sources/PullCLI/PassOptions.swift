import ArgumentParser
import CourierCLI
import CourierCore
import CourierPull
@preconcurrency import Glibc
import Logging

/// What `courier-pull run` and `courier-pull mirror` share: a pass made for a timer or cron —
/// silent when all is well and stdout is not a terminal, a summary on stderr when something
/// failed, its report as JSON on request, one `summary:` line in the log file either way.
struct PassOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp("Override the configuration's bwlimit (e.g. 2M, 500K; bytes per second).", valueName: "RATE")
    )
    var bwlimit: String?
    @Flag(help: "Print the pass's report as JSON on stdout.")
    var json = false
    @Option(help: ArgumentHelp("Append the log to this file (never truncated).", valueName: "FILE"))
    var logFile: String?
    @Flag(help: "Log progress to stderr even when it is not a terminal.")
    var verbose = false
    @Flag(help: "Print nothing but errors, even on a terminal.")
    var quiet = false

    /// `--bwlimit` as bytes per second (nil: the configuration's); a bad value is a usage error.
    func rate() throws -> Int64? { try bwlimit.map { try Throttle.parseRate($0, what: "--bwlimit") } }

    /// One line per event to stderr (info when asked or on a terminal) and to `--log-file`.
    func logger() throws -> Logger {
        try batchLogger(program: "courier-pull", logFile: logFile, verbose: verbose, quiet: quiet)
    }

    /// Runs the pass and reports it: the summary line in the log (also when the pass fails with
    /// an error), then JSON, the summary on stderr after a failure, or on a terminal; the
    /// report's exit code.
    func report<R: PassReport>(_ logger: Logger, _ pass: () async throws -> R) async throws {
        let report: R
        do { report = try await pass() } catch let e as CourierError {
            appendSummary("failed: \(e.description)")
            throw e
        }
        for line in report.summary().split(separator: "\n") { logger.debug("\(line)") }
        appendSummary(report.summary())
        if json {
            print(report.json())
        } else if report.exitCode != 0 {
            for line in report.summary().split(separator: "\n") { printError(String(line)) }
        } else if Sys.isTerminal(1) && !quiet {
            print(report.summary())
        }
        if report.exitCode != 0 { throw ExitCode(report.exitCode) }
    }

    /// The pass's summary as one `summary:` line at the end of the log file, as `courier-stage
    /// run` writes it.
    func appendSummary(_ summary: String) {
        appendSummaryLine(program: "courier-pull", logFile: logFile, summary)
    }
}

/// A pass's outcome, as `PullReport` and `Relay.Report` give it.
protocol PassReport {
    var exitCode: Int32 { get }
    func summary() -> String
    func json() -> String
}

extension PullReport: PassReport {}
extension Relay.Report: PassReport {}
