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
    let file: LogFile?

    public init(program: String, level: Logger.Level, stderrLevel: Logger.Level, file: LogFile?) {
        self.program = program
        self.logLevel = level
        self.stderrLevel = stderrLevel
        self.file = file
    }

    /// A log file open for appending, shared by every copy of the handler (swift-log copies it
    /// per logger) and closed when the last one is dropped.
    public final class LogFile: Sendable {
        public let path: String
        let fd: OwnedFD

        /// Opens `path` for appending (created 0640), or throws naming it. `O_NOFOLLOW`: a
        /// symlink planted where a root program's log goes must not redirect its appends into
        /// another file; `O_CLOEXEC`: commands run by the program do not inherit the log.
        public init(_ path: String) throws {
            self.path = path
            self.fd = try OwnedFD.open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o640)
        }

        /// Writes `bytes` with one `write` (whole lines stay whole when processes share the file).
        public func append(_ bytes: [UInt8]) throws {
            try Sys.writeAll(fd.raw, bytes, display: path)
        }
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
        if let file, level >= logLevel { try? file.append(bytes) }
    }
}
