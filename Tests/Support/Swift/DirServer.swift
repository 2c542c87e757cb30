import Foundation
@preconcurrency import Glibc

/// Python's http.server on 127.0.0.1 serving a directory: real HTTP with Last-Modified and 304s.
/// Killed when the value goes away. One copy for StageTests and the torture tests (#17.5).
public final class DirServer {
    public let process = Process()
    public let port: Int

    public init(root: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", root]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        var text = ""
        let deadline = Date().addingTimeInterval(10)
        while !text.contains(")") && Date() < deadline {
            text += String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        }
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        guard let r = text.range(of: "port "), let p = Int(text[r.upperBound...].prefix(while: { $0.isNumber })) else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw TestServers.StartFailure(description: "http.server did not say its port: \(text)")
        }
        port = p
    }

    public func url(_ path: String) -> String { "http://127.0.0.1:\(port)/\(path)" }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
