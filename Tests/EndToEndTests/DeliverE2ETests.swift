import Foundation
import Testing

/// courier-deliver as an operator runs it: real outbox from courier-stage, real inboxes, exit
/// codes, output; a push killed in the middle of a copy.
@Suite(.serialized) struct DeliverE2ETests {
    static let fixtures =
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path + "/Fixtures/upstream/virus-defs"

    /// A stager (key `stage.key`, `outbox/`) with revision 20261120001 of virus-defs published
    /// from the fixtures by a real `courier-stage run`.
    static func stageOneRevision(_ t: TempDir) throws {
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        try FileManager.default.createDirectory(atPath: t.sub("up"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: fixtures + "/20261120001", toPath: t.sub("up/20261120001"))
        t.write(
            "stage.toml",
            "outbox = \"outbox\"\nkey = \"stage.key\"\n[types.virus-defs]\nsource = \"dir\"\npath = \"up\"\n")
        let r = try Programs.run("courier-stage", ["run", "--config", t.sub("stage.toml")])
        #expect(r.status == 0, "\(r.stderr)")
    }

    /// A stager with one revision of virus-defs published, and `n` empty client inboxes.
    func setUp(_ t: TempDir, clients n: Int) throws -> [String] {
        try Self.stageOneRevision(t)
        return (0..<n).map { i in
            let p = t.sub("clients/c\(i)/inbox")
            try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
            return p
        }
    }

    func visible(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }
    func hidden(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix(".") }.sorted()
    }

    /// Killed after writing the temporary file, before the rename: no visible package, a dot
    /// temporary left; the next push removes it and delivers.
    @Test(arguments: ["deliver-before-temp", "deliver-after-write", "deliver-before-rename"])
    func killedPushLeavesNoVisiblePartialFile(point: String) throws {
        let t = TempDir()
        let inboxes = try setUp(t, clients: 2)
        let args = [
            "push", "--outbox", t.sub("outbox"), "--trust", t.sub("stage.key.pub"), "--inbox", t.sub("clients/*/inbox"),
            "--jobs", "1",
        ]
        let killed = try Programs.run("courier-deliver", args, env: ["COURIER_FAULT": point])
        #expect(killed.status == 9, "killed by SIGKILL at \(point): \(killed.status)")
        for ib in inboxes { #expect(visible(ib).isEmpty, "\(point): a visible file in \(ib): \(visible(ib))") }
        let leftovers = inboxes.flatMap(hidden)
        // Killed while writing the first temporary file: one; before the first rename: every
        // inbox's (all copies are staged and flushed before any rename).
        let expected = ["deliver-before-temp": 0, "deliver-after-write": 1, "deliver-before-rename": 2][point]!
        #expect(leftovers.count == expected, "\(point): \(leftovers)")

        let again = try Programs.run("courier-deliver", args)
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        for ib in inboxes {
            #expect(visible(ib) == ["virus-defs_20261120001.cpkg"])
            #expect(hidden(ib).isEmpty, "\(point): leftover not cleaned in \(ib)")
        }
        if !leftovers.isEmpty { #expect(again.stdout.contains("cleaned")) }
        // Byte for byte the outbox's package.
        let src = FileManager.default.contents(
            atPath: t.sub("outbox/virus-defs/20261120001/virus-defs_20261120001.cpkg"))
        for ib in inboxes { #expect(FileManager.default.contents(atPath: ib + "/virus-defs_20261120001.cpkg") == src) }
    }

    @Test func exitCodesAndOutput() throws {
        let t = TempDir()
        let inboxes = try setUp(t, clients: 1)
        let base = ["push", "--outbox", t.sub("outbox"), "--trust", t.sub("stage.key.pub")]
        // A missing inbox among good ones: 16, the good one delivered, the bad one named.
        let r = try Programs.run("courier-deliver", base + ["--inbox", inboxes[0], "--inbox", t.sub("gone/inbox")])
        #expect(r.status == 16)
        #expect(r.stdout.contains("FAILED") && r.stdout.contains(t.sub("gone/inbox")))
        #expect(r.stdout.contains("1 failed"))
        #expect(visible(inboxes[0]) == ["virus-defs_20261120001.cpkg"])
        // Dry run: a plan, nothing copied, JSON parses.
        let fresh = t.sub("clients/new/inbox")
        try FileManager.default.createDirectory(atPath: fresh, withIntermediateDirectories: true)
        let d = try Programs.run("courier-deliver", base + ["--inbox", fresh, "--dry-run", "--json"])
        #expect(d.status == 0)
        let obj =
            try JSONSerialization.jsonObject(with: Data(d.stdout.split(separator: "\n")[0].utf8)) as! [String: Any]
        #expect(obj["result"] as? String == "planned" && obj["action"] as? String == "full")
        #expect(visible(fresh).isEmpty)
        // Usage errors: 64; an unknown type: 64 with the outbox's types named.
        #expect(try Programs.run("courier-deliver", base).status == 64)
        let u = try Programs.run("courier-deliver", base + ["--inbox", fresh, "--type", "nope"])
        #expect(u.status == 64 && u.stderr.contains("virus-defs"))
        // A wrong trust store: 7 (untrusted) — every target failed, nothing copied.
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("other.key")])
        let w = try Programs.run(
            "courier-deliver",
            ["push", "--outbox", t.sub("outbox"), "--trust", t.sub("other.key.pub"), "--inbox", fresh])
        #expect(w.status == 16 && w.stdout.contains("failed verification"))
        #expect(visible(fresh).isEmpty)
        // select for a new client: the full package's path.
        let s = try Programs.run(
            "courier-deliver", ["select", "--outbox", t.sub("outbox"), "--status", t.sub("none.json")])
        #expect(s.status == 0 && s.stdout.hasSuffix("virus-defs_20261120001.cpkg\n"))
        // report: a client without status is stale; --fail-stale makes it 16.
        let rep = try Programs.run("courier-deliver", ["report", "--inbox", t.sub("clients/*/inbox"), "--fail-stale"])
        #expect(rep.status == 16 && rep.stdout.contains("STALE"))
    }

    /// The verification cache from the command line: by default under $XDG_CACHE_HOME; the
    /// second push says the verdict was remembered; --no-verify-cache verifies again; an unsafe
    /// --verify-cache is a usage error that copies nothing; an unsafe default only warns.
    @Test func verificationCacheFromTheCommandLine() throws {
        let t = TempDir()
        let inboxes = try setUp(t, clients: 1)
        // Push remembers only packages that have not changed for 2 s (VerifiedCache.minimumAge).
        sleep(3)
        let env = ["XDG_CACHE_HOME": t.sub("xdg")]
        let base = [
            "push", "--outbox", t.sub("outbox"), "--trust", t.sub("stage.key.pub"), "--inbox", inboxes[0], "--quiet",
        ]
        func clear() {
            for n in visible(inboxes[0]) { try? FileManager.default.removeItem(atPath: inboxes[0] + "/" + n) }
        }
        let first = try Programs.run("courier-deliver", base, env: env)
        #expect(first.status == 0 && first.stdout.contains("1 package verified,"), "\(first.stdout)")
        #expect(
            ((try? FileManager.default.contentsOfDirectory(atPath: t.sub("xdg/courier/verified"))) ?? []).count == 1)
        clear()
        let again = try Programs.run("courier-deliver", base, env: env)
        #expect(again.status == 0 && again.stdout.contains("(1 remembered from an earlier push)"), "\(again.stdout)")
        #expect(visible(inboxes[0]) == ["virus-defs_20261120001.cpkg"])
        clear()
        let off = try Programs.run("courier-deliver", base + ["--no-verify-cache"], env: env)
        #expect(off.status == 0 && off.stdout.contains("1 package verified,"), "\(off.stdout)")
        clear()
        let both = try Programs.run(
            "courier-deliver", base + ["--no-verify-cache", "--verify-cache", t.sub("vc")], env: env)
        #expect(both.status == 64)
        try FileManager.default.createDirectory(atPath: t.sub("open"), withIntermediateDirectories: true)
        #expect(chmod(t.sub("open"), 0o777) == 0)
        let unsafe = try Programs.run("courier-deliver", base + ["--verify-cache", t.sub("open")], env: env)
        #expect(unsafe.status == 64 && unsafe.stderr.contains("writable by group or others"), "\(unsafe.stderr)")
        #expect(visible(inboxes[0]).isEmpty)
        #expect(chmod(t.sub("xdg/courier/verified"), 0o777) == 0)
        let warned = try Programs.run("courier-deliver", base, env: env)
        #expect(
            warned.status == 0 && warned.stderr.contains("warning: not remembering verifications"), "\(warned.stderr)")
        #expect(warned.stdout.contains("1 package verified,") && visible(inboxes[0]).count == 1)
    }
}
