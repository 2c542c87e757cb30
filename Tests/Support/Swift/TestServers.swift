import Foundation

/// The Python servers the Swift tests talk to (Tests/Support/faultserver.py, tufserver.py) print
/// the port they bound on their first line of stdout. One starter for StageTests, TUFTests and the
/// end-to-end tests, which each had a copy (issue #17.5).
public enum TestServers {
    /// The package's root, from this file's place (Tests/Support/Swift/TestServers.swift).
    public static let repoRoot: String = {
        var u = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { u.deleteLastPathComponent() }
        return u.path
    }()

    /// Why a server did not start: what it printed instead of a port.
    public struct StartFailure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Runs `python3 Tests/Support/<script> <args…>` as `process` and returns the port it
    /// printed. A server that exits or prints no port is killed and reported with its output.
    public static func startPython(_ process: Process, script: String, _ args: [String]) throws -> Int {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", repoRoot + "/Tests/Support/" + script] + args
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var text = ""
        while !text.contains("\n") {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            text += String(decoding: d, as: UTF8.self)
        }
        guard let port = Int(text.split(separator: "\n").first ?? "") else {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            throw StartFailure(description: "\(script) did not print its port: '\(text)'")
        }
        return port
    }
}
