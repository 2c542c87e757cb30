import ArgumentParser
import CourierCore
@preconcurrency import Glibc

/// Writes a line to standard error (unbuffered, so it interleaves correctly with child output).
/// Control characters in it are escaped (Escape.line): an error names untrusted files.
public func printError(_ s: String) {
    var line = Escape.line(s.hasSuffix("\n") ? String(s.dropLast()) : s)
    if !line.hasSuffix("\n") { line += "\n" }
    try? Sys.writeAll(2, Array(line.utf8), display: "standard error")
}

/// Runs a command body and maps a `CourierError` to its documented exit code, printing the
/// message prefixed with the program name. Only executables decide exit codes.
public func mapErrors(_ program: String, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as CourierError {
        printError("\(program): error: \(e.description)")
        throw ExitCode(ExitStatus.for(e.code).rawValue)
    }
}

public func mapErrors(_ program: String, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let e as CourierError {
        printError("\(program): error: \(e.description)")
        throw ExitCode(ExitStatus.for(e.code).rawValue)
    }
}

/// Parses a duration option value or fails validation with a helpful message.
public func parseDuration(_ s: String, option: String) throws -> Int64 {
    guard let v = DurationParser.seconds(s) else {
        throw ValidationError("\(option): '\(s)' is not a duration (examples: 90s, 15m, 6h, 30d, 1h30m)")
    }
    return v
}
