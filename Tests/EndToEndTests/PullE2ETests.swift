import Foundation
import Glibc
import Testing

/// courier-pull as a site runs it (issue #16): a stager's outbox served by nginx, a relay
/// mirroring it served by a second nginx, clients pulling with the relay first and applying with
/// a real courier-inboxd. Every server is a real nginx on 127.0.0.1 with the shipped site file.
@Suite(.serialized, .enabled(if: Nginx.available, "nginx is not installed")) struct PullE2ETests {
    /// Three clients converge through the relay, first on a full package and then on a delta;
    /// a pass with nothing new costs a 304; a second relay chained to the first mirrors the same.
    @Test func threeClientsConvergeThroughARelay() throws {
        let w = try PullWorld()
        try w.stage("20261120001")
        let stager = try Nginx(root: w.outbox, dir: w.t.sub("nginx-stager"))
        let relayConf = w.relay("relay", upstream: [stager.url])
        let m1 = try Programs.run("courier-pull", ["mirror", "--config", relayConf, "--json"])
        #expect(m1.status == 0, "\(m1.stderr)")
        #expect(m1.stdout.contains("\"added\":[20261120001]"), "\(m1.stdout)")
        let relay = try Nginx(root: w.t.sub("relay/mirror"), dir: w.t.sub("nginx-relay"))
        let clients = ["c1", "c2", "c3"]
        let configs = clients.map { w.client($0, mirrors: [relay.url, stager.url]) }
        // c3 runs the daemon (inotify); c1 and c2 apply with `run --once` after each pull.
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: Programs.binDir + "/courier-inboxd")
        daemon.arguments = ["run", "--config", w.t.sub("c3/inboxd.toml"), "--quiet"]
        daemon.standardOutput = FileHandle.nullDevice
        daemon.standardError = FileHandle.nullDevice
        try daemon.run()
        defer {
            kill(daemon.processIdentifier, SIGKILL)
            daemon.waitUntilExit()
        }
        #expect(waitFor(10) { FileManager.default.fileExists(atPath: w.t.sub("c3/state/status.json")) })
        func applied(_ c: String, _ rev: String) throws {
            if c == "c3" {
                #expect(waitFor(15) { w.installed(c) == rev }, "the daemon applied \(rev)")
            } else {
                #expect(try w.apply(c).status == 0)
            }
            #expect(w.installed(c) == rev)
        }
        for (c, conf) in zip(clients, configs) {
            let r = try w.pull(conf)
            #expect(r.status == 0, "\(c): \(r.stderr)")
            let line = typeLines(r.json).first ?? [:]
            #expect(line["action"] as? String == "full", "\(c): \(r.json)")
            #expect(
                line["mirror"] as? String == relay.url + "/virus-defs/20261120001/virus-defs_20261120001.cpkg",
                "\(c): \(r.json)")
            try applied(c, "20261120001")
        }

        // A new revision: the stager publishes it with a delta, the relay mirrors both, the
        // clients (which hold the base) get the delta from the relay.
        try w.stage("20261121001")
        let m2 = try Programs.run("courier-pull", ["mirror", "--config", relayConf, "--json"])
        #expect(m2.status == 0, "\(m2.stderr)")
        #expect(m2.stdout.contains("\"added\":[20261121001]"), "\(m2.stdout)")
        #expect(
            FileManager.default.fileExists(
                atPath: w.t.sub("relay/mirror/virus-defs/20261121001/virus-defs_20261121001_from_20261120001.cpkg")))
        try w.checkServedTreeIsComplete(w.t.sub("relay/mirror"))
        for (c, conf) in zip(clients, configs) {
            let r = try w.pull(conf)
            #expect(r.status == 0, "\(c): \(r.stderr)")
            let line = typeLines(r.json).first ?? [:]
            #expect(line["action"] as? String == "delta", "\(c): \(r.json)")
            #expect((line["mirror"] as? String)?.hasPrefix(relay.url) == true, "\(c): \(r.json)")
            try applied(c, "20261121001")
        }
        // Every package came from the relay: the stager served index.json to the relay only.
        #expect(stager.requests(matching: ".cpkg") == 3, "the stager served packages to the relay only")
        #expect(relay.requests(matching: ".cpkg HTTP") == 6)

        // Nothing new: a conditional GET answered 304, nothing downloaded.
        let again = try w.pull(configs[0])
        #expect(again.status == 0)
        #expect(again.json["not_modified"] as? Bool == true, "\(again.json)")
        #expect(typeLines(again.json).first?["code"] as? String == "up-to-date")
        #expect(relay.requests(matching: "GET /index.json HTTP/1.1\" 304") >= 1)
        // The relay too: upstream not modified, index unchanged.
        let m3 = try Programs.run("courier-pull", ["mirror", "--config", relayConf, "--json"])
        #expect(
            m3.status == 0 && m3.stdout.contains("\"not_modified\":true")
                && m3.stdout.contains("\"index_written\":false"), "\(m3.stdout)")

        // Relays chain: a second relay whose upstream is the first holds the same packages.
        let chained = w.relay("relay2", upstream: [relay.url], revisions: 1)
        let m4 = try Programs.run("courier-pull", ["mirror", "--config", chained, "--json"])
        #expect(m4.status == 0, "\(m4.stderr)")
        #expect(
            PullWorld.visiblePackages(w.t.sub("relay2/mirror")) == [
                "virus-defs/20261121001/virus-defs_20261121001.cpkg",
                "virus-defs/20261121001/virus-defs_20261121001_from_20261120001.cpkg",
            ])
        for p in PullWorld.visiblePackages(w.t.sub("relay2/mirror")) {
            #expect(
                FileManager.default.contents(atPath: w.t.sub("relay2/mirror/" + p))
                    == FileManager.default.contents(atPath: w.outbox + "/" + p))
        }
        #expect(
            (try? FileManager.default.destinationOfSymbolicLink(atPath: w.t.sub("relay2/mirror/virus-defs/latest")))
                == "20261121001")
        try w.checkServedTreeIsComplete(w.t.sub("relay2/mirror"))
    }

    /// The relay's nginx stopped: clients fall back to the stager. A mirror that serves a
    /// corrupted package is passed over for the next one, and the bad copy never reaches the inbox.
    @Test func clientsFallBackToTheStagerAndSkipABadMirror() throws {
        let w = try PullWorld()
        try w.stage("20261120001")
        let stager = try Nginx(root: w.outbox, dir: w.t.sub("nginx-stager"))
        let relayConf = w.relay("relay", upstream: [stager.url])
        #expect(try Programs.run("courier-pull", ["mirror", "--config", relayConf]).status == 0)
        let relay = try Nginx(root: w.t.sub("relay/mirror"), dir: w.t.sub("nginx-relay"))
        let relayURL = relay.url
        relay.stop()
        #expect(!Nginx.accepts(relay.port))
        let conf = w.client("c1", mirrors: [relayURL, stager.url])
        let r = try w.pull(conf)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.json["mirror"] as? String == stager.url, "\(r.json)")
        #expect((typeLines(r.json).first?["mirror"] as? String)?.hasPrefix(stager.url) == true, "\(r.json)")
        #expect(try w.apply("c1").status == 0)
        #expect(w.installed("c1") == "20261120001")

        // A bad mirror: the same index, the package with one byte flipped. The client tries it
        // first, refuses it (SHA-256 against the index), takes the stager's.
        let bad = w.t.sub("bad")
        try FileManager.default.copyItem(atPath: w.t.sub("relay/mirror"), toPath: bad)
        let pkg = bad + "/virus-defs/20261120001/virus-defs_20261120001.cpkg"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: pkg))
        bytes[bytes.count / 2] ^= 0x55
        try bytes.write(to: URL(fileURLWithPath: pkg))
        let badServer = try Nginx(root: bad, dir: w.t.sub("nginx-bad"))
        let conf2 = w.client("c2", mirrors: [badServer.url, stager.url])
        // Leftovers of an earlier pass for a package no longer wanted go; another copier's stay.
        for n in [
            ".virus-defs_20261119001.cpkg.part", ".virus-defs_20261119001.cpkg.part.partial",
            ".virus-defs_20261119001.cpkg.part.partial.json", ".rsync-tmp.XXXX",
            "..virus-defs_20261120001.cpkg.part.partial.json.tmp-99999",
        ] {
            w.t.write("c2/inbox/" + n, "x")
        }
        let r2 = try w.pull(conf2)
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect((typeLines(r2.json).first?["mirror"] as? String)?.hasPrefix(stager.url) == true, "\(r2.json)")
        #expect(r2.stderr.contains("failed its checks") || badServer.requests(matching: ".cpkg") == 1)
        #expect(badServer.requests(matching: "virus-defs_20261120001.cpkg") == 1)
        let inbox = try FileManager.default.contentsOfDirectory(atPath: w.t.sub("c2/inbox"))
        #expect(inbox.sorted() == [".rsync-tmp.XXXX", "virus-defs_20261120001.cpkg"], "\(inbox)")
        #expect(
            FileManager.default.contents(atPath: w.t.sub("c2/inbox/virus-defs_20261120001.cpkg"))
                == FileManager.default.contents(
                    atPath: w.outbox + "/virus-defs/20261120001/virus-defs_20261120001.cpkg"))

        // Only the bad mirror: nothing in the inbox, exit 11 (integrity), the reason named.
        let conf3 = w.client("c3", mirrors: [badServer.url])
        let r3 = try w.pull(conf3)
        #expect(r3.status == 11, "\(r3.status) \(r3.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: w.t.sub("c3/inbox")).isEmpty)
    }

    /// A relay killed (SIGKILL) mid-mirror at each step leaves no partial package in sight, an
    /// index naming only what exists, and the next pass completes.
    @Test(arguments: ["relay-after-package", "relay-before-rename", "relay-before-index"])
    func killedRelayLeavesNothingPartial(point: String) throws {
        let w = try PullWorld()
        try w.stage("20261120001")
        let stager = try Nginx(root: w.outbox, dir: w.t.sub("nginx-stager"))
        let relayConf = w.relay("relay", upstream: [stager.url])
        #expect(try Programs.run("courier-pull", ["mirror", "--config", relayConf]).status == 0)
        let relay = try Nginx(root: w.t.sub("relay/mirror"), dir: w.t.sub("nginx-relay"))
        try w.stage("20261121001")
        let killed = try Programs.run("courier-pull", ["mirror", "--config", relayConf], env: ["COURIER_FAULT": point])
        #expect(killed.status == 9, "\(point): \(killed.status) \(killed.stderr)")
        try w.checkServedTreeIsComplete(w.t.sub("relay/mirror"))
        let idx = try String(contentsOfFile: w.t.sub("relay/mirror/index.json"), encoding: .utf8)
        #expect(!idx.contains("20261121001"), "\(point): the index names the new revision before the pass ended")
        if point != "relay-before-index" {
            #expect(!FileManager.default.fileExists(atPath: w.t.sub("relay/mirror/virus-defs/20261121001")))
            // The work in progress exists, under a dot-name nginx refuses.
            let staged = w.t.sub("relay/mirror/virus-defs/.staging-20261121001")
            #expect(FileManager.default.fileExists(atPath: staged))
            let inside = (try? FileManager.default.contentsOfDirectory(atPath: staged)) ?? []
            if let f = inside.first { #expect(try relay.status("/virus-defs/.staging-20261121001/" + f) == "404") }
        }
        // A client pulling meanwhile gets the old revision, complete.
        let c = w.client("c1", mirrors: [relay.url])
        let r = try w.pull(c)
        #expect(
            r.status == 0 && typeLines(r.json).first?["revision"] as? Int == 20_261_120_001, "\(r.json) \(r.stderr)")

        let again = try Programs.run("courier-pull", ["mirror", "--config", relayConf, "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        try w.checkServedTreeIsComplete(w.t.sub("relay/mirror"))
        #expect(PullWorld.visiblePackages(w.t.sub("relay/mirror")).count == 3)
        #expect(
            try String(contentsOfFile: w.t.sub("relay/mirror/index.json"), encoding: .utf8).contains(
                "virus-defs_20261121001_from_20261120001.cpkg"))
        #expect(
            (try? FileManager.default.contentsOfDirectory(atPath: w.t.sub("relay/mirror/virus-defs")))?.filter {
                $0.hasPrefix(".")
            } == [])
        #expect(
            (try? FileManager.default.destinationOfSymbolicLink(atPath: w.t.sub("relay/mirror/virus-defs/latest")))
                == "20261121001")
    }

    /// A client whose test command fails on revision R: status.json records R as refused, pull
    /// does not send R again (not even after the index changes), `--force` would; R+1 arrives
    /// and applies.
    @Test func aRefusedRevisionIsNotPulledAgain() throws {
        let w = try PullWorld()
        func publish(_ rev: String, _ text: String) throws {
            w.t.write("up/\(rev)/daily.ndb", text + "\n" + stableSignatures)
            let r = try Programs.run("courier-stage", ["run", "--config", w.t.sub("stage.toml")])
            #expect(r.status == 0, "\(r.stderr)")
        }
        try publish("20261120001", "good")
        let server = try Nginx(root: w.outbox, dir: w.t.sub("nginx"))
        let conf = w.client("c1", mirrors: [server.url], testCommand: "! grep -q REJECT-ME $COURIER_PATH/daily.ndb")
        #expect(try w.pull(conf).status == 0)
        #expect(try w.apply("c1").status == 0)
        #expect(w.installed("c1") == "20261120001")

        try publish("20261121001", "REJECT-ME")
        let r2 = try w.pull(conf)
        #expect(r2.status == 0 && typeLines(r2.json).first?["revision"] as? Int == 20_261_121_001, "\(r2.json)")
        _ = try w.apply("c1")
        #expect(w.installed("c1") == "20261120001", "the test command refused 20261121001")
        let status = try String(contentsOfFile: w.t.sub("c1/state/status.json"), encoding: .utf8)
        #expect(status.contains("\"refused\""), "status.json records the refusal: \(status)")
        let served = server.requests(matching: "20261121001")

        // Asked again (index not modified) and after the index changed: nothing sent.
        let r3 = try w.pull(conf)
        #expect(r3.status == 0)
        #expect(typeLines(r3.json).first?["code"] as? String == "refused", "\(r3.json)")
        try? FileManager.default.removeItem(atPath: w.t.sub("c1/state/pull/index.state.json"))
        let r4 = try w.pull(conf)
        #expect(typeLines(r4.json).first?["code"] as? String == "refused", "\(r4.json)")
        #expect(server.requests(matching: "20261121001") == served, "the refused revision was downloaded again")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: w.t.sub("c1/inbox")).filter { !$0.hasPrefix(".") }
                .isEmpty)

        try publish("20261122001", "good again")
        let r5 = try w.pull(conf)
        #expect(r5.status == 0 && typeLines(r5.json).first?["revision"] as? Int == 20_261_122_001, "\(r5.json)")
        #expect(try w.apply("c1").status == 0)
        #expect(w.installed("c1") == "20261122001")
    }

    /// What an operator sees when something is wrong: the exit code of the table in
    /// docs/OPERATIONS.md, and a message naming the file or the URL.
    @Test func exitCodesAndMessages() throws {
        let v = try Programs.run("courier-pull", ["--version"])
        #expect(v.status == 0 && !v.stdout.isEmpty)
        #expect(try Programs.run("courier-pull", ["--help"]).stdout.contains("Exit codes"))
        let w = try PullWorld()
        // A typo in pull.toml: 2, file, line and key named.
        let conf = w.client("c1", mirrors: ["http://127.0.0.1:1"], extra: "bwlimt = \"2M\"")
        let bad = try Programs.run("courier-pull", ["run", "--config", conf, "--no-splay"])
        #expect(bad.status == 2, "\(bad.stderr)")
        #expect(bad.stderr.contains(conf + ":3") && bad.stderr.contains("'bwlimt' is not a known key"), "\(bad.stderr)")
        // No mirror answers: a download/network error naming the URL, nothing in the inbox.
        let conf2 = w.client("c2", mirrors: ["http://127.0.0.1:\(Nginx.freePort())"])
        let down = try Programs.run("courier-pull", ["run", "--config", conf2, "--no-splay"])
        #expect(down.status == 18 || down.status == 9, "\(down.status) \(down.stderr)")
        #expect(down.stderr.contains("127.0.0.1"), "\(down.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: w.t.sub("c2/inbox")).isEmpty)
        // The inbox missing: 12, the inbox and the config that named it.
        try FileManager.default.removeItem(atPath: w.t.sub("c2/inbox"))
        let noInbox = try Programs.run("courier-pull", ["run", "--config", conf2, "--no-splay"])
        #expect(noInbox.status == 12 && noInbox.stderr.contains(w.t.sub("c2/inbox")), "\(noInbox.stderr)")
        try FileManager.default.createDirectory(atPath: w.t.sub("c2/inbox"), withIntermediateDirectories: true)
        // Another pass holds the lock: 17 at once.
        try FileManager.default.createDirectory(atPath: w.t.sub("c2/state/pull"), withIntermediateDirectories: true)
        let fd = open(w.t.sub("c2/state/pull/lock"), O_RDWR | O_CREAT, 0o644)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX) == 0)
        let locked = try Programs.run("courier-pull", ["run", "--config", conf2, "--no-splay"])
        #expect(locked.status == 17, "\(locked.status) \(locked.stderr)")
        // A relay whose trust is missing creates nothing.
        let relayConf = w.relay("relay", upstream: ["http://127.0.0.1:1"])
        try FileManager.default.removeItem(atPath: w.trust)
        let noTrust = try Programs.run("courier-pull", ["mirror", "--config", relayConf])
        #expect(noTrust.status == 7, "\(noTrust.status) \(noTrust.stderr)")
        #expect(!FileManager.default.fileExists(atPath: w.t.sub("relay/mirror")))
        #expect(!FileManager.default.fileExists(atPath: w.t.sub("relay/state")))
    }

    /// Through a forward proxy with credentials (tinyproxy on 127.0.0.1, named as in stage.toml's
    /// [http]): the package arrives, the proxy saw the requests, the password is in no output or log.
    @Test(
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/tinyproxy"), "tinyproxy is not installed"))
    func pullThroughAnAuthenticatingProxy() throws {
        let w = try PullWorld()
        try w.stage("20261120001")
        let server = try Nginx(root: w.outbox, dir: w.t.sub("nginx"))
        let port = Nginx.freePort()
        w.t.write(
            "tinyproxy.conf",
            """
            Port \(port)
            Listen 127.0.0.1
            Allow 127.0.0.1
            Timeout 30
            LogFile "\(w.t.sub("tinyproxy.log"))"
            LogLevel Info
            BasicAuth courier pr0xy-s3cret
            """)
        let proxy = Process()
        proxy.executableURL = URL(fileURLWithPath: "/usr/bin/tinyproxy")
        proxy.arguments = ["-d", "-c", w.t.sub("tinyproxy.conf")]
        proxy.standardOutput = FileHandle.nullDevice
        proxy.standardError = FileHandle.nullDevice
        try proxy.run()
        // SIGKILL: the test process's blocked signal mask is inherited, SIGTERM would wait.
        defer {
            kill(proxy.processIdentifier, SIGKILL)
            proxy.waitUntilExit()
        }
        for _ in 0..<100 where !Nginx.accepts(port) { usleep(50_000) }
        let conf = w.client("c1", mirrors: [server.url])
        let text = try String(contentsOfFile: conf, encoding: .utf8)
        try text.replacingOccurrences(
            of: "[http]\n",
            with:
                "[http]\nproxy = \"http://127.0.0.1:\(port)\"\nproxy_user = \"courier\"\nproxy_password = \"pr0xy-s3cret\"\n"
        )
        .write(toFile: conf, atomically: true, encoding: .utf8)
        let log = w.t.sub("pull.log")
        let r = try Programs.run(
            "courier-pull", ["run", "--config", conf, "--no-splay", "--json", "--verbose", "--log-file", log])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: w.t.sub("c1/inbox/virus-defs_20261120001.cpkg")))
        let plog = (try? String(contentsOfFile: w.t.sub("tinyproxy.log"), encoding: .utf8)) ?? ""
        #expect(plog.contains("virus-defs_20261120001.cpkg"), "the package went through the proxy: \(plog)")
        let all = r.stdout + r.stderr + ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
        #expect(!all.contains("pr0xy-s3cret"))
        // Wrong password: the proxy refuses, exit 19, nothing delivered.
        try String(contentsOfFile: conf, encoding: .utf8).replacingOccurrences(of: "pr0xy-s3cret", with: "wrong")
            .write(toFile: conf, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: w.t.sub("c1/state/pull"))
        try FileManager.default.removeItem(atPath: w.t.sub("c1/inbox/virus-defs_20261120001.cpkg"))
        let refused = try Programs.run("courier-pull", ["run", "--config", conf, "--no-splay"])
        #expect(refused.status == 19, "\(refused.status) \(refused.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: w.t.sub("c1/inbox")).isEmpty)
    }

    /// Retention in the mirror: with `revisions = 1`, the older revision leaves after the newer
    /// one appeared — out of index.json first, then out of sight — and `latest` follows.
    @Test func relayKeepsTheNewestRevisions() throws {
        let w = try PullWorld()
        try w.stage("20261120001")
        let stager = try Nginx(root: w.outbox, dir: w.t.sub("nginx-stager"))
        let relayConf = w.relay("relay", upstream: [stager.url], revisions: 1)
        #expect(try Programs.run("courier-pull", ["mirror", "--config", relayConf]).status == 0)
        try w.stage("20261121001")
        let m = try Programs.run("courier-pull", ["mirror", "--config", relayConf, "--json"])
        #expect(m.status == 0, "\(m.stderr)")
        #expect(
            m.stdout.contains("\"added\":[20261121001]") && m.stdout.contains("\"removed\":[20261120001]"),
            "\(m.stdout)")
        let mirror = w.t.sub("relay/mirror")
        #expect(!FileManager.default.fileExists(atPath: mirror + "/virus-defs/20261120001"))
        #expect(!(try String(contentsOfFile: mirror + "/index.json", encoding: .utf8)).contains("20261120001/"))
        #expect(
            (try? FileManager.default.destinationOfSymbolicLink(atPath: mirror + "/virus-defs/latest")) == "20261121001"
        )
        try w.checkServedTreeIsComplete(mirror)
        // A new client through this relay gets the full package of the newest revision.
        let relay = try Nginx(root: mirror, dir: w.t.sub("nginx-relay"))
        let r = try w.pull(w.client("c1", mirrors: [relay.url]))
        #expect(r.status == 0 && typeLines(r.json).first?["action"] as? String == "full", "\(r.json)")
        #expect(try w.apply("c1").status == 0)
        #expect(w.installed("c1") == "20261121001")
    }

    /// HTTPS with a private CA, named as in stage.toml (`ca_file`, `ca_mode = "replace"`): the
    /// pull succeeds; without the CA the certificate is refused and nothing is delivered.
    @Test func pullOverHTTPSWithAPrivateCA() throws {
        let w = try PullWorld()
        try w.stage("20261120001")
        let d = w.t.sub("pki")
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        for args in [
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "/ca.key", "-out", d + "/ca.pem",
                "-days", "2", "-subj", "/CN=Courier Test CA",
            ],
            [
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "/server.key", "-out", d + "/server.csr",
                "-subj", "/CN=127.0.0.1",
            ],
        ] { #expect(try Programs.runTool("/usr/bin/openssl", args).status == 0) }
        w.t.write("pki/ext.cnf", "subjectAltName = IP:127.0.0.1\n")
        let sign = try Programs.runTool(
            "/usr/bin/openssl",
            [
                "x509", "-req", "-in", d + "/server.csr", "-CA", d + "/ca.pem", "-CAkey", d + "/ca.key",
                "-CAcreateserial", "-out", d + "/server.pem", "-days", "2", "-extfile", d + "/ext.cnf",
            ])
        #expect(sign.status == 0, "\(sign.stderr)")
        let server = try Nginx(root: w.outbox, dir: w.t.sub("nginx"), tls: (d + "/server.pem", d + "/server.key"))
        #expect(server.url.hasPrefix("https://"))
        // Without the CA: a TLS failure, nothing in the inbox.
        let plain = w.client("c0", mirrors: [server.url])
        let refused = try w.pull(plain)
        #expect(refused.status != 0, "an unknown CA must be refused")
        #expect(try FileManager.default.contentsOfDirectory(atPath: w.t.sub("c0/inbox")).isEmpty)
        let conf = w.client("c1", mirrors: [server.url])
        let text = try String(contentsOfFile: conf, encoding: .utf8)
        try text.replacingOccurrences(
            of: "[http]\n", with: "[http]\nca_file = \"\(d)/ca.pem\"\nca_mode = \"replace\"\n"
        )
        .write(toFile: conf, atomically: true, encoding: .utf8)
        let r = try w.pull(conf)
        #expect(r.status == 0, "\(r.stderr)")
        #expect((typeLines(r.json).first?["mirror"] as? String)?.hasPrefix("https://127.0.0.1") == true, "\(r.json)")
        #expect(try w.apply("c1").status == 0)
        #expect(w.installed("c1") == "20261120001")
    }
}
