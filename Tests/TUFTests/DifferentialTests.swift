import Foundation
import Testing

/// courier-tuf and python-tuf 7.0.1's ngclient (`Tests/Support/pytufclient.py`, the same CLI
/// protocol) run the same command sequence against the same repository: each step must give the
/// same exit status, the same metadata requests in the same order, the same target requests, the
/// same metadata files (python's `root_history/` aside) and the same stored targets.
@Suite(.serialized) struct DifferentialTests {
    struct Client {
        let name: String
        let argv0: [String]
    }

    static let clients = [
        Client(name: "courier", argv0: [TUFCLITests.binDir + "/courier-tuf"]),
        Client(
            name: "python", argv0: ["/usr/bin/env", "python3", TestServers.repoRoot + "/Tests/Support/pytufclient.py"]),
    ]

    static func run(_ argv: [String]) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// One step for both clients, mismatches recorded; returns courier's exit status and requests.
    @discardableResult
    func step(_ label: String, _ ws: TUFWorkspace, _ server: TUFServer, _ args: (String) -> [String]) throws -> (
        Int32, [String]
    ) {
        var statuses: [String: Int32] = [:]
        var requests: [String: [String]] = [:]
        for c in Self.clients {
            server.clearLog()
            statuses[c.name] = try Self.run(c.argv0 + args(c.name))
            requests[c.name] = server.requests()
        }
        #expect(statuses["courier"] == statuses["python"], "\(label): exit status")
        let (a, b) = (requests["courier"]!, requests["python"]!)
        // Metadata in the same order; targets the same set (courier fetches several small
        // targets at once, so their order on the wire varies; they are stored in order).
        let metadata = { (r: [String]) in r.filter { !$0.hasPrefix("/targets/") } }
        let targets = { (r: [String]) in r.filter { $0.hasPrefix("/targets/") }.sorted() }
        #expect(metadata(a) == metadata(b), "\(label): metadata requests\n courier: \(a)\n python:  \(b)")
        #expect(targets(a) == targets(b), "\(label): target requests\n courier: \(a)\n python:  \(b)")
        for dir in ["md", "tg"] {
            let ca = ws.list("courier/\(dir)").filter { $0 != "root_history" && !$0.hasPrefix(".") }
            let pa = ws.list("python/\(dir)").filter {
                $0 != "root_history" && !$0.hasPrefix(".") && !$0.hasPrefix("tmp")
            }
            #expect(ca == pa, "\(label): files in \(dir)")
            for f in ca where pa.contains(f) {
                #expect(
                    ws.read("courier/\(dir)/\(f)") == ws.read("python/\(dir)/\(f)"), "\(label): \(dir)/\(f) differs")
            }
        }
        return (statuses["courier"]!, a)
    }

    func scenario(_ ws: TUFWorkspace, _ repo: TestRepo, targets: [String]) throws {
        let server = try TUFServer(repo, ws)
        let md = { (c: String) in ws.path("\(c)/md") }
        let tg = { (c: String) in ws.path("\(c)/tg") }
        try step("init", ws, server) { ["--metadata-dir", md($0), "init", repo.dir + "/metadata/1.root.json"] }
        try step("refresh", ws, server) { ["--metadata-dir", md($0), "--metadata-url", server.metadataURL, "refresh"] }
        let download = { (c: String) -> [String] in
            ["--metadata-dir", md(c), "--metadata-url", server.metadataURL]
                + targets.flatMap { ["--target-name", $0] }
                + ["--target-base-url", server.targetsURL, "--target-dir", tg(c), "download"]
        }
        let first = try step("download", ws, server, download)
        #expect(first.0 == 0 && first.1.contains { $0.hasPrefix("/targets/") })
        let again = try step("download again", ws, server, download)
        #expect(again.0 == 0 && !again.1.contains { $0.hasPrefix("/targets/") })
        try repo.run(["rotate-root"])
        try repo.run(
            ["add-target", targets[0], "changed content"]
                + (targets[0].hasPrefix("deleg/") ? ["--role", "role/with space"] : []))
        try step("download after a change", ws, server, download)
        try step("refresh with nothing new", ws, server) {
            ["--metadata-dir", md($0), "--metadata-url", server.metadataURL, "refresh"]
        }
        let missing = try step("missing target", ws, server) {
            [
                "--metadata-dir", md($0), "--metadata-url", server.metadataURL, "--target-name", "nope",
                "--target-base-url", server.targetsURL, "--target-dir", tg($0), "download",
            ]
        }
        #expect(missing.0 == 1)
        #expect(ws.list("courier/tg").count == targets.count)
    }

    @Test func consistentSnapshotsWithADelegatedRole() throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        try repo.run(["add-target", "a/one.txt", "one"])
        try repo.run(["delegate", "role/with space", "deleg/*"])
        try repo.run(["add-target", "deleg/x.txt", "xx", "--role", "role/with space"])
        try repo.run(["rotate-root"])
        try scenario(ws, repo, targets: ["deleg/x.txt", "a/one.txt"])
    }

    @Test func plainNames() throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws, [])
        try repo.run(["add-target", "one.txt", "one"])
        try scenario(ws, repo, targets: ["one.txt"])
    }

    @Test func rotatedTimestampKey() throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        try repo.run(["add-target", "one.txt", "one"])
        let server = try TUFServer(repo, ws)
        let md = { (c: String) in ws.path("\(c)/md") }
        try step("init", ws, server) { ["--metadata-dir", md($0), "init", repo.dir + "/metadata/1.root.json"] }
        try step("refresh", ws, server) { ["--metadata-dir", md($0), "--metadata-url", server.metadataURL, "refresh"] }
        try repo.run(["rotate-timestamp-key"])
        try step("refresh after rotation", ws, server) {
            ["--metadata-dir", md($0), "--metadata-url", server.metadataURL, "refresh"]
        }
        try repo.control(endless: ["/metadata/timestamp.json"])
        let endless = try step("endless timestamp", ws, server) {
            ["--metadata-dir", md($0), "--metadata-url", server.metadataURL, "refresh"]
        }
        #expect(endless.0 == 1)
    }
}
