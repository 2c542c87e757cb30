import Foundation
import Glibc
import Testing

/// Issue #15: a full disk under each program, through its command line, on small tmpfs mounts
/// (as root; each test says why when it cannot mount and records nothing else). What fails says
/// which path and "No space left on device", exits with its documented code, leaves what was
/// there before intact and nothing partial behind, and the first run after space is back does
/// the work.
///
/// Covered elsewhere, not repeated here: PushTests (DeliverTests) — the push library into a
/// 64 KiB and a read-only inbox; InboxdStateRepairTests — the running daemon with a full or
/// read-only store (retried by its timer) and a full state file system after an apply.
@Suite(.serialized) struct DiskFullTortureTests {
    /// Mounts a tmpfs, or records why not (the test then ends there).
    func mount(_ dir: String, _ size: String) -> Bool {
        if let why = StormKit.mountTmpfs(dir, size: size) {
            withKnownIssue("skipped: \(why) — the disk-full tests need root to mount tmpfs") {
                throw POSIXError(.EPERM)
            }
            return false
        }
        return true
    }

    func outboxSnapshot(_ t: TempDir) -> [String: Data] { treeContents(t.sub("outbox")) }

    /// The outbox on a full file system: exit 12, the staging path and ENOSPC named, the
    /// previous revision still `latest`, every visible package complete, no dot-leftovers, the
    /// outbox byte for byte as before; once space is back the next run publishes.
    @Test func stageWithAFullOutbox() throws {
        let t = TempDir()
        var rng = CrashRNG(seed: 0xD15C)
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        let cfg = StormKit.stageConfig(t, types: "[types.virus-defs]\nsource = \"dir\"\npath = \"upstream\"\n")
        guard mount(t.sub("outbox"), "2m") else { return }
        defer { StormKit.umount(t.sub("outbox")) }
        try StormKit.write(t.sub("upstream/1/main.db"), StormKit.randomBytes(300 << 10, &rng))
        #expect(try Programs.run("courier-stage", ["run", "--config", cfg]).status == 0)
        try StormKit.write(t.sub("upstream/2/main.db"), StormKit.randomBytes(600 << 10, &rng))
        StormKit.fill(t.sub("outbox"), name: ".fill")  // a dot-name: not an outbox entry
        let before = outboxSnapshot(t)
        let r = try Programs.run("courier-stage", ["run", "--config", cfg])
        #expect(r.status == 12, "exit \(r.status): \(r.stderr)")
        #expect(
            r.stderr.contains(t.sub("outbox/virus-defs/")) && r.stderr.contains("No space left on device"),
            "\(r.stderr)")
        #expect(outboxSnapshot(t) == before, "the outbox changed")
        let inv = OutboxInvariants(outbox: t.sub("outbox"), trust: t.sub("stage.key.pub"))
        #expect(inv.check(types: ["virus-defs"]).isEmpty, "\(inv.check(types: ["virus-defs"]))")
        let left = inv.leftovers(types: ["virus-defs"]).filter { $0 != ".fill" }
        #expect(left.isEmpty, "\(left)")
        #expect(try String(contentsOfFile: t.sub("outbox/virus-defs/latest.txt"), encoding: .utf8) == "1\n")

        try FileManager.default.removeItem(atPath: t.sub("outbox/.fill"))
        let again = try Programs.run("courier-stage", ["run", "--config", cfg])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try String(contentsOfFile: t.sub("outbox/virus-defs/latest.txt"), encoding: .utf8) == "2\n")
        #expect(inv.check(types: ["virus-defs"]).isEmpty && inv.leftovers(types: ["virus-defs"]).isEmpty)
        Torture.report(
            "DiskFullTortureTests.stageWithAFullOutbox: exit \(r.status), \"\(r.stderr.split(separator: "\n").first ?? "")\"; outbox unchanged; next run published"
        )
    }

    /// The state directory — where a `url` source downloads and a `tuf` source keeps its
    /// metadata and targets — on a full file system: both types fail with exit 12 naming the path
    /// and ENOSPC, the outbox is untouched; once space is back the next run publishes both.
    @Test func stageWithAFullStateAndWorkDirectory() throws {
        let t = TempDir()
        var rng = CrashRNG(seed: 0x57A7E)
        let fm = FileManager.default
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        try fm.createDirectory(atPath: t.sub("www"), withIntermediateDirectories: true)
        let http = try DirServer(root: t.sub("www"))
        let tuf = try StormTUF(dir: t.sub("tufrepo"))
        try fm.copyItem(atPath: tuf.rootPath, toPath: t.sub("vendor-root.json"))
        let cfg = StormKit.stageConfig(
            t,
            types: """
                [types.feed-url]
                source = "url"
                url = "\(http.url("feed.db"))"
                [types.rules-tuf]
                source = "tuf"
                metadata_url = "\(tuf.metadataURL)"
                targets_url = "\(tuf.targetsURL)"
                trusted_root = "vendor-root.json"
                target_pattern = "rules/*"
                """)
        guard mount(t.sub("state"), "8m") else { return }
        defer { StormKit.umount(t.sub("state")) }
        try StormKit.writeAtomically(t.sub("www/feed.db"), StormKit.randomBytes(200 << 10, &rng))
        try StormKit.write(t.sub("tufsrc/a.db"), StormKit.randomBytes(200 << 10, &rng))
        try tuf.addTargets([("rules/a.db", t.sub("tufsrc/a.db"))])
        let first = try Programs.run("courier-stage", ["run", "--config", cfg], env: StormKit.noProxy)
        #expect(first.status == 0, "\(first.stderr)")

        // New upstream revisions larger than what is left.
        try StormKit.writeAtomically(t.sub("www/feed.db"), StormKit.randomBytes(1 << 20, &rng))
        try fm.setAttributes([.modificationDate: Date().addingTimeInterval(60)], ofItemAtPath: t.sub("www/feed.db"))
        try StormKit.write(t.sub("tufsrc/a.db"), StormKit.randomBytes(1 << 20, &rng))
        try tuf.addTargets([("rules/a.db", t.sub("tufsrc/a.db"))])
        StormKit.fill(t.sub("state"))
        let before = outboxSnapshot(t)
        let lockBefore = fm.contents(atPath: t.sub("state/lock"))
        let r = try Programs.run("courier-stage", ["run", "--config", cfg], env: StormKit.noProxy)
        #expect(r.status == 12, "exit \(r.status): \(r.stderr)")
        for type in ["feed-url", "rules-tuf"] {
            let line = r.stderr.split(separator: "\n").first { $0.hasPrefix("\(type): FAILED") } ?? ""
            #expect(line.contains(t.sub("state/")) && line.contains("No space left on device"), "\(type): \(r.stderr)")
        }
        #expect(outboxSnapshot(t) == before, "the outbox changed")
        #expect(fm.contents(atPath: t.sub("state/lock")) == lockBefore || lockBefore == nil)
        #expect(
            !fm.fileExists(atPath: t.sub("state/feed-url/work"))
                && !fm.fileExists(atPath: t.sub("state/rules-tuf/work")))
        // No temporary of an atomic write left (a `.partial` download is kept on purpose: the
        // next run resumes it with a Range request).
        let temps = (fm.enumerator(atPath: t.sub("state"))?.allObjects as? [String] ?? []).filter {
            $0.contains(".tmp-")
        }
        #expect(temps.isEmpty, "\(temps)")

        try fm.removeItem(atPath: t.sub("state/fill"))
        let again = try Programs.run("courier-stage", ["run", "--config", cfg, "--json"], env: StormKit.noProxy)
        #expect(again.status == 0, "\(again.stderr)")
        let obj = try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any]
        let statuses = ((obj?["types"] as? [[String: Any]]) ?? []).map { $0["status"] as? String ?? "" }
        #expect(statuses == ["published", "published"], "\(again.stdout)")
        let inv = OutboxInvariants(outbox: t.sub("outbox"), trust: t.sub("stage.key.pub"))
        #expect(inv.check(types: ["feed-url", "rules-tuf"]).isEmpty)
        Torture.report(
            "DiskFullTortureTests.stageWithAFullStateAndWorkDirectory: exit \(r.status), "
                + r.stderr.split(separator: "\n").filter { $0.contains(": FAILED") }.map { "\"\($0)\"" }.joined(
                    separator: "; ")
                + "; outbox unchanged; next run published both")
    }

    /// One inbox of three on a full file system, through the CLI: exit 16, that inbox named with
    /// ENOSPC, the other two delivered, nothing visible and no temporary in the full one; once
    /// space is back the next push delivers there and the one after copies nothing.
    @Test func pushWithOneFullInbox() throws {
        let t = TempDir()
        var rng = CrashRNG(seed: 0x9F11)
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        try StormKit.write(t.sub("up/20261129001/main.db"), StormKit.randomBytes(1 << 20, &rng))
        let cfg = StormKit.stageConfig(t, types: "[types.virus-defs]\nsource = \"dir\"\npath = \"up\"\n")
        #expect(try Programs.run("courier-stage", ["run", "--config", cfg]).status == 0)
        let inboxes = (0..<3).map { t.sub("clients/c\($0)/inbox") }
        for ib in inboxes { try FileManager.default.createDirectory(atPath: ib, withIntermediateDirectories: true) }
        let full = t.sub("clients/c1/inbox")
        guard mount(full, "2m") else { return }
        defer { StormKit.umount(full) }
        StormKit.fill(full, name: ".fill")
        let args = [
            "push", "--outbox", t.sub("outbox"), "--trust", t.sub("stage.key.pub"), "--inbox", t.sub("clients/*/inbox"),
            "--jobs", "3",
        ]
        let env = ["XDG_CACHE_HOME": t.sub("cache")]
        let r = try Programs.run("courier-deliver", args, env: env)
        #expect(r.status == 16, "\(r.stdout)\(r.stderr)")
        let failed = r.stdout.split(separator: "\n").filter { $0.contains("FAILED") }
        #expect(
            failed.count == 1 && failed[0].contains(full) && failed[0].contains("No space left on device"),
            "\(r.stdout)")
        #expect(!r.stdout.contains("bytes for failed"), "\(r.stdout)")
        let name = "virus-defs_20261129001.cpkg"
        let want = FileManager.default.contents(atPath: t.sub("outbox/virus-defs/20261129001/\(name)"))
        for ib in inboxes where ib != full {
            #expect(StormKit.list(ib) == [name] && FileManager.default.contents(atPath: ib + "/" + name) == want)
        }
        #expect(StormKit.list(full) == [".fill"], "the full inbox holds \(StormKit.list(full))")

        try FileManager.default.removeItem(atPath: full + "/.fill")
        let again = try Programs.run("courier-deliver", args, env: env)
        #expect(again.status == 0, "\(again.stdout)")
        for ib in inboxes {
            #expect(
                StormKit.list(ib) == [name] && FileManager.default.contents(atPath: ib + "/" + name) == want,
                "\(ib): \(StormKit.list(ib))")
        }
        let noop = try Programs.run("courier-deliver", args, env: env)
        #expect(noop.status == 0 && noop.stdout.contains(" 0 copied"), "\(noop.stdout)")
        Torture.report(
            "DiskFullTortureTests.pushWithOneFullInbox: exit \(r.status), \"\(failed.first ?? "")\"; the other 2 inboxes delivered; the next push delivered"
        )
    }

    /// `courier-inboxd run --once` (as cron would run it) with its whole state directory — store,
    /// status, history — on one full file system: the package is not quarantined, stays in the
    /// inbox, `current` keeps the installed revision and no `.tmp` tree is left; a second run
    /// while still full does the same; once space is back the next run applies it, once.
    @Test func inboxdOnceWithAFullStateDirectory() throws {
        let c = try InboxdE2ETests.Client(top: "quarantine = \"quarantine\"")
        let state = c.t.sub("state")
        guard mount(state, "3m") else { return }
        defer { StormKit.umount(state) }
        let p1 = try c.build(1)
        let p2 = try c.build(2, bigMiB: 1)
        let once = ["run", "--config", c.t.sub("inboxd.toml"), "--once"]
        try FileManager.default.copyItem(atPath: p1, toPath: c.t.sub("inbox/virus-defs_1.cpkg"))
        #expect(try Programs.run("courier-inboxd", once).status == 0)
        #expect(c.installed() == 1)
        let tree1 = treeContents(state + "/store/virus-defs/1")
        StormKit.fill(state)
        try FileManager.default.copyItem(atPath: p2, toPath: c.t.sub("inbox/virus-defs_2.cpkg"))
        var codes: [Int32] = []
        var firstError = ""
        for _ in 0..<2 {
            let r = try Programs.run("courier-inboxd", once)
            codes.append(r.status)
            if firstError.isEmpty {
                firstError = r.stderr.split(separator: "\n").filter { $0.contains("No space") }.joined(separator: " / ")
            }
            #expect(r.status != 0, "a run that could not apply exited 0")
            #expect(r.stderr.contains("No space left on device"), "\(r.stderr)")
            #expect(c.inbox() == ["virus-defs_2.cpkg"], "inbox: \(c.inbox())")
            #expect(c.quarantined().isEmpty, "quarantined: \(c.quarantined())")
            #expect(
                (try? FileManager.default.destinationOfSymbolicLink(atPath: state + "/store/virus-defs/current")) == "1"
            )
            #expect(treeContents(state + "/store/virus-defs/1") == tree1)
            let wip = StormKit.list(state + "/store/virus-defs").filter { $0.hasSuffix(".tmp") || $0.hasPrefix(".") }
            #expect(wip.isEmpty, "work in progress left in the store: \(wip)")
        }
        try FileManager.default.removeItem(atPath: state + "/fill")
        let r = try Programs.run("courier-inboxd", once)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(c.installed() == 2 && c.inbox().isEmpty && c.quarantined().isEmpty)
        let history = (try? String(contentsOfFile: state + "/history.jsonl", encoding: .utf8)) ?? ""
        let applied2 = history.split(separator: "\n").filter {
            $0.contains("\"applied\"") && $0.contains("\"revision\":2")
                || $0.contains("\"applied\"") && $0.contains("\"revision\" : 2")
        }
        #expect(applied2.count == 1, "\(history)")
        Torture.report(
            "DiskFullTortureTests.inboxdOnceWithAFullStateDirectory: run --once exits \(codes.map(String.init).joined(separator: ", ")) while full, \"\(firstError)\"; not quarantined; applied once after space came back"
        )
    }

    /// `run --once` with only the store full (the state directory writable): the run says which
    /// path and ENOSPC, status.json records an `io` error and the package as retrying, the
    /// package stays in the inbox, not quarantined; once space is back the next run applies it.
    /// (InboxdStateRepairTests covers the same for the running daemon and its retry timer.)
    @Test func inboxdOnceWithAFullStore() throws {
        let c = try InboxdE2ETests.Client(top: "store = \"storefs\"\nquarantine = \"quarantine\"")
        let storefs = c.t.sub("storefs")
        guard mount(storefs, "2m") else { return }
        defer { StormKit.umount(storefs) }
        let p1 = try c.build(1, bigMiB: 1)
        let once = ["run", "--config", c.t.sub("inboxd.toml"), "--once"]
        StormKit.fill(storefs, name: ".fill")
        try FileManager.default.copyItem(atPath: p1, toPath: c.t.sub("inbox/virus-defs_1.cpkg"))
        let r = try Programs.run("courier-inboxd", once)
        #expect(r.status != 0, "a run that could not apply exited 0: \(r.stderr)")
        #expect(r.stderr.contains(storefs) && r.stderr.contains("No space left on device"), "\(r.stderr)")
        let status =
            (try? JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: c.t.sub("state/status.json"))))) as? [String: Any]
        let vd = (status?["types"] as? [String: Any])?["virus-defs"] as? [String: Any] ?? [:]
        #expect((vd["last_error"] as? [String: Any])?["code"] as? String == "io", "\(vd)")
        #expect(
            c.inbox() == ["virus-defs_1.cpkg"] && c.quarantined().isEmpty,
            "inbox \(c.inbox()), quarantine \(c.quarantined())")
        let wip = StormKit.list(storefs + "/virus-defs").filter {
            $0.hasSuffix(".tmp") || ($0.hasPrefix(".") && $0 != ".fill")
        }
        #expect(wip.isEmpty, "work in progress left in the store: \(wip)")
        try FileManager.default.removeItem(atPath: storefs + "/.fill")
        let again = try Programs.run("courier-inboxd", once)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(c.installed() == 1 && c.inbox().isEmpty && c.quarantined().isEmpty)
        let line = r.stderr.split(separator: "\n").first { $0.contains("No space") }.map(String.init) ?? ""
        Torture.report(
            "DiskFullTortureTests.inboxdOnceWithAFullStore: run --once exits \(r.status), \"\(line)\"; status last_error io; not quarantined; applied by the next run"
        )
    }

    /// courier-tuf with its target directory, then its metadata directory, on a full file
    /// system: exit 1 with the path and ENOSPC on stderr, no partial target or metadata file in
    /// place, the trusted metadata byte for byte as before (for the metadata case); once space is
    /// back the download completes.
    @Test func tufDownloadIntoAFullFileSystem() throws {
        let t = TempDir()
        var rng = CrashRNG(seed: 0x70F)
        let fm = FileManager.default
        let tuf = try StormTUF(dir: t.sub("tufrepo"))
        let small = StormKit.randomBytes(10 << 10, &rng)
        try StormKit.write(t.sub("src/small.db"), small)
        try tuf.addTargets([("defs/small.db", t.sub("src/small.db"))])
        let md = t.sub("md")
        let tg = t.sub("tg")
        guard mount(md, "1m") else { return }
        defer { StormKit.umount(md) }
        guard mount(tg, "1m") else { return }
        defer { StormKit.umount(tg) }
        #expect(try Programs.run("courier-tuf", ["--metadata-dir", md, "init", tuf.rootPath]).status == 0)
        func download(_ name: String) throws -> Programs.Result {
            try Programs.run(
                "courier-tuf",
                [
                    "--metadata-dir", md, "--metadata-url", tuf.metadataURL, "--target-name", name,
                    "--target-base-url", tuf.targetsURL + "/", "--target-dir", tg, "download",
                ], env: StormKit.noProxy)
        }
        let ok = try download("defs/small.db")
        #expect(ok.status == 0, "\(ok.stderr)")
        let stored = StormKit.list(tg)
        // A 2 MiB target into a 1 MiB target directory.
        let big = StormKit.randomBytes(2 << 20, &rng)
        try StormKit.write(t.sub("src/big.db"), big)
        try tuf.addTargets([("defs/big.db", t.sub("src/big.db"))])
        let r1 = try download("defs/big.db")
        #expect(r1.status == 1, "exit \(r1.status): \(r1.stderr)")
        #expect(r1.stderr.contains(tg) && r1.stderr.contains("No space left on device"), "\(r1.stderr)")
        #expect(StormKit.list(tg) == stored, "target directory: \(StormKit.list(tg)), before \(stored)")

        // The metadata directory full: the next targets version cannot be stored.
        let trusted = treeContents(md)
        try StormKit.write(t.sub("src/other.db"), StormKit.randomBytes(1 << 10, &rng))
        try tuf.addTargets([("defs/other.db", t.sub("src/other.db"))])
        StormKit.fill(md, name: ".fill")
        let r2 = try download("defs/other.db")
        #expect(r2.status == 1, "exit \(r2.status): \(r2.stderr)")
        #expect(r2.stderr.contains(md) && r2.stderr.contains("No space left on device"), "\(r2.stderr)")
        var now = treeContents(md)
        now[".fill"] = nil
        var was = trusted
        was[".fill"] = nil
        #expect(now == was, "trusted metadata changed: \(now.keys.sorted()) vs \(was.keys.sorted())")
        #expect(
            StormKit.list(md).filter { $0 != ".fill" } == was.keys.sorted(),
            "leftovers in the metadata directory: \(StormKit.list(md))")

        try fm.removeItem(atPath: md + "/.fill")
        let r3 = try download("defs/other.db")
        #expect(r3.status == 0, "\(r3.stderr)")
        // Room for the big target: remount larger.
        #expect(StormKit.sh(["mount", "-o", "remount,size=8m", tg]))
        let r4 = try download("defs/big.db")
        #expect(r4.status == 0, "\(r4.stderr)")
        #expect(
            fm.contents(atPath: tg + "/defs%2Fbig.db") == big || treeContents(tg).values.contains(big),
            "\(StormKit.list(tg))")
        Torture.report(
            "DiskFullTortureTests.tufDownloadIntoAFullFileSystem: target dir full: exit \(r1.status), \"\(r1.stderr.split(separator: "\n").first ?? "")\"; "
                + "metadata dir full: exit \(r2.status), \"\(r2.stderr.split(separator: "\n").first ?? "")\"; trusted metadata unchanged; both completed after space came back"
        )
    }
}
