import Foundation
import Testing

/// `courier-stage run` as cron runs it: real processes, exit codes, crashes at every publish step.
@Suite(.serialized) struct StageE2ETests {
    func setup(_ t: TempDir, types: String = "") throws -> String {
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        t.write(
            "stage.toml",
            """
            outbox = "outbox"
            key = "stage.key"
            state_dir = "state"

            [types.virus-defs]
            source = "dir"
            path = "upstream"
            keep_revisions = 3
            deltas = 2
            \(types)
            """)
        return t.sub("stage.toml")
    }

    func revision(_ t: TempDir, _ rev: Int, _ text: String) {
        t.write("upstream/\(rev)/main.ndb", stableSignatures)  // large and unchanged: a delta pays
        t.write("upstream/\(rev)/daily.ndb", text)
    }

    /// Every visible package in the outbox verifies, and `latest` names a complete revision.
    func checkOutboxConsistent(_ t: TempDir, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let fm = FileManager.default
        let typeDir = t.sub("outbox/virus-defs")
        guard fm.fileExists(atPath: typeDir) else { return }
        for rev in try fm.contentsOfDirectory(atPath: typeDir) where !rev.hasPrefix(".") && Int(rev) != nil {
            let pkgs = try fm.contentsOfDirectory(atPath: typeDir + "/" + rev).filter { !$0.hasPrefix(".") }
            #expect(
                pkgs.contains("virus-defs_\(rev).cpkg"), "revision \(rev) has no full package",
                sourceLocation: sourceLocation)
            for p in pkgs {
                let v = try Programs.run(
                    "courier-deliver", ["verify", "--trust", t.sub("stage.key.pub"), typeDir + "/" + rev + "/" + p])
                #expect(v.status == 0, "\(p): \(v.stdout)", sourceLocation: sourceLocation)
            }
        }
        if let l = try? String(contentsOfFile: typeDir + "/latest.txt", encoding: .utf8) {
            let rev = l.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(fm.fileExists(atPath: typeDir + "/\(rev)/virus-defs_\(rev).cpkg"), sourceLocation: sourceLocation)
        }
    }

    @Test func runIsSilentUnderCronAndReportsJSONAndMetrics() throws {
        let t = TempDir()
        let cfg = try setup(t)
        revision(t, 20_261_121_001, "a\n")
        let r = try Programs.run(
            "courier-stage",
            ["run", "--config", cfg, "--metrics-file", t.sub("stage.prom"), "--log-file", t.sub("stage.log")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.isEmpty && r.stderr.isEmpty, "silent when stdout is not a terminal: \(r.stdout)\(r.stderr)")
        let prom = try String(contentsOfFile: t.sub("stage.prom"), encoding: .utf8)
        #expect(prom.contains("courier_stage_type_revision{type=\"virus-defs\"} 20261121001"))
        #expect(prom.contains("courier_stage_last_success_timestamp_seconds"))
        let log1 = try String(contentsOfFile: t.sub("stage.log"), encoding: .utf8)
        #expect(log1.contains("publishing revision 20261121001"))

        revision(t, 20_261_122_001, "b\n")
        let j = try Programs.run("courier-stage", ["run", "--config", cfg, "--json", "--log-file", t.sub("stage.log")])
        #expect(j.status == 0)
        let obj = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as! [String: Any]
        let types = obj["types"] as! [[String: Any]]
        #expect(types[0]["status"] as? String == "published")
        #expect((types[0]["deltas"] as! [[String: Any]]).count == 1)
        let log2 = try String(contentsOfFile: t.sub("stage.log"), encoding: .utf8)
        #expect(log2.hasPrefix(log1), "the log is appended, never truncated")

        let list = try Programs.run("courier-stage", ["list", "--outbox", t.sub("outbox")])
        #expect(list.status == 0)
        #expect(list.stdout.contains("* 20261122001") && list.stdout.contains("delta from 20261121001"))
        let lj = try Programs.run("courier-stage", ["list", "--outbox", t.sub("outbox"), "--json"])
        #expect((try JSONSerialization.jsonObject(with: Data(lj.stdout.utf8)) as? [String: Any])?["types"] != nil)
    }

    @Test func configErrorsExitTwoNamingFileAndLine() throws {
        let t = TempDir()
        _ = try setup(t, types: "colour = \"blue\"")
        let r = try Programs.run("courier-stage", ["run", "--config", t.sub("stage.toml")])
        #expect(r.status == 2)
        #expect(r.stderr.contains("stage.toml:10: 'types.virus-defs.colour' is not a known key"), "\(r.stderr)")
    }

    @Test func aFailingTypeGivesDoneWithErrorsAndAMessageOnStderr() throws {
        let t = TempDir()
        let cfg = try setup(t, types: "\n[types.gone]\nsource = \"dir\"\npath = \"nowhere\"\n")
        revision(t, 3, "x\n")
        let r = try Programs.run("courier-stage", ["run", "--config", cfg])
        #expect(r.status == 16)
        #expect(r.stderr.contains("gone: FAILED"))
        #expect(FileManager.default.fileExists(atPath: t.sub("outbox/virus-defs/3/virus-defs_3.cpkg")))
    }

    @Test func twoConcurrentRunsOneExitsWithSeventeen() throws {
        let t = TempDir()
        let cfg = try setup(t)
        // A large revision makes the first run last long enough to overlap.
        t.write("upstream/11/big.db", String(repeating: "0123456789abcdef", count: 4 << 20))
        let first = Process()
        first.executableURL = URL(fileURLWithPath: Programs.binDir + "/courier-stage")
        first.arguments = ["run", "--config", cfg]
        try first.run()
        var second: Programs.Result? = nil
        for _ in 0..<100 {
            usleep(20_000)
            if FileManager.default.fileExists(atPath: t.sub("state/lock")) {
                second = try Programs.run("courier-stage", ["run", "--config", cfg])
                if second?.status == 17 { break }
            }
        }
        first.waitUntilExit()
        #expect(first.terminationStatus == 0)
        #expect(second?.status == 17, "second run: \(String(describing: second))")
        #expect(second?.stderr.contains("another courier-stage run holds") == true)
    }

    @Test(arguments: ["after-full", "after-delta", "before-rename", "after-rename"])
    func killedDuringPublishLeavesNoPartialPackageAndTheNextRunCompletes(point: String) throws {
        let t = TempDir()
        let cfg = try setup(t)
        revision(t, 100, "one\n")
        #expect(try Programs.run("courier-stage", ["run", "--config", cfg]).status == 0)
        revision(t, 101, "two\n")
        let killed = try Programs.run("courier-stage", ["run", "--config", cfg], env: ["COURIER_FAULT": point])
        #expect(
            killed.status == 9 || killed.status == 137 || killed.status == -9 || killed.status != 0,
            "status \(killed.status)")
        try checkOutboxConsistent(t)
        let latestAfterKill = try String(contentsOfFile: t.sub("outbox/virus-defs/latest.txt"), encoding: .utf8)
        #expect(latestAfterKill == "100\n", "latest switches only after a complete revision is in place")

        let again = try Programs.run("courier-stage", ["run", "--config", cfg, "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        try checkOutboxConsistent(t)
        #expect(try String(contentsOfFile: t.sub("outbox/virus-defs/latest.txt"), encoding: .utf8) == "101\n")
        #expect(FileManager.default.fileExists(atPath: t.sub("outbox/virus-defs/101/virus-defs_101_from_100.cpkg")))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: t.sub("outbox/virus-defs")).filter {
            $0.hasPrefix(".")
        }
        #expect(leftovers.isEmpty, "\(leftovers)")
        let idx = try String(contentsOfFile: t.sub("outbox/index.json"), encoding: .utf8)
        #expect(idx.contains("\"latest\" : 101"))
    }

    /// Issue #11.11: a stager killed after a publication but before its `latest` link, its
    /// retention or its index write must not leave a stale index.json behind an exit-0 run: the
    /// next run (with nothing new upstream) repairs the link, trims, and rewrites the index from
    /// the outbox, so that the index lists exactly the packages on disk and the link's revision.
    @Test(arguments: ["latest-before-link", "before-retention", "before-index"])
    func killedBeforeTheIndexTheNextRunRepairsIt(point: String) throws {
        let t = TempDir()
        let cfg = try setup(t)  // keep_revisions = 3
        for rev in 1...3 {
            revision(t, rev, "rev \(rev)\n")
            #expect(try Programs.run("courier-stage", ["run", "--config", cfg]).status == 0)
        }
        revision(t, 4, "rev 4\n")
        let killed = try Programs.run("courier-stage", ["run", "--config", cfg], env: ["COURIER_FAULT": point])
        #expect(killed.status != 0, "the run was not killed at \(point)")

        let again = try Programs.run("courier-stage", ["run", "--config", cfg, "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        try checkOutboxConsistent(t)
        let typeDir = t.sub("outbox/virus-defs")
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: typeDir + "/latest")
        #expect(link == "4", "latest link names \(link)")
        #expect(try String(contentsOfFile: typeDir + "/latest.txt", encoding: .utf8) == "4\n")
        let onDisk = try FileManager.default.contentsOfDirectory(atPath: typeDir).compactMap { Int($0) }.sorted()
        #expect(onDisk == [2, 3, 4], "retention did not run: \(onDisk)")

        let idx = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: t.sub("outbox/index.json"))))
                as? [String: Any])
        let info = try #require((idx["types"] as? [String: Any])?["virus-defs"] as? [String: Any])
        #expect(info["latest"] as? Int == 4)
        let revs = try #require(info["revisions"] as? [[String: Any]])
        #expect(revs.compactMap { $0["revision"] as? Int } == onDisk, "index lists revisions that are not on disk")
        var listed = Set<String>()
        for r in revs {
            for p in (r["packages"] as? [[String: Any]]) ?? [] {
                let file = try #require(p["file"] as? String)
                listed.insert(file)
                let attrs = try FileManager.default.attributesOfItem(atPath: t.sub("outbox/" + file))
                #expect(attrs[.size] as? Int == p["size"] as? Int, "\(file): size in the index differs from the disk")
            }
        }
        var present = Set<String>()
        for rev in onDisk {
            for f in try FileManager.default.contentsOfDirectory(atPath: typeDir + "/\(rev)") where !f.hasPrefix(".") {
                present.insert("virus-defs/\(rev)/\(f)")
            }
        }
        #expect(listed == present, "index.json and the outbox disagree")

        // A run with nothing to do leaves the repaired index byte for byte as it is.
        let before = try Data(contentsOf: URL(fileURLWithPath: t.sub("outbox/index.json")))
        sleep(1)
        #expect(try Programs.run("courier-stage", ["run", "--config", cfg]).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: t.sub("outbox/index.json"))) == before)
    }
}

/// `courier-stage fetch` killed mid-download (kill -9), then run again: it resumes with a Range
/// request from what reached the disk and produces the exact file.
@Suite(.serialized) struct FetchResumeE2ETests {
    @Test func resumeAfterKillMidDownload() throws {
        let t = TempDir()
        let log = t.sub("server.log")
        FileManager.default.createFile(atPath: log, contents: nil)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        server.arguments = ["python3", repo + "/Tests/Support/faultserver.py", log]
        let out = Pipe()
        server.standardOutput = out
        try server.run()
        defer {
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        var text = ""
        while !text.contains("\n") { text += String(decoding: out.fileHandleForReading.availableData, as: UTF8.self) }
        let port = Int(text.split(separator: "\n")[0])!
        let size = 8_000_000
        let url = "http://127.0.0.1:\(port)/stallonce/k1?size=\(size)&after=3000000&delay=60"

        let first = Process()
        first.executableURL = URL(fileURLWithPath: Programs.binDir + "/courier-stage")
        first.arguments = ["fetch", url, "--out", t.sub("feed.bin"), "--retry-for", "0s", "--read-timeout", "120"]
        first.standardError = FileHandle.nullDevice
        try first.run()
        // Wait until part of the body is on disk, then kill -9.
        #expect(
            waitFor(20) {
                ((try? FileManager.default.attributesOfItem(atPath: t.sub("feed.bin.partial"))[.size] as? Int) ?? 0)
                    > 1_000_000
            })
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        #expect(!FileManager.default.fileExists(atPath: t.sub("feed.bin")), "no final file from a killed download")
        let partial = (try FileManager.default.attributesOfItem(atPath: t.sub("feed.bin.partial"))[.size] as? Int) ?? 0

        let again = try Programs.run("courier-stage", ["fetch", url, "--out", t.sub("feed.bin"), "--retry-for", "0s"])
        #expect(again.status == 0, "\(again.stderr)")
        let data = try Data(contentsOf: URL(fileURLWithPath: t.sub("feed.bin")))
        #expect(data.count == size)
        // The same deterministic bytes the server generates (faultserver.py: BLOCK[o % 65521]).
        var block = [UInt8](repeating: 0, count: 65521)
        for i in 0..<65521 { block[i] = UInt8(truncatingIfNeeded: (i * 131 + (i >> 8)) & 0xff) }
        var ok = true
        data.withUnsafeBytes { raw in
            let b = raw.bindMemory(to: UInt8.self)
            for o in stride(from: 0, to: size, by: 997) where b[o] != block[o % 65521] {
                ok = false
                break
            }
        }
        #expect(ok, "content differs from the server's")
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        let ranged = lines.filter { $0.contains("\"range\": \"bytes=") || $0.contains("\"range\":\"bytes=") }
        #expect(!ranged.isEmpty, "the second run resumed with a Range request: \(lines.last ?? "")")
        #expect(ranged.contains { $0.contains("bytes=\(partial)-") }, "resumed from the \(partial) bytes on disk")
    }
}
