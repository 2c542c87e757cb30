@_exported import CourierTestSupport
import Foundation
import Testing

/// Runs the built programs as an operator would: real processes, real files, exit codes and output.
enum Programs {
    /// The directory holding the built executables: $COURIER_BIN, or the directory of this test
    /// binary (SwiftPM puts executables and the test bundle side by side).
    static let binDir: String = {
        if let env = ProcessInfo.processInfo.environment["COURIER_BIN"], !env.isEmpty { return env }
        let exe =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }()

    struct Result {
        var status: Int32
        /// Standard output as bytes (an archive on stdout); `stdout` is the same as text.
        var output: Data
        var stderr: String
        var stdout: String { String(decoding: output, as: UTF8.self) }
    }

    /// One of the built programs, by name.
    @discardableResult
    static func run(_ program: String, _ args: [String], env: [String: String] = [:]) throws -> Result {
        try runTool(binDir + "/" + program, args, env: env)
    }

    /// Any program by absolute path (curl, openssl, bsdtar), in `cwd` when given, with `env` over
    /// this process's environment; both outputs captured. The one copy of the capture code.
    @discardableResult
    static func runTool(_ path: String, _ args: [String], env: [String: String] = [:], cwd: String? = nil) throws
        -> Result
    {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        p.environment = environment
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read both pipes before waiting so a chatty child cannot block on a full pipe.
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, output: o, stderr: String(decoding: e, as: UTF8.self))
    }
}

final class TempDir {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.path + "/courier-e2e-\(getpid())-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func sub(_ rel: String) -> String { path + "/" + rel }

    func write(_ rel: String, _ text: String) {
        let full = sub(rel)
        try! FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try! text.write(toFile: full, atomically: false, encoding: .utf8)
    }
}

/// 2,000 signature lines with distinct hashes, the same in every revision: compresses like a real
/// signature file (not like one repeated line), so a delta that leaves it alone is much smaller
/// than the full package and the stager publishes it (it skips deltas of >= 90 % of the full).
let stableSignatures: String = {
    var x: UInt64 = 0x9E37_79B9_7F4A_7C15
    return (0..<2000).map { i -> String in
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        return "Courier.Test.Sig-\(i):0:*:\(String(x, radix: 16))\(String(x &* 31, radix: 16))"
    }.joined(separator: "\n") + "\n"
}()
