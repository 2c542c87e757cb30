import CourierCore
@preconcurrency import Glibc
import Logging

/// The logger of a batch run made for cron and timers (`courier-stage run`, `courier-pull run`
/// and `mirror`): one line per event to `--log-file` at info, and to stderr at info when asked
/// (`--verbose`) or on a terminal, at warning otherwise (silent when all is well), errors only
/// with `--quiet`. One copy, so that the programs' `--verbose`/`--quiet` mean the same.
public func batchLogger(program: String, logFile: String?, verbose: Bool, quiet: Bool) throws -> Logger {
    let file = try logFile.map { try LineLogHandler.LogFile($0) }
    let stderrLevel: Logger.Level = quiet ? .error : ((verbose || Sys.isTerminal(2)) ? .info : .warning)
    let handler = LineLogHandler(program: program, level: .info, stderrLevel: stderrLevel, file: file)
    return Logger(label: program, factory: { _ in handler })
}

/// A batch run's summary as one `summary:` line at the end of its log file: `diagnose`
/// (state/last-run.txt) and a grep find the last runs without the journal. Each line of the
/// summary goes through `Escape.text` and they are joined by ` | `. Best effort: a log that
/// cannot be written does not fail a run that did its work.
public func appendSummaryLine(program: String, logFile: String?, _ summary: String) {
    guard let logFile, let file = try? LineLogHandler.LogFile(logFile) else { return }
    let text = summary.split(separator: "\n").map { Escape.text(String($0)) }.joined(separator: " | ")
    let line = "\(RFC3339.format(Int64(time(nil)))) \(program)[\(Sys.processID())] summary: \(text)\n"
    try? file.append(Array(line.utf8))
}
