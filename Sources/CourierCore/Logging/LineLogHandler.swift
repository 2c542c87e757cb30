@preconcurrency import Glibc
import Logging

/// A swift-log handler that writes one line per event —
/// `2026-11-21T13:00:00Z courier-stage[123] info: message key=value` —
/// to standard error (at `stderrLevel` and above) and, when given, appended to a log file (at
/// `level` and above). The file is opened `O_APPEND` and never truncated, so it survives runs
/// and updates; one `write` per line keeps lines whole when processes share it.
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public let program: String
    public let stderrLevel: Logger.Level
    let fileFD: Int32?

    public init(program: String, level: Logger.Level, stderrLevel: Logger.Level, fileFD: Int32?) {
        self.program = program
        self.logLevel = level
        self.stderrLevel = stderrLevel
        self.fileFD = fileFD
    }

    /// Opens a log file for appending (created 0640), or throws naming it. `O_NOFOLLOW`: a
    /// symlink planted where a root program's log goes must not redirect its appends into another
    /// file; `O_CLOEXEC`: commands run by the program do not inherit the log.
    public static func openLogFile(_ path: String) throws -> Int32 {
        try Sys.open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o640)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = event.level
        // One event, one line, whatever the message carries: anything untrusted that reached the
        // message unescaped (a name, command output) is escaped here (Escape.line).
        var line =
            "\(RFC3339.format(Int64(time(nil)))) \(program)[\(Sys.processID())] \(level): \(Escape.line(event.message.description))"
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for k in merged.keys.sorted() { line += " \(Escape.line(k))=\(Escape.line("\(merged[k]!)"))" }
        line += "\n"
        let bytes = Array(line.utf8)
        if level >= stderrLevel { try? Sys.writeAll(2, bytes, display: "standard error") }
        if let fd = fileFD, level >= logLevel { try? Sys.writeAll(fd, bytes, display: "log file") }
    }
}
