import CourierCore
import Foundation
import Testing

/// The client daemon as it runs on a client: a real `courier-inboxd run` process, real inotify,
/// and real copiers dropping packages into its inbox.
@Suite(.serialized) struct InboxdE2ETests {
    final class Client {
        let t = TempDir()
        var daemon: Process?
        let logPath: String

        /// `top`: more top-level keys (store, quarantine, …), placed before the type tables.
        init(extraTypes: String = "", acceptUnknown: Bool = false, top: String = "") throws {
            logPath = t.sub("daemon.log")
            try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
            try FileManager.default.createDirectory(atPath: t.sub("trust"), withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: t.sub("stage.key.pub"), toPath: t.sub("trust/stage.pub"))
            t.write(
                "inboxd.toml",
                """
                inbox = "inbox"
                state_dir = "state"
                trust = "trust"
                delta_wait = "5s"
                accept_unknown_types = \(acceptUnknown)
                \(top)
                [types.virus-defs]
                keep = 2
                apply_command = "echo $COURIER_REVISION >> \(t.sub("hook.log"))"
                \(extraTypes)
                """)
            try FileManager.default.createDirectory(atPath: t.sub("inbox"), withIntermediateDirectories: true)
        }

        func build(_ rev: Int, type: String = "virus-defs", bigMiB: Int = 0, base: String? = nil) throws -> String {
            let tree = t.sub("up/\(type)/\(rev)")
            t.write("up/\(type)/\(rev)/daily.ndb", "revision \(rev)\n")
            if bigMiB > 0 {
                let fh =
                    FileHandle(forWritingAtPath: tree + "/main.cvd")
                    ?? {
                        FileManager.default.createFile(atPath: tree + "/main.cvd", contents: nil)
                        return FileHandle(forWritingAtPath: tree + "/main.cvd")!
                    }()
                var chunk = [UInt8](repeating: 0, count: 1 << 20)
                // A pseudo-random byte every 256: compressible, but not past the readers'
                // 1000x expansion bound (a byte every 4 KiB of a regular pattern was, once the
                // writer's zstd frames got better: 11.5 KB for 48 MiB).
                var x = UInt64(rev) &* 0x9E37_79B9_7F4A_7C15 | 1
                for i in 0..<bigMiB {
                    for j in stride(from: 0, to: chunk.count, by: 256) {
                        x ^= x << 13
                        x ^= x >> 7
                        x ^= x << 17
                        chunk[j] = UInt8(truncatingIfNeeded: x &+ UInt64(i))
                    }
                    fh.write(Data(chunk))
                }
                fh.closeFile()
            }
            var args = [
                "build", "--tree", tree, "--type", type, "--revision", String(rev), "--key", t.sub("stage.key"),
                "--out-dir", t.sub("out"),
            ]
            if let b = base { args += ["--delta-from", b] }
            let r = try Programs.run("courier-stage", args)
            #expect(r.status == 0, "\(r.stderr)")
            return base == nil
                ? t.sub("out/\(type)_\(rev).cpkg")
                : t.sub(
                    "out/" + (r.stdout.split(separator: "/").last!.split(separator: ":").first.map(String.init) ?? ""))
        }

        func start() throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Programs.binDir + "/courier-inboxd")
            p.arguments = ["run", "--config", t.sub("inboxd.toml"), "--log-file", logPath, "--quiet"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            daemon = p
            // Wait until the watch is in place (the start-up scan has written a status).
            #expect(waitFor(10) { FileManager.default.fileExists(atPath: self.t.sub("state/status.json")) })
        }

        /// SIGTERM; returns the exit status.
        @discardableResult
        func stop() -> Int32 {
            guard let p = daemon else { return -1 }
            kill(p.processIdentifier, SIGTERM)
            p.waitUntilExit()
            daemon = nil
            return p.terminationStatus
        }

        deinit {
            if let p = daemon {
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
            }
        }

        func installed(_ type: String = "virus-defs") -> Int? {
            guard let d = FileManager.default.contents(atPath: t.sub("state/status.json")),
                let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
                let types = o["types"] as? [String: Any], let ts = types[type] as? [String: Any]
            else { return nil }
            return ts["installed"] as? Int
        }

        func quarantined() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: t.sub("state/quarantine"))) ?? []).filter {
                !$0.hasSuffix(".json")
            }
        }

        func inbox() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: t.sub("inbox"))) ?? [] }

        func sh(_ script: String) throws -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = ["-c", script]
            p.currentDirectoryURL = URL(fileURLWithPath: t.path)
            try p.run()
            p.waitUntilExit()
            return p.terminationStatus
        }
    }

    @Test func realCopiersAreAppliedOnlyWhenComplete() throws {
        let c = try Client()
        let p1 = try c.build(1, bigMiB: 48)
        let p2 = try c.build(2)
        let p3 = try c.build(3)
        let p4 = try c.build(4)
        let p5 = try c.build(5, bigMiB: 2)
        let p6 = try c.build(6)
        try c.start()

        // cp of a large file: written in place under its final name.
        #expect(try c.sh("cp \(p1) inbox/") == 0)
        #expect(waitFor(30) { c.installed() == 1 }, "cp: \(String(describing: c.installed()))")
        // mv from the same file system.
        #expect(try c.sh("cp \(p2) .staged.cpkg && mv .staged.cpkg inbox/virus-defs_2.cpkg") == 0)
        #expect(waitFor(10) { c.installed() == 2 }, "mv")
        // rsync: a .name.XXXXXX temporary, then a rename.
        #expect(try c.sh("rsync \(p3) inbox/") == 0)
        #expect(waitFor(10) { c.installed() == 3 }, "rsync")
        // install(1).
        #expect(try c.sh("install -m 0644 \(p4) inbox/") == 0)
        #expect(waitFor(10) { c.installed() == 4 }, "install")
        // A slow writer: chunks with pauses. Nothing may be applied before it closes the file.
        let slow =
            "exec 3>inbox/virus-defs_5.cpkg; for i in $(seq 0 9); do dd if=\(p5) bs=256k skip=$i count=1 status=none >&3; sleep 0.15; done; exec 3>&-"
        #expect(try c.sh(slow) == 0)
        #expect(waitFor(10) { c.installed() == 5 }, "slow writer")
        // Ansible's copy module, when ansible is installed (make test installs ansible-core).
        if FileManager.default.isExecutableFile(atPath: "/usr/local/bin/ansible")
            || (try? c.sh("command -v ansible >/dev/null")) == 0
        {
            let r = try c.sh(
                "ANSIBLE_LOCALHOST_WARNING=false ansible localhost -c local -m copy -a 'src=\(p6) dest=\(c.t.sub("inbox"))/ mode=0644' >/dev/null"
            )
            #expect(r == 0)
            #expect(waitFor(20) { c.installed() == 6 }, "ansible copy")
        }
        #expect(
            c.quarantined().isEmpty,
            "nothing refused: \(c.quarantined()) — \(String(describing: try? String(contentsOfFile: c.logPath, encoding: .utf8)))"
        )
        #expect(c.stop() == 0, "SIGTERM ends the daemon with 0")
        let hooks = try String(contentsOfFile: c.t.sub("hook.log"), encoding: .utf8).split(separator: "\n")
        #expect(hooks.first == "1" && hooks.count >= 5)
    }

    @Test func rescanPicksUpWhatArrivedWhileDownAndTamperedGoesToQuarantine() throws {
        let c = try Client()
        let full = try c.build(10)
        let delta = try c.build(11, base: full)
        try FileManager.default.copyItem(atPath: full, toPath: c.t.sub("inbox/virus-defs_10.cpkg"))
        try FileManager.default.copyItem(atPath: delta, toPath: c.t.sub("inbox/virus-defs_11_from_10.cpkg"))
        var d = try Data(contentsOf: URL(fileURLWithPath: c.build(12)))
        d[d.count - 30] ^= 0x55
        try d.write(to: URL(fileURLWithPath: c.t.sub("tampered.cpkg")))
        // Old enough mtimes: these were copied "while the daemon was down".
        _ = try c.sh("touch -d '1 minute ago' inbox/*")
        try c.start()
        #expect(waitFor(10) { c.installed() == 11 })
        _ = try c.sh("cp tampered.cpkg inbox/virus-defs_12.cpkg")
        #expect(waitFor(10) { c.quarantined() == ["virus-defs_12.cpkg"] })
        let reason = try String(
            contentsOfFile: c.t.sub("state/quarantine/virus-defs_12.cpkg.reason.json"), encoding: .utf8)
        #expect(reason.contains("\"reason\""))
        #expect(c.installed() == 11)
        #expect(c.stop() == 0)
    }

    @Test func exitWhenIdleAndPollMode() throws {
        let c = try Client()
        let p1 = try c.build(1)
        // --poll: no inotify; a file is taken once its size and mtime held still for a period.
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: Programs.binDir + "/courier-inboxd")
        daemon.arguments = [
            "run", "--config", c.t.sub("inboxd.toml"), "--poll", "1", "--exit-when-idle", "4s", "--quiet",
        ]
        let start = Date()
        try daemon.run()
        #expect(try c.sh("cp \(p1) inbox/") == 0)
        #expect(waitFor(15) { c.installed() == 1 }, "applied in poll mode")
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
        #expect(Date().timeIntervalSince(start) < 20, "exited once idle")
        // --once with a refused package: exit 16.
        _ = try c.sh("echo junk > inbox/virus-defs_2.cpkg && touch -d '1 minute ago' inbox/virus-defs_2.cpkg")
        let once = try Programs.run("courier-inboxd", ["run", "--config", c.t.sub("inboxd.toml"), "--once", "--quiet"])
        #expect(once.status == 16, "\(once.stderr)")
        #expect(c.quarantined() == ["virus-defs_2.cpkg"])
    }

    @Test func rollbackChecksTheKeptTreeAndPins() throws {
        let c = try Client()
        let p1 = try c.build(1)
        let p2 = try c.build(2)
        try FileManager.default.copyItem(atPath: p1, toPath: c.t.sub("inbox/virus-defs_1.cpkg"))
        try FileManager.default.copyItem(atPath: p2, toPath: c.t.sub("inbox/virus-defs_2.cpkg"))
        _ = try c.sh("touch -d '1 minute ago' inbox/*")
        #expect(
            try Programs.run("courier-inboxd", ["run", "--config", c.t.sub("inboxd.toml"), "--once", "--quiet"]).status
                == 0)
        #expect(c.installed() == 2)
        // A kept tree that was altered is not switched to.
        let kept = c.t.sub("state/store/virus-defs/1/daily.ndb")
        let good = try Data(contentsOf: URL(fileURLWithPath: kept))
        try Data("tampered\n".utf8).write(to: URL(fileURLWithPath: kept))
        let bad = try Programs.run(
            "courier-inboxd", ["rollback", "--config", c.t.sub("inboxd.toml"), "--type", "virus-defs"])
        #expect(bad.status == 11, "\(bad.stderr)")
        #expect(c.installed() == 2)
        try good.write(to: URL(fileURLWithPath: kept))
        let ok = try Programs.run(
            "courier-inboxd", ["rollback", "--config", c.t.sub("inboxd.toml"), "--type", "virus-defs"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(c.installed() == 1)
        let st = try Programs.run("courier-inboxd", ["status", "--config", c.t.sub("inboxd.toml")])
        #expect(st.stdout.contains("PINNED to 1"))
        #expect(
            try Programs.run("courier-inboxd", ["unpin", "--config", c.t.sub("inboxd.toml"), "--type", "virus-defs"])
                .status == 0)
    }

    /// Idle means asleep in the kernel: after an apply, no thread of the daemon wakes up at all
    /// (no timer, no libdispatch worker-pool monitor), and it has its three threads only.
    @Test func idleDaemonDoesNotWakeUp() throws {
        let c = try Client()
        try c.start()
        let pkg = try c.build(20_261_121_001)
        #expect(try c.sh("cp \(pkg) inbox/") == 0)
        #expect(waitFor(20) { c.installed() == 20_261_121_001 && c.inbox().isEmpty })
        let pid = c.daemon!.processIdentifier
        func comm(_ tid: String) -> String {
            ((try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/comm", encoding: .utf8)) ?? "").trimmingCharacters(
                in: .whitespacesAndNewlines)
        }
        // Under `make test-tsan` the ThreadSanitizer runtime adds a thread of its own to every
        // process (named after the program, waking every 100 ms); it is not the daemon's and is
        // left out. Every thread of the daemon itself is still counted and named.
        let tsan = ProcessInfo.processInfo.environment["COURIER_SANITIZER"] == "thread"
        func threads() -> [String] {
            let all = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            return tsan ? all.filter { $0 == String(pid) || comm($0) != "courier-inboxd" } : all
        }
        func switches() -> Int {
            threads().reduce(0) { sum, tid in
                let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/status", encoding: .utf8)) ?? ""
                let lines = text.split(separator: "\n").filter {
                    $0.hasPrefix("voluntary_ctxt_switches:") || $0.hasPrefix("nonvoluntary_ctxt_switches:")
                }
                return sum
                    + lines.reduce(0) {
                        $0 + (Int($1.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0)
                    }
            }
        }
        usleep(500_000)  // the apply's child processes are gone, the hook's output written
        let before = switches()
        sleep(3)
        let after = switches()
        #expect(after - before == 0, "the idle daemon woke up \(after - before) times in 3 s")
        let names = threads().map(comm).sorted()
        #expect(names == ["courier-inboxd", "courier-inotify", "courier-signals"], "threads: \(names)")
        #expect(c.stop() == 0)
    }

    @Test func aBurstOfAThousandPackages() throws {
        let c = try Client(acceptUnknown: true)
        // 1,000 content types of one small revision each, signed with the stager's key (built in
        // process: 1,000 stager processes would cost more than the test itself).
        let tree = c.t.sub("burst-tree")
        c.t.write("burst-tree/rules.txt", "alert\n")
        try FileManager.default.createDirectory(atPath: c.t.sub("burst"), withIntermediateDirectories: true)
        let key = try SigningKey.load(c.t.sub("stage.key"))
        let files = try TreeScanner.scan(tree)
        for i in 1...1000 {
            let type = "t" + String(format: "%04d", i)
            try PackageBuilder.buildFull(
                tree: tree, to: c.t.sub("burst/\(type)_1.cpkg"),
                options: PackageBuilder.Options(type: type, revision: 1, keys: [key], limits: Limits()), files: files)
        }
        try c.start()
        #expect(try c.sh("mv burst/*.cpkg inbox/") == 0)
        #expect(waitFor(120) { c.inbox().isEmpty }, "left: \(c.inbox().count)")
        #expect(c.quarantined().isEmpty)
        let stores = try FileManager.default.contentsOfDirectory(atPath: c.t.sub("state/store"))
        #expect(stores.count == 1000)
        #expect(c.installed("t0737") == 1)
        #expect(c.stop() == 0)
    }
}

/// Polls `cond` until it holds or `seconds` pass (bounded: a failing test cannot hang).
func waitFor(_ seconds: Double, _ cond: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if cond() { return true }
        usleep(20_000)
    }
    return cond()
}
