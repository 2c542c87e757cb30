import Foundation
import Testing

/// What `pin`, `unpin` and `rollback` leave in `status.json` and say, what a duplicate's corrupt
/// copy makes the daemon say, the quarantine codes of a missing base and a failed test, and
/// paths in messages: the real `courier-inboxd` binary on real files.
@Suite(.serialized) struct InboxdStateCommandsE2ETests {
    typealias Client = InboxdE2ETests.Client

    static let old = "2000-01-01T00:00:00Z"

    func statusObject(_ c: Client) throws -> [String: Any] {
        let d = try Data(contentsOf: URL(fileURLWithPath: c.t.sub("state/status.json")))
        return try #require(try JSONSerialization.jsonObject(with: d) as? [String: Any])
    }

    /// Rewrites status.json's `updated` to a time long past, so a command that refreshes it shows.
    func ageUpdated(_ c: Client) throws {
        var o = try statusObject(c)
        o["updated"] = Self.old
        let d = try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys])
        try d.write(to: URL(fileURLWithPath: c.t.sub("state/status.json")))
        #expect(try statusObject(c)["updated"] as? String == Self.old)
    }

    func once(_ c: Client) throws -> Programs.Result {
        try Programs.run("courier-inboxd", ["run", "--config", c.t.sub("inboxd.toml"), "--once"])
    }

    @Test func pinUnpinAndRollbackRefreshUpdated() throws {
        let c = try Client()
        try FileManager.default.copyItem(atPath: try c.build(1), toPath: c.t.sub("inbox/virus-defs_1.cpkg"))
        try FileManager.default.copyItem(atPath: try c.build(2), toPath: c.t.sub("inbox/virus-defs_2.cpkg"))
        _ = try c.sh("touch -d '1 minute ago' inbox/*")
        #expect(try once(c).status == 0)
        #expect(c.installed() == 2)
        let cfg = c.t.sub("inboxd.toml")
        for args in [
            ["pin", "--config", cfg, "--type", "virus-defs", "--revision", "2"],
            ["unpin", "--config", cfg, "--type", "virus-defs"],
            ["rollback", "--config", cfg, "--type", "virus-defs"],
        ] {
            try ageUpdated(c)
            let r = try Programs.run("courier-inboxd", args)
            #expect(r.status == 0, "\(args[0]): \(r.stderr)")
            let updated = try #require(try statusObject(c)["updated"] as? String)
            #expect(updated != Self.old, "\(args[0]) left `updated` as it was")
            #expect(updated.hasPrefix("20") && updated.hasSuffix("Z"), "\(args[0]): \(updated)")
        }
        #expect(c.installed() == 1)
    }

    /// A corrupt pins.json is an error naming the file for the commands, and the daemon keeps the
    /// pins it last read (status.json) instead of dropping them and applying what was held back.
    @Test func corruptPinsAreSaidAndNotDropped() throws {
        let c = try Client()
        let cfg = c.t.sub("inboxd.toml")
        try FileManager.default.copyItem(atPath: try c.build(1), toPath: c.t.sub("inbox/virus-defs_1.cpkg"))
        _ = try c.sh("touch -d '1 minute ago' inbox/*")
        #expect(try once(c).status == 0)
        let pin = try Programs.run(
            "courier-inboxd", ["pin", "--config", cfg, "--type", "virus-defs", "--revision", "1"])
        #expect(pin.status == 0, "\(pin.stderr)")
        c.t.write("state/pins.json", "{\"virus-defs\": \"one\"")
        let again = try Programs.run("courier-inboxd", ["unpin", "--config", cfg, "--type", "virus-defs"])
        #expect(again.status != 0)
        #expect(again.stderr.contains(c.t.sub("state/pins.json") + ": not a JSON object"), "\(again.stderr)")
        try FileManager.default.copyItem(atPath: try c.build(2), toPath: c.t.sub("inbox/virus-defs_2.cpkg"))
        _ = try c.sh("touch -d '1 minute ago' inbox/*")
        let r = try once(c)
        #expect(
            r.stderr.contains("pins.json: not a JSON object") && r.stderr.contains("keeping the pins last read"),
            "\(r.stderr)")
        #expect(c.installed() == 1, "the pin held before pins.json was damaged must still hold")
        let types = try #require(try statusObject(c)["types"] as? [String: Any])
        let vd = try #require(types["virus-defs"] as? [String: Any])
        #expect((vd["pinned"] as? NSNumber)?.intValue == 1)
    }

    @Test func rollbackWithNothingKeptSaysSo() throws {
        let c = try Client()
        try FileManager.default.copyItem(atPath: try c.build(1), toPath: c.t.sub("inbox/virus-defs_1.cpkg"))
        _ = try c.sh("touch -d '1 minute ago' inbox/*")
        #expect(try once(c).status == 0)
        let cfg = c.t.sub("inboxd.toml")
        let r = try Programs.run("courier-inboxd", ["rollback", "--config", cfg, "--type", "virus-defs"])
        #expect(r.status == 64, "\(r.stderr)")
        #expect(r.stderr.contains("(no other revision kept)"), "\(r.stderr)")
        #expect(!r.stderr.contains("(kept: )"), "\(r.stderr)")
        let to = try Programs.run("courier-inboxd", ["rollback", "--config", cfg, "--type", "virus-defs", "--to", "7"])
        #expect(to.status == 64 && to.stderr.contains("revision 7 is not in the store (no other revision kept)"))
    }

    @Test func defaultStateDirIsNormalised() throws {
        let t = TempDir()
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        t.write("client/inboxd.toml", "inbox = \"./inbox/\"\ntrust = \"../stage.key.pub\"\n[types.virus-defs]\n")
        let r = try Programs.run("courier-inboxd", ["status", "--config", t.sub("client/inboxd.toml")])
        #expect(r.status == 12, "\(r.stderr)")
        #expect(r.stderr.contains(t.sub("client/state/status.json") + ": no status yet"), "\(r.stderr)")
        #expect(!r.stderr.contains("/../") && !r.stderr.contains("/./"), "\(r.stderr)")
    }

    /// Delivery's default status path, `{inbox}/../state/status.json`, is the same file as the
    /// daemon's default, named plainly.
    @Test func deliverReportNamesTheNormalisedStatusPath() throws {
        let t = TempDir()
        try FileManager.default.createDirectory(atPath: t.sub("c1/inbox"), withIntermediateDirectories: true)
        let r = try Programs.run("courier-deliver", ["report", "--inbox", t.sub("c1/inbox")])
        #expect(r.stdout.contains("no status file at " + t.sub("c1/state/status.json")), "\(r.stdout)")
        #expect(!r.stdout.contains("/../"), "\(r.stdout)")
    }

    @Test func corruptDuplicateIsWarnedAboutAndRemoved() throws {
        let c = try Client()
        // Large enough that the damage lies past what the reader decodes ahead to verify the
        // manifest: only reading the payload finds it.
        let p1 = try c.build(1, bigMiB: 8)
        try FileManager.default.copyItem(atPath: p1, toPath: c.t.sub("inbox/virus-defs_1.cpkg"))
        _ = try c.sh("touch -d '1 minute ago' inbox/*")
        #expect(try once(c).status == 0)
        #expect(c.installed() == 1)
        // A good copy again: removed without a warning.
        try FileManager.default.copyItem(atPath: p1, toPath: c.t.sub("inbox/virus-defs_1.cpkg"))
        _ = try c.sh("touch -d '1 minute ago' inbox/*")
        let good = try once(c)
        #expect(good.status == 0 && !good.stderr.contains("corrupt"), "\(good.stderr)")
        #expect(c.inbox().isEmpty)
        // A copy whose payload was damaged (the signed manifest intact): removed, with a warning.
        var d = try Data(contentsOf: URL(fileURLWithPath: p1))
        d[d.count / 2] ^= 0x55
        try d.write(to: URL(fileURLWithPath: c.t.sub("inbox/virus-defs_1.cpkg")))
        _ = try c.sh("touch -d '1 minute ago' inbox/*")
        let bad = try once(c)
        #expect(bad.status == 0, "\(bad.stderr)")
        #expect(bad.stderr.contains("virus-defs_1.cpkg: virus-defs 1 is already installed, but this copy is corrupt"))
        #expect(c.inbox().isEmpty && c.quarantined().isEmpty)
        #expect(c.installed() == 1)
    }

    /// The codes of docs/INBOXD.md: a delta whose base is older than the installed revision is
    /// `rollback`, a failed test command `apply-failed` (no other words for these cases).
    @Test func missingBaseAndFailedTestQuarantineCodes() throws {
        let c = try Client(extraTypes: "test_command = \"test ! -e $COURIER_PATH/bad\"")
        let p1 = try c.build(1)
        let p2 = try c.build(2)
        // A delta to 6 from 2, sent once 5 is installed: its base is older than the installed one.
        let d62 = try c.build(6, base: p2)
        try FileManager.default.copyItem(atPath: p1, toPath: c.t.sub("inbox/virus-defs_1.cpkg"))
        try FileManager.default.copyItem(atPath: p2, toPath: c.t.sub("inbox/virus-defs_2.cpkg"))
        _ = try c.sh("touch -d '1 minute ago' inbox/*")
        #expect(try once(c).status == 0)
        #expect(c.installed() == 2)
        // Revision 4 whose test fails.
        c.t.write("up/virus-defs/4/bad", "x\n")
        let p4 = try c.build(4)
        try FileManager.default.copyItem(atPath: p4, toPath: c.t.sub("inbox/virus-defs_4.cpkg"))
        _ = try c.sh("touch -d '1 minute ago' inbox/*")
        #expect(try once(c).status == 16)
        let p5 = try c.build(5)
        try FileManager.default.copyItem(atPath: p5, toPath: c.t.sub("inbox/virus-defs_5.cpkg"))
        _ = try c.sh("touch -d '1 minute ago' inbox/*")
        #expect(try once(c).status == 0)
        #expect(c.installed() == 5)
        let deltaName = (d62 as NSString).lastPathComponent
        try FileManager.default.copyItem(atPath: d62, toPath: c.t.sub("inbox/" + deltaName))
        _ = try c.sh("touch -d '1 minute ago' inbox/*")
        #expect(try once(c).status == 16)
        func code(_ name: String) throws -> String? {
            let d = try Data(contentsOf: URL(fileURLWithPath: c.t.sub("state/quarantine/\(name).reason.json")))
            return (try JSONSerialization.jsonObject(with: d) as? [String: Any])?["code"] as? String
        }
        #expect(try code("virus-defs_4.cpkg") == "apply-failed")
        #expect(try code(deltaName) == "rollback")
    }
}
