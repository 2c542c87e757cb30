import Foundation
import Testing

/// `courier-tuf` as the conformance suite runs it: real processes, exit codes 0 and 1 only.
@Suite(.serialized) struct TUFCLITests {
    static let binDir: String = {
        if let env = ProcessInfo.processInfo.environment["COURIER_BIN"], !env.isEmpty { return env }
        let exe =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    @discardableResult
    static func run(_ args: [String]) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binDir + "/courier-tuf")
        p.arguments = args
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(
            status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
            stderr: String(decoding: e, as: UTF8.self))
    }

    @Test func initRefreshDownloadAsTheConformanceSuiteCallsThem() throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        try repo.run(["add-target", "a/one.txt", "one"])
        try repo.run(["add-target", "two.txt", "two"])
        let server = try TUFServer(repo, ws)
        let md = ws.path("md")
        let tg = ws.path("tg")
        try FileManager.default.createDirectory(atPath: md, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: tg, withIntermediateDirectories: true)

        let i = try Self.run(["--metadata-dir", md, "init", repo.dir + "/metadata/1.root.json"])
        #expect(i.status == 0, "\(i.stderr)")
        #expect(ws.read("md/root.json") == repo.metadata("1.root.json"))
        #expect(server.requests().isEmpty)

        // The runner puts --metadata-url first: options in any order.
        let r = try Self.run(["--metadata-url", server.metadataURL, "--metadata-dir", md, "refresh"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(ws.read("md/timestamp.json") == repo.metadata("timestamp.json"))

        let d = try Self.run([
            "--metadata-url", server.metadataURL, "--metadata-dir", md,
            "--target-name", "a/one.txt", "--target-name", "two.txt",
            "--target-dir", tg, "--target-base-url", server.targetsURL, "download",
        ])
        #expect(d.status == 0, "\(d.stderr)")
        #expect(ws.read("tg/a%2Fone.txt") == Array("one".utf8))
        #expect(ws.read("tg/two.txt") == Array("two".utf8))

        // Again: nothing fetched from the targets store.
        server.clearLog()
        let again = try Self.run([
            "--metadata-dir", md, "--metadata-url", server.metadataURL, "--target-name", "two.txt",
            "--target-base-url", server.targetsURL, "--target-dir", tg, "download",
        ])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(!server.requests().contains { $0.hasPrefix("/targets/") })
        #expect(again.stderr.contains("already present"))

        // A target the repository does not list: exit 1, the earlier one still downloaded.
        let missing = try Self.run([
            "--metadata-dir", md, "--metadata-url", server.metadataURL,
            "--target-name", "no\nsuch", "--target-base-url", server.targetsURL,
            "--target-dir", tg, "download",
        ])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("'no\\nsuch' is not in"), "\(missing.stderr)")
    }

    @Test func downloadStopsAtTheFirstFailingTarget() throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        try repo.run(["add-target", "two.txt", "two"])
        let server = try TUFServer(repo, ws)
        let md = ws.path("md")
        let tg = ws.path("tg")
        #expect(try Self.run(["--metadata-dir", md, "init", repo.dir + "/metadata/1.root.json"]).status == 0)
        let d = try Self.run([
            "--metadata-dir", md, "--metadata-url", server.metadataURL,
            "--target-name", "missing.txt", "--target-name", "two.txt",
            "--target-base-url", server.targetsURL, "--target-dir", tg, "download",
        ])
        #expect(d.status == 1)
        #expect(!ws.exists("tg/two.txt"))
        #expect(!server.requests().contains { $0.hasPrefix("/targets/") })
    }

    /// The conformance suite moves the clock with `faketime` (LD_PRELOAD over `time()`).
    /// Not under `make test-asan`/`test-tsan` (COURIER_SANITIZER set): a sanitized program hangs
    /// at start-up under faketime, before any Courier code runs — the sanitizer's allocator, with
    /// its lock held, reads the clock; libfaketime, not yet initialized, looks the real
    /// clock_gettime up with dlsym, which mallocs, and waits for that same lock.
    @Test(
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/faketime")),
        .disabled(
            if: ProcessInfo.processInfo.environment["COURIER_SANITIZER"] != nil,
            "faketime's LD_PRELOAD deadlocks a sanitized program at start-up"))
    func expiryFollowsFaketime() throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        let server = try TUFServer(repo, ws)
        let md = ws.path("md")
        #expect(try Self.run(["--metadata-dir", md, "init", repo.dir + "/metadata/1.root.json"]).status == 0)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/faketime")
        p.arguments = [
            "-f", "+400d", Self.binDir + "/courier-tuf", "--metadata-url", server.metadataURL,
            "--metadata-dir", md, "refresh",
        ]
        let err = Pipe()
        p.standardError = err
        try p.run()
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 1)
        #expect(e.contains("expired"), "\(e)")
        #expect(try Self.run(["--metadata-url", server.metadataURL, "--metadata-dir", md, "refresh"]).status == 0)
    }

    @Test func everyFailureExitsWith1() throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        let md = ws.path("md")
        // No trusted root yet.
        #expect(
            try Self.run(["--metadata-dir", md, "--metadata-url", "http://127.0.0.1:9/metadata", "refresh"]).status == 1
        )
        #expect(try Self.run(["--metadata-dir", md, "init", repo.dir + "/metadata/1.root.json"]).status == 0)
        // Nobody listening.
        let down = try Self.run(["--metadata-dir", md, "--metadata-url", "http://127.0.0.1:9/metadata", "refresh"])
        #expect(down.status == 1)
        #expect(down.stderr.contains("courier-tuf: error:"))
        // Usage errors too (ArgumentParser's own would be 64).
        #expect(try Self.run(["--metadata-dir", md, "refresh"]).status == 1)
        #expect(try Self.run(["--metadata-dir", md, "frobnicate"]).status == 1)
        #expect(try Self.run(["--metadata-dir", md, "init"]).status == 1)
        #expect(try Self.run(["--metadata-dir", md, "init", ws.path("nonexistent.json")]).status == 1)
        let help = try Self.run(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("--target-name"))
    }
}
