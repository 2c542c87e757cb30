import Foundation
import Testing

/// `courier-deliver push --no-sync` as an operator runs it, and what its documented risk comes
/// to: a copy torn by a power loss before write-back (simulated here by cutting the delivered
/// file, as a file system may leave it after the crash) is refused by the client's daemon and
/// quarantined, nothing of it applied, and the next push delivers the revision again.
@Suite(.serialized) struct NoSyncE2ETests {
    static let package = "virus-defs_20261120001.cpkg"

    /// A stager with one revision published; one client: inboxd.toml, inbox/, state/ (where push
    /// looks for status.json by default), trusting the stager's key.
    func setUp(_ t: TempDir) throws {
        try DeliverE2ETests.stageOneRevision(t)
        try FileManager.default.createDirectory(atPath: t.sub("client/inbox"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: t.sub("client/trust"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: t.sub("stage.key.pub"), toPath: t.sub("client/trust/stage.pub"))
        t.write(
            "client/inboxd.toml",
            "inbox = \"inbox\"\nstate_dir = \"state\"\ntrust = \"trust\"\n[types.virus-defs]\nkeep = 2\n")
    }

    func push(_ t: TempDir) throws -> Programs.Result {
        try Programs.run(
            "courier-deliver",
            [
                "push", "--outbox", t.sub("outbox"), "--trust", t.sub("stage.key.pub"),
                "--inbox", t.sub("client/inbox"), "--no-sync",
            ])
    }

    func inboxd(_ t: TempDir) throws -> Programs.Result {
        try Programs.run("courier-inboxd", ["run", "--config", t.sub("client/inboxd.toml"), "--once", "--quiet"])
    }

    func status(_ t: TempDir) -> [String: Any]? {
        guard let d = FileManager.default.contents(atPath: t.sub("client/state/status.json")),
            let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
            let types = o["types"] as? [String: Any]
        else { return nil }
        return types["virus-defs"] as? [String: Any]
    }

    /// `torn`: what the "power loss" left of the delivered package: "empty" (its manifest
    /// unreadable) or "half" (a readable manifest, a truncated payload).
    @Test(arguments: ["empty", "half"])
    func tornCopyIsQuarantinedAndDeliveredAgain(torn: String) throws {
        let t = TempDir()
        try setUp(t)
        let inbox = t.sub("client/inbox")
        let src = FileManager.default.contents(atPath: t.sub("outbox/virus-defs/20261120001/\(Self.package)"))!

        let first = try push(t)
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        #expect(
            first.stdout.contains("1 copied") && first.stdout.contains("not flushed to disk: --no-sync"),
            "\(first.stdout)")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: inbox) == [Self.package],
            "renamed into place, no temporary")
        #expect(FileManager.default.contents(atPath: inbox + "/" + Self.package) == src)

        // What a power loss before write-back may leave under the final name.
        let keep = torn == "empty" ? 0 : src.count / 2
        #expect(truncate(inbox + "/" + Self.package, off_t(keep)) == 0)
        var old = [timespec(tv_sec: time(nil) - 60, tv_nsec: 0), timespec(tv_sec: time(nil) - 60, tv_nsec: 0)]
        utimensat(AT_FDCWD, inbox + "/" + Self.package, &old, 0)

        // The client refuses it on verification and quarantines it; nothing is installed.
        let refused = try inboxd(t)
        #expect(refused.status == 16, "\(refused.stderr)")
        let reasonPath = t.sub("client/state/quarantine/\(Self.package).reason.json")
        let reason =
            (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reasonPath))))
            as? [String: Any]
        #expect(["malformed", "integrity"].contains(reason?["code"] as? String ?? ""), "\(String(describing: reason))")
        #expect(status(t)?["installed"] == nil || status(t)?["installed"] is NSNull)
        #expect(try FileManager.default.contentsOfDirectory(atPath: inbox).isEmpty)

        // The next push sends the same revision again, and the client installs it.
        let again = try push(t)
        #expect(again.status == 0 && again.stdout.contains("1 copied"), "\(again.stdout)")
        #expect(FileManager.default.contents(atPath: inbox + "/" + Self.package) == src)
        let applied = try inboxd(t)
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(status(t)?["installed"] as? Int == 20_261_120_001)
    }
}
