import Foundation
import Testing

/// `diagnose` of each program, run as a process against real files: a secret planted in each
/// configuration (and in a log) must be nowhere in the archive's bytes, every member support
/// needs must be there with real content, and what cannot be read is noted, not fatal.
/// The archive is read with bsdtar, the peer every support desk has.
@Suite(.serialized) struct DiagnoseE2ETests {
    struct Archive {
        let path: String
        let names: [String]
        /// member name (without the top directory) → content
        let files: [String: String]
        /// The whole tar stream, decompressed: names, headers and contents.
        let tarBytes: Data
    }

    static func bsdtar(_ args: [String], in dir: String? = nil) throws -> (Int32, Data, String) {
        let r = try Programs.runTool("/usr/bin/bsdtar", args, cwd: dir)
        return (r.status, r.output, r.stderr)
    }

    /// Lists and extracts the archive with bsdtar, and decompresses it whole (`gzip -dc`).
    static func open(_ path: String, in t: TempDir) throws -> Archive {
        let (lrc, listing, lerr) = try bsdtar(["-tf", path])
        #expect(lrc == 0, "\(lerr)")
        let names = String(decoding: listing, as: UTF8.self).split(separator: "\n").map(String.init)
        let dest = t.sub("extracted-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(atPath: dest, withIntermediateDirectories: true)
        let (xrc, _, xerr) = try bsdtar(["-xf", path, "-C", dest])
        #expect(xrc == 0, "\(xerr)")
        let top = names.first.map { String($0.split(separator: "/").first!) } ?? ""
        var files: [String: String] = [:]
        for (rel, data) in treeContents(dest + "/" + top) { files[rel] = String(decoding: data, as: UTF8.self) }
        let gz = Process()
        gz.executableURL = URL(fileURLWithPath: "/usr/bin/gzip")
        gz.arguments = ["-dc", path]
        let pipe = Pipe()
        gz.standardOutput = pipe
        try gz.run()
        let tar = pipe.fileHandleForReading.readDataToEndOfFile()
        gz.waitUntilExit()
        #expect(gz.terminationStatus == 0, "the archive is a gzip stream")
        return Archive(path: path, names: names, files: files, tarBytes: tar)
    }

    /// No secret anywhere: not in the decompressed tar stream (names, headers, contents), not in
    /// any extracted member. The stream is non-empty and holds what the members hold, so a
    /// secret that reached any member would be found.
    static func expectAbsent(_ secrets: [String], _ a: Archive) throws {
        #expect(a.tarBytes.range(of: Data("README.txt".utf8)) != nil, "the tar stream was read")
        for s in secrets {
            #expect(a.tarBytes.range(of: Data(s.utf8)) == nil, "secret \(s) is in the tar stream")
            for (name, text) in a.files { #expect(!text.contains(s), "secret \(s) is in \(name)") }
        }
    }

    /// Another process that takes an flock on `path` and keeps it (the kernel records the pid that
    /// took it), as a running cycle or pass would; returned once /proc/locks shows it.
    static func holdLock(_ path: String) throws -> Process {
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        holder.arguments = [
            "-c", "import fcntl, sys, time\nf = open(sys.argv[1], 'w')\nfcntl.flock(f, fcntl.LOCK_EX)\ntime.sleep(30)",
            path,
        ]
        try holder.run()
        #expect(
            waitFor(5) {
                ((try? String(contentsOfFile: "/proc/locks", encoding: .utf8)) ?? "").contains(
                    " \(holder.processIdentifier) ")
            })
        return holder
    }

    /// Ends a `holdLock` process. SIGKILL: a signal mask the test runner's thread passes on could
    /// block SIGTERM.
    static func release(_ holder: Process) {
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
    }

    static func expectPrivate(_ path: String) throws {
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attrs[.posixPermissions] as? Int) == 0o600, "the archive is mode 0600")
        let dir = (path as NSString).deletingLastPathComponent
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty, "temporaries left: \(leftovers)")
    }

    @Test func stageDiagnoseRedactsTheProxyPasswordAndNamesTheLockHolder() throws {
        let t = TempDir()
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        t.write("up/virus-defs/20261120001/daily.ndb", "one\n")
        t.write(
            "stage.toml",
            """
            outbox = "outbox"
            key = "stage.key"
            state_dir = "state"
            [http]
            proxy = "http://squid:StageProxyUrlPass1@127.0.0.1:3128"
            proxy_user = "squid"
            proxy_password = "StageProxyPassword2"
            [types.virus-defs]
            source = "dir"
            path = "up/virus-defs"
            """)
        let run = try Programs.run(
            "courier-stage", ["run", "--config", t.sub("stage.toml"), "--log-file", t.sub("stage.log")])
        #expect(run.status == 0, "\(run.stderr)")
        // A line a proxy error might leave in the log, with the credentials in the URL.
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: t.sub("stage.log")))
        log.seekToEndOfFile()
        log.write(
            Data(
                "2026-11-29T10:00:00Z courier-stage[1] warning: via http://squid:StageLogPass3@127.0.0.1:3128 failed\n"
                    .utf8))
        log.closeFile()
        // Another process holds the run lock, as a running cycle would.
        let holder = try Self.holdLock(t.sub("state/lock"))
        defer { Self.release(holder) }

        let out = t.sub("reports/stage.tar.gz")
        try FileManager.default.createDirectory(atPath: t.sub("reports"), withIntermediateDirectories: true)
        let r = try Programs.run(
            "courier-stage",
            ["diagnose", "--config", t.sub("stage.toml"), "--log-file", t.sub("stage.log"), "--output", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == out)
        try Self.expectPrivate(out)
        let a = try Self.open(out, in: t)

        for m in [
            "README.txt", "versions.txt", "system.txt", "config/stage.toml", "config/check.txt", "config/effective.txt",
            "keys/signing.txt", "state/last-success.txt", "state/last-run.txt", "state/lock.txt", "outbox/index.json",
            "outbox/types.txt", "disk.txt", "processes.txt", "logs/1-stage.log.tail",
        ] {
            #expect(a.files[m] != nil, "member \(m) missing; have \(a.files.keys.sorted())")
        }
        let seed = try String(contentsOfFile: t.sub("stage.key"), encoding: .utf8).split(separator: " ")[1]
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try Self.expectAbsent(["StageProxyUrlPass1", "StageProxyPassword2", "StageLogPass3", seed], a)
        // Redacted in place: the keys and line structure are still there.
        let cfg = a.files["config/stage.toml"] ?? ""
        #expect(cfg.contains("proxy_password = \"<redacted>\""))
        #expect(cfg.contains("proxy = \"http://<redacted>@127.0.0.1:3128\""))
        #expect(cfg.contains("proxy_user = \"squid\""))
        #expect(
            cfg.split(separator: "\n", omittingEmptySubsequences: false).count
                == (try String(contentsOfFile: t.sub("stage.toml"), encoding: .utf8)).split(
                    separator: "\n", omittingEmptySubsequences: false
                ).count + 2)
        // The public half of the signing key, by id.
        let pub = try String(contentsOfFile: t.sub("stage.key.pub"), encoding: .utf8).split(separator: " ")[1]
        #expect(a.files["keys/signing.txt"]?.contains(String(pub)) == true)
        #expect(a.files["versions.txt"]?.contains("courier-inboxd: 0.") == true, "\(a.files["versions.txt"] ?? "")")
        #expect(a.files["system.txt"]?.contains("libarchive 3") == true)
        #expect(a.files["system.txt"]?.contains("kernel: Linux") == true)
        #expect(a.files["outbox/index.json"]?.contains("20261120001") == true)
        #expect(a.files["outbox/types.txt"]?.contains("virus-defs: latest 20261120001") == true)
        #expect(a.files["state/last-run.txt"]?.contains("summary: virus-defs: new: 20261120001") == true)
        #expect(a.files["state/last-success.txt"]?.contains("last run without failures") == true)
        #expect(
            a.files["state/lock.txt"]?.contains("held: FLOCK WRITE by pid \(holder.processIdentifier)") == true,
            "\(a.files["state/lock.txt"] ?? "")")
        #expect(a.files["disk.txt"]?.contains("outbox: \(t.sub("outbox"))") == true)
        #expect(a.files["disk.txt"]?.contains("inodes free") == true)
        #expect(a.files["logs/1-stage.log.tail"]?.contains("publishing revision 20261120001") == true)
        #expect(a.files["README.txt"]?.contains("value(s) were redacted") == true)
    }

    @Test func inboxdDiagnoseHasStatusHistoryAndQuarantineReasonsWithoutTheToken() throws {
        let t = TempDir()
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        try FileManager.default.createDirectory(atPath: t.sub("trust"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: t.sub("stage.key.pub"), toPath: t.sub("trust/stage.pub"))
        try FileManager.default.createDirectory(atPath: t.sub("inbox"), withIntermediateDirectories: true)
        t.write(
            "inboxd.toml",
            """
            inbox = "inbox"
            state_dir = "state"
            trust = "trust"
            # reload API: token = "InboxCommentToken1"
            [types.virus-defs]
            test_command = "exit 3"
            apply_command = "curl -fsS -H 'Authorization: Bearer InboxBearer2' https://ops:InboxUrlPass3@127.0.0.1:9/reload"
            """)
        t.write("up/virus-defs/20261120001/daily.ndb", "one\n")
        let b = try Programs.run(
            "courier-stage",
            [
                "build", "--tree", t.sub("up/virus-defs/20261120001"), "--type", "virus-defs",
                "--revision", "20261120001", "--key", t.sub("stage.key"), "--out-dir", t.sub("out"),
            ])
        #expect(b.status == 0, "\(b.stderr)")
        // A good package that its test command refuses, and a hostile name.
        try FileManager.default.copyItem(
            atPath: t.sub("out/virus-defs_20261120001.cpkg"), toPath: t.sub("inbox/virus-defs_20261120001.cpkg"))
        let once = try Programs.run(
            "courier-inboxd", ["run", "--config", t.sub("inboxd.toml"), "--once", "--log-file", t.sub("inboxd.log")])
        #expect(once.status != 0, "the test command fails, so the package is refused")
        t.write("inbox/evil\nname\u{1b}[31m.cpkg", "not a package")

        let out = t.sub("client.tar.gz")
        let r = try Programs.run(
            "courier-inboxd",
            [
                "diagnose", "--config", t.sub("inboxd.toml"), "--log-file", t.sub("inboxd.log"),
                "--output", out, "--lines", "50",
            ])
        #expect(r.status == 0, "\(r.stderr)")
        try Self.expectPrivate(out)
        let a = try Self.open(out, in: t)
        for m in [
            "README.txt", "versions.txt", "system.txt", "config/inboxd.toml", "config/check.txt",
            "config/effective.txt",
            "status/status.json", "status/history.tail", "status/pins.json", "status/lock.txt",
            "quarantine/listing.txt",
            "quarantine/reasons.txt", "inbox/listing.txt", "store/listing.txt", "keys/trust.txt", "disk.txt",
            "processes.txt", "logs/1-inboxd.log.tail",
        ] {
            #expect(a.files[m] != nil, "member \(m) missing; have \(a.files.keys.sorted())")
        }
        try Self.expectAbsent(["InboxCommentToken1", "InboxBearer2", "InboxUrlPass3", "\u{1b}[31m"], a)
        #expect(a.files["config/inboxd.toml"]?.contains("https://<redacted>@127.0.0.1:9/reload") == true)
        #expect(
            a.files["quarantine/reasons.txt"]?.contains("virus-defs_20261120001.cpkg.reason.json") == true,
            "\(a.files["quarantine/reasons.txt"] ?? "")")
        #expect(
            a.files["quarantine/reasons.txt"]?.contains("\"code\" : \"apply-failed\"") == true,
            "\(a.files["quarantine/reasons.txt"] ?? "")")
        #expect(a.files["status/history.tail"]?.contains("20261120001") == true)
        #expect(a.files["status/status.json"]?.contains("\"types\"") == true)
        #expect(
            a.files["inbox/listing.txt"]?.contains("evil\\nname\\x1b[31m.cpkg") == true,
            "\(a.files["inbox/listing.txt"] ?? "")")
        let pub = try String(contentsOfFile: t.sub("stage.key.pub"), encoding: .utf8).split(separator: " ")[1]
        #expect(a.files["keys/trust.txt"]?.contains(String(pub)) == true)
        #expect(a.files["status/lock.txt"]?.contains("not held now") == true)
        #expect(a.files["disk.txt"]?.contains("quarantine: \(t.sub("state/quarantine"))") == true)
        #expect(a.files["logs/1-inboxd.log.tail"]?.contains("refused") == true)
    }

    @Test func deliverDiagnoseHasPolicyIndexAndClientsWithoutTheCredentials() throws {
        let t = TempDir()
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        t.write("up/virus-defs/20261120001/daily.ndb", "one\n")
        t.write(
            "stage.toml",
            "outbox = \"outbox\"\nkey = \"stage.key\"\n[types.virus-defs]\nsource = \"dir\"\npath = \"up/virus-defs\"\n"
        )
        #expect(try Programs.run("courier-stage", ["run", "--config", t.sub("stage.toml")]).status == 0)
        for c in ["a", "b"] {
            try FileManager.default.createDirectory(
                atPath: t.sub("clients/\(c)/inbox"), withIntermediateDirectories: true)
            t.write("clients/\(c)/state/status.json", "{\"format\":1,\"host\":\"client-\(c)\",\"types\":{}}\n")
        }
        t.write(
            "policy.toml",
            """
            # generated by https://deploy:DeliverUrlPass1@git.example/ops.git
            # api_token: DeliverToken2
            [groups.lab]
            inboxes = ["\(t.sub("clients"))/*/inbox"]
            types = { virus-defs = "latest" }
            """)
        let out = t.sub("deliver.tar.gz")
        let r = try Programs.run(
            "courier-deliver",
            [
                "diagnose", "--policy", t.sub("policy.toml"), "--outbox", t.sub("outbox"),
                "--trust", t.sub("stage.key.pub"), "--inbox", t.sub("nowhere/*"), "--output", out,
            ])
        #expect(r.status == 0, "\(r.stderr)")
        try Self.expectPrivate(out)
        let a = try Self.open(out, in: t)
        for m in [
            "README.txt", "versions.txt", "system.txt", "config/policy.toml", "config/check.txt", "outbox/index.json",
            "keys/trust.txt", "inboxes/listing.txt", "inboxes/status.txt", "disk.txt", "logs/NONE.txt",
        ] {
            #expect(a.files[m] != nil, "member \(m) missing; have \(a.files.keys.sorted())")
        }
        try Self.expectAbsent(["DeliverUrlPass1", "DeliverToken2"], a)
        #expect(a.files["config/check.txt"]?.contains("policy loads: ok") == true)
        #expect(a.files["inboxes/status.txt"]?.contains("client-a") == true)
        #expect(a.files["inboxes/status.txt"]?.contains("client-b") == true)
        #expect(a.files["inboxes/listing.txt"]?.contains("\(t.sub("nowhere/*")): matches no directory") == true)
        #expect(a.files["outbox/index.json"]?.contains("20261120001") == true)
        #expect(a.files["logs/NONE.txt"]?.contains("journalctl") == true)
    }

    /// A pull client after a real pass from nginx: the proxy password and the mirror URL's
    /// user:password@ appear nowhere; the pull state (cached index, its ETag), the summary
    /// line, the lock holder, the inboxd.toml named, the inbox and free space are there.
    @Test(.enabled(if: Nginx.available, "nginx is not installed"))
    func pullDiagnoseHasThePullStateWithoutTheProxyPasswordOrMirrorCredentials() throws {
        let w = try PullWorld()
        try w.stage("20261120001")
        let stager = try Nginx(root: w.outbox, dir: w.t.sub("nginx-stager"))
        // Credentials in the mirror URL (nginx serves without asking for them) and a proxy
        // password with no proxy: both loaded, neither used on the wire, both secrets.
        let mirror = stager.url.replacingOccurrences(of: "http://", with: "http://relay:PullMirrorUrlPass1@")
        let conf = w.client("c1", mirrors: [mirror], extra: "splay = \"10m\"")
        w.t.write(
            "c1/pull.toml",
            (try String(contentsOfFile: conf, encoding: .utf8))
                + "proxy_user = \"squid\"\nproxy_password = \"PullProxyPassword2\"\n")
        w.t.write(
            "c1/inboxd.toml",
            (try String(contentsOfFile: w.t.sub("c1/inboxd.toml"), encoding: .utf8))
                + "\napply_command = \"curl -H 'Authorization: Bearer PullInboxdBearer3' http://127.0.0.1:9/reload\"\n")
        let log = w.t.sub("c1/pull.log")
        let run = try Programs.run("courier-pull", ["run", "--config", conf, "--no-splay", "--log-file", log])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(FileManager.default.fileExists(atPath: w.t.sub("c1/inbox/virus-defs_20261120001.cpkg")))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        handle.write(
            Data(
                "2026-11-29T10:00:00Z courier-pull[1] warning: via http://squid:PullLogPass4@127.0.0.1:3128 failed\n"
                    .utf8))
        handle.closeFile()
        // Another process holds the pass lock, as a running pass would.
        let holder = try Self.holdLock(w.t.sub("c1/state/pull/lock"))
        defer { Self.release(holder) }

        let out = w.t.sub("pull.tar.gz")
        let r = try Programs.run("courier-pull", ["diagnose", "--config", conf, "--log-file", log, "--output", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == out)
        try Self.expectPrivate(out)
        let a = try Self.open(out, in: w.t)
        for m in [
            "README.txt", "versions.txt", "system.txt", "config/pull.toml", "config/inboxd.toml", "config/check.txt",
            "config/effective.txt", "state/listing.txt", "state/index.json", "state/index.state.json", "state/lock.txt",
            "state/last-run.txt", "client/status.json", "client/inbox.txt", "keys/trust.txt", "disk.txt",
            "processes.txt", "logs/1-pull.log.tail",
        ] {
            #expect(a.files[m] != nil, "member \(m) missing; have \(a.files.keys.sorted())")
        }
        try Self.expectAbsent(["PullMirrorUrlPass1", "PullProxyPassword2", "PullInboxdBearer3", "PullLogPass4"], a)
        let cfg = a.files["config/pull.toml"] ?? ""
        #expect(cfg.contains("proxy_password = \"<redacted>\""), "\(cfg)")
        #expect(cfg.contains("http://<redacted>@127.0.0.1:\(stager.port)"), "\(cfg)")
        #expect(cfg.contains("proxy_user = \"squid\""))
        #expect(a.files["config/check.txt"]?.contains("configuration loads: ok (a pull client's pull.toml)") == true)
        #expect(
            a.files["config/effective.txt"]?.contains("splay: 600 s") == true,
            "\(a.files["config/effective.txt"] ?? "")")
        #expect(a.files["config/effective.txt"]?.contains("state_dir: \(w.t.sub("c1/state/pull"))") == true)
        #expect(
            a.files["config/inboxd.toml"]?.contains("Authorization: <redacted>") == true,
            "\(a.files["config/inboxd.toml"] ?? "")")
        #expect(a.files["state/index.json"]?.contains("20261120001") == true)
        #expect(
            a.files["state/index.state.json"]?.contains("etag") == true, "\(a.files["state/index.state.json"] ?? "")")
        #expect(
            a.files["state/last-run.txt"]?.contains("summary: index.json from \(stager.url)") == true,
            "\(a.files["state/last-run.txt"] ?? "")")
        #expect(
            a.files["state/last-run.txt"]?.contains("virus-defs 20261120001 full") == true,
            "\(a.files["state/last-run.txt"] ?? "")")
        #expect(
            a.files["state/lock.txt"]?.contains("held: FLOCK WRITE by pid \(holder.processIdentifier)") == true,
            "\(a.files["state/lock.txt"] ?? "")")
        #expect(a.files["client/inbox.txt"]?.contains("virus-defs_20261120001.cpkg") == true)
        #expect(a.files["disk.txt"]?.contains("inbox: \(w.t.sub("c1/inbox"))") == true)
        #expect(a.files["disk.txt"]?.contains("state_dir: \(w.t.sub("c1/state/pull"))") == true)
        #expect(a.files["versions.txt"]?.contains("courier-pull: 0.") == true, "\(a.files["versions.txt"] ?? "")")
        #expect(a.files["logs/1-pull.log.tail"]?.contains("delivered into the inbox") == true)

        // The same command on a relay.toml: recognised as a relay, its mirror directory described.
        let relayConf = w.relay(
            "relay", upstream: [stager.url.replacingOccurrences(of: "http://", with: "http://up:RelayUrlPass5@")],
            extra: "# api_token = \"RelayToken6\"")
        let m = try Programs.run(
            "courier-pull", ["mirror", "--config", relayConf, "--log-file", w.t.sub("relay/relay.log")])
        #expect(m.status == 0, "\(m.stderr)")
        let out2 = w.t.sub("relay.tar.gz")
        let r2 = try Programs.run(
            "courier-pull",
            ["diagnose", "--config", relayConf, "--log-file", w.t.sub("relay/relay.log"), "--output", out2])
        #expect(r2.status == 0, "\(r2.stderr)")
        let b = try Self.open(out2, in: w.t)
        for m in [
            "config/relay.toml", "config/check.txt", "config/effective.txt", "state/lock.txt", "state/last-run.txt",
            "mirror/index.json", "mirror/listing.txt", "keys/trust.txt", "disk.txt", "logs/1-relay.log.tail",
        ] {
            #expect(b.files[m] != nil, "member \(m) missing; have \(b.files.keys.sorted())")
        }
        #expect(b.files["config/pull.toml"] == nil)
        try Self.expectAbsent(["RelayUrlPass5", "RelayToken6"], b)
        #expect(b.files["config/check.txt"]?.contains("a relay's relay.toml") == true)
        #expect(b.files["mirror/index.json"]?.contains("20261120001") == true)
        #expect(b.files["mirror/listing.txt"]?.contains("20261120001") == true)
        #expect(b.files["state/last-run.txt"]?.contains("summary: ") == true, "\(b.files["state/last-run.txt"] ?? "")")
        #expect(b.files["disk.txt"]?.contains("mirror root: \(w.t.sub("relay/mirror"))") == true)
    }

    @Test func unreadableDirectoriesAndABrokenConfigAreNotedNotFatal() throws {
        let t = TempDir()
        try FileManager.default.createDirectory(atPath: t.sub("inbox"), withIntermediateDirectories: true)
        // store is a file: it cannot be listed.
        t.write("storefile", "not a directory")
        t.write(
            "inboxd.toml",
            "inbox = \"inbox\"\nstate_dir = \"state\"\nstore = \"storefile\"\ntrust = \"missing-trust\"\n")
        let out = t.sub("a.tar.gz")
        var r = try Programs.run("courier-inboxd", ["diagnose", "--config", t.sub("inboxd.toml"), "--output", out])
        #expect(r.status == 0, "\(r.stderr)")
        var a = try Self.open(out, in: t)
        #expect(a.files["store/listing.txt"]?.contains("cannot list") == true, "\(a.files["store/listing.txt"] ?? "")")
        #expect(a.files["README.txt"]?.contains("cannot list \(t.sub("storefile"))") == true)
        #expect(!FileManager.default.fileExists(atPath: t.sub("state")), "diagnose created the state directory")

        // A configuration that does not load: the archive still comes, saying why.
        t.write("inboxd.toml", "inbox = \"inbox\"\npassword = \"BrokenConfigPass1\"\nbogus = [\n")
        try FileManager.default.removeItem(atPath: out)
        r = try Programs.run("courier-inboxd", ["diagnose", "--config", t.sub("inboxd.toml"), "--output", out])
        #expect(r.status == 0, "\(r.stderr)")
        a = try Self.open(out, in: t)
        #expect(a.files["config/check.txt"]?.contains("does not load") == true)
        try Self.expectAbsent(["BrokenConfigPass1"], a)

        // The output directory missing: an error naming it, exit 12, nothing written.
        r = try Programs.run(
            "courier-inboxd", ["diagnose", "--config", t.sub("inboxd.toml"), "--output", t.sub("no/such/dir/a.tar.gz")])
        #expect(r.status == 12, "\(r.stderr)")
        #expect(r.stderr.contains(t.sub("no/such/dir")))
    }
}
