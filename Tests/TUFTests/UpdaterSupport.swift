import CourierCore
import CourierFetch
import CourierTUF
import CourierTestSupport
import Foundation
import Logging

/// A temporary directory for one test, removed when the value goes away.
final class TUFWorkspace {
    let root: String

    init() {
        root =
            FileManager.default.temporaryDirectory.path
            + "/courier-tuf-tests-\(getpid())-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func path(_ rel: String) -> String { root + "/" + rel }

    func read(_ rel: String) -> [UInt8]? { FileManager.default.contents(atPath: path(rel)).map { Array($0) } }

    func exists(_ rel: String) -> Bool { FileManager.default.fileExists(atPath: path(rel)) }

    func list(_ rel: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path(rel))) ?? []).sorted()
    }
}

/// A repository made by `Tests/Support/tufrepo.py` (python-tuf 7.0.1) under `ws/repo`.
struct TestRepo {
    let dir: String

    init(_ ws: TUFWorkspace, _ initArgs: [String] = ["--consistent"]) throws {
        dir = ws.path("repo")
        try run(["init"] + initArgs)
    }

    func run(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", TestServers.repoRoot + "/Tests/Support/tufrepo.py", dir] + args
        let err = Pipe()
        p.standardError = err
        try p.run()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw CourierError(.io, "tufrepo.py \(args): \(String(decoding: e, as: UTF8.self))")
        }
    }

    func metadata(_ name: String) -> [UInt8]? {
        FileManager.default.contents(atPath: dir + "/metadata/" + name).map { Array($0) }
    }

    /// Sets the server's `control.json` (endless bodies, forced statuses).
    func control(endless: [String] = [], status: [String: Int] = [:]) throws {
        let obj: [String: Any] = ["endless": endless, "status": status]
        try JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: dir + "/control.json"))
    }
}

/// `Tests/Support/tufserver.py` serving a `TestRepo`, killed when the value goes away.
final class TUFServer: @unchecked Sendable {
    let process = Process()
    let port: Int
    let logPath: String

    init(_ repo: TestRepo, _ ws: TUFWorkspace) throws {
        logPath = ws.path("server.log")
        FileManager.default.createFile(atPath: logPath, contents: nil)
        port = try TestServers.startPython(process, script: "tufserver.py", [repo.dir, logPath])
    }

    var metadataURL: String { "http://127.0.0.1:\(port)/metadata" }
    var targetsURL: String { "http://127.0.0.1:\(port)/targets" }

    /// The request paths so far, in order.
    func requests() -> [String] {
        guard let d = FileManager.default.contents(atPath: logPath) else { return [] }
        return String(decoding: d, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    func clearLog() { FileManager.default.createFile(atPath: logPath, contents: nil) }

    /// SIGKILL: children of the test process inherit its blocked signal mask.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

/// A client directory initialised with the repository's `1.root.json`, as `courier-tuf init` does.
func initClient(_ ws: TUFWorkspace, _ repo: TestRepo) throws -> (metadata: String, targets: String) {
    let md = ws.path("client/metadata")
    let tg = ws.path("client/targets")
    try FileManager.default.createDirectory(atPath: tg, withIntermediateDirectories: true)
    try MetadataStore(directory: md).initialize(trustedRoot: repo.dir + "/metadata/1.root.json")
    return (md, tg)
}

let testLogger = Logger(label: "tuf-tests")

/// Runs `body` with a fresh updater (and fetcher, shut down afterwards), as one CLI invocation would.
func withUpdater<T>(
    _ ws: TUFWorkspace, _ server: TUFServer, config: UpdaterConfig = UpdaterConfig(),
    referenceTime: Int64? = nil, _ body: (Updater) async throws -> T
) async throws -> T {
    let fetcher = Fetcher(policy: UpdaterConfig.fetchPolicy(userAgent: "courier-tuf-tests"), logger: testLogger)
    do {
        let u = try Updater(
            metadataDir: ws.path("client/metadata"), metadataBaseURL: server.metadataURL,
            targetDir: ws.path("client/targets"), targetBaseURL: server.targetsURL,
            fetcher: fetcher, config: config, logger: testLogger, referenceTime: referenceTime)
        let r = try await body(u)
        try await fetcher.shutdown()
        return r
    } catch {
        try? await fetcher.shutdown()
        throw error
    }
}
