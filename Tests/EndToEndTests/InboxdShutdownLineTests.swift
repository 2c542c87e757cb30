import Foundation
import Testing

/// courier-inboxd's last log line and `--verbose`, on the real daemon process: whatever stops
/// it (SIGTERM, SIGINT, `--exit-when-idle`, `--once`), it says why, how long it ran, and how
/// many packages it applied and refused in that run.
@Suite(.serialized) struct InboxdShutdownLineTests {
    final class Client {
        let t = TempDir()
        var log: String { t.sub("daemon.log") }

        init() throws {
            try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
            try FileManager.default.createDirectory(atPath: t.sub("trust"), withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: t.sub("stage.key.pub"), toPath: t.sub("trust/stage.pub"))
            try FileManager.default.createDirectory(atPath: t.sub("inbox"), withIntermediateDirectories: true)
            t.write(
                "inboxd.toml",
                "inbox = \"inbox\"\nstate_dir = \"state\"\ntrust = \"trust\"\n[types.virus-defs]\nkeep = 2\n")
        }

        /// Builds revision `rev` and returns its package.
        func build(_ rev: Int) throws -> String {
            t.write("up/\(rev)/daily.ndb", "revision \(rev)\n")
            let r = try Programs.run(
                "courier-stage",
                [
                    "build", "--tree", t.sub("up/\(rev)"), "--type", "virus-defs", "--revision", String(rev),
                    "--key", t.sub("stage.key"), "--out-dir", t.sub("out"),
                ])
            #expect(r.status == 0, "\(r.stderr)")
            return t.sub("out/virus-defs_\(rev).cpkg")
        }

        func start(_ extra: [String] = []) throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Programs.binDir + "/courier-inboxd")
            p.arguments = ["run", "--config", t.sub("inboxd.toml"), "--log-file", log] + extra
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            #expect(waitFor(10) { FileManager.default.fileExists(atPath: self.t.sub("state/status.json")) })
            return p
        }

        /// One good package applied, one bad one refused, while the daemon runs.
        func feed() throws {
            try FileManager.default.copyItem(
                atPath: try build(20_261_120_001), toPath: t.sub("inbox/virus-defs_20261120001.cpkg"))
            #expect(
                waitFor(10) {
                    self.inbox().isEmpty
                        && ((try? String(contentsOfFile: self.t.sub("state/status.json"), encoding: .utf8)) ?? "")
                            .contains("20261120001")
                })
            t.write(".junk", "not a package")
            try FileManager.default.moveItem(atPath: t.sub(".junk"), toPath: t.sub("inbox/junk.cpkg"))
            #expect(waitFor(10) { self.inbox().isEmpty })
        }

        func inbox() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: t.sub("inbox"))) ?? [] }
        func lines() -> [String] {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }
    }

    /// The one `exiting:` line, which must be the log's last.
    static func shutdownLine(_ c: Client) -> String {
        let all = c.lines()
        let exits = all.filter { $0.contains(" exiting: ") }
        #expect(exits.count == 1, "one shutdown line: \(exits)")
        #expect(all.last == exits.first, "the shutdown line is the last: \(all.suffix(3))")
        return exits.first ?? ""
    }

    static func matches(_ line: String, _ pattern: String) -> Bool {
        line.range(of: pattern, options: .regularExpression) != nil
    }

    @Test(arguments: [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")])
    func aSignalIsNamedWithTheRunsCounts(_ sig: (Int32, String)) throws {
        let c = try Client()
        let p = try c.start()
        try c.feed()
        usleep(1_100_000)  // a run of more than one second
        kill(p.processIdentifier, sig.0)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let line = Self.shutdownLine(c)
        #expect(
            Self.matches(
                line,
                #"courier-inboxd\[\d+\] info: exiting: \#(sig.1) received; ran [0-9.]+ s; 1 applied, 1 refused, 0 duplicate\(s\) in \d+ pass\(es\)$"#
            ), "\(line)")
        let ran = Double(line.split(separator: "ran ")[1].split(separator: " ")[0]) ?? 0
        #expect(ran >= 1.0 && ran < 30, "\(line)")
    }

    @Test func exitWhenIdleSaysSoAndVerboseShowsWhy() throws {
        let c = try Client()
        let p = try c.start(["--exit-when-idle", "3s", "--verbose"])
        try c.feed()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let line = Self.shutdownLine(c)
        #expect(
            Self.matches(
                line,
                #"info: exiting: idle for 3\.0 s \(--exit-when-idle\); ran [0-9.]+ s; 1 applied, 1 refused, 0 duplicate\(s\) in \d+ pass\(es\)$"#
            ), "\(line)")
        // --verbose: why it woke, each package's outcome, when it will wake next.
        let debug = c.lines().filter { $0.contains(" debug: ") }
        #expect(debug.contains { $0.contains("pass: virus-defs_20261120001.cpkg: applied(20261120001)") }, "\(debug)")
        #expect(debug.contains { $0.contains("pass: junk.cpkg: refused(") }, "\(debug)")
        #expect(debug.contains { $0.contains("woken for") && $0.contains("junk.cpkg") }, "\(debug)")
        #expect(debug.contains { $0.contains("next wake-up in") }, "\(debug)")
    }

    @Test func withoutVerboseThereAreNoDebugLinesAndOnceSaysItWasOnce() throws {
        let c = try Client()
        try FileManager.default.copyItem(
            atPath: try c.build(20_261_120_001), toPath: c.t.sub("inbox/virus-defs_20261120001.cpkg"))
        let r = try Programs.run(
            "courier-inboxd", ["run", "--config", c.t.sub("inboxd.toml"), "--log-file", c.log, "--once"])
        #expect(r.status == 0, "\(r.stderr)")
        let line = Self.shutdownLine(c)
        #expect(
            Self.matches(
                line,
                #"info: exiting: --once: the inbox was processed; ran [0-9.]+ s; 1 applied, 0 refused, 0 duplicate\(s\) in 1 pass\(es\)$"#
            ), "\(line)")
        #expect(!c.lines().contains { $0.contains(" debug: ") })
        // A failure is the reason, at error level, and the exit code still says what failed.
        c.t.write("inbox/junk.cpkg", "not a package")
        let bad = try Programs.run(
            "courier-inboxd", ["run", "--config", c.t.sub("inboxd.toml"), "--log-file", c.log, "--once"])
        #expect(bad.status == 16)
        let last = c.lines().last ?? ""
        #expect(
            Self.matches(
                last, #"error: exiting: error: 1 package\(s\) refused; .*; ran [0-9.]+ s; 0 applied, 1 refused"#),
            "\(last)")

        let both = try Programs.run(
            "courier-inboxd", ["run", "--config", c.t.sub("inboxd.toml"), "--quiet", "--verbose"])
        #expect(both.status == 64)
        #expect(both.stderr.contains("--quiet and --verbose"))
    }
}
