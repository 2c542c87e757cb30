import Foundation
import Testing

/// Issue #16's must-show, with the real programs: a client whose test command fails on revision
/// R refuses it; no later `courier-deliver push` or `select` sends R again; R+1 is published,
/// arrives and applies; `--force` sends R again; and the client's quarantine stays bounded.
@Suite(.serialized) struct RefusedRevisionE2ETests {
    let t = TempDir()
    var inbox: String { t.sub("client/inbox") }
    var status: String { t.sub("client/state/status.json") }

    init() throws {
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        t.write(
            "stage.toml",
            "outbox = \"outbox\"\nkey = \"stage.key\"\n[types.virus-defs]\nsource = \"dir\"\npath = \"up\"\n")
        try FileManager.default.createDirectory(atPath: t.sub("client/trust"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: t.sub("stage.key.pub"), toPath: t.sub("client/trust/stage.pub"))
        // The test command refuses content with "bad" in it; every refusal is logged by on_refused.
        t.write(
            "client/inboxd.toml",
            """
            inbox = "inbox"
            state_dir = "state"
            trust = "trust"
            quarantine_max_files = 3
            [types.virus-defs]
            test_command = "! grep -q bad $COURIER_PATH/daily.ndb"
            on_refused = "echo $COURIER_REVISION $COURIER_CODE >> \(t.sub("refused.log"))"
            """)
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
    }

    /// Publishes `rev` with `content` through a real stager run.
    func publish(_ rev: Int, _ content: String) throws {
        t.write("up/\(rev)/daily.ndb", content + "\n" + String(repeating: "sig line\n", count: 200))
        let r = try Programs.run("courier-stage", ["run", "--config", t.sub("stage.toml")])
        #expect(r.status == 0, "\(r.stderr)")
    }

    func push(_ extra: [String] = []) throws -> Programs.Result {
        try Programs.run(
            "courier-deliver",
            [
                "push", "--outbox", t.sub("outbox"), "--trust", t.sub("stage.key.pub"),
                "--inbox", inbox, "--json",
            ] + extra)
    }

    func select(_ extra: [String] = []) throws -> Programs.Result {
        try Programs.run(
            "courier-deliver", ["select", "--outbox", t.sub("outbox"), "--status", status, "--json"] + extra)
    }

    /// One pass of the daemon; returns its exit status.
    func applyOnce() throws -> Int32 {
        try Programs.run("courier-inboxd", ["run", "--config", t.sub("client/inboxd.toml"), "--once", "--quiet"]).status
    }

    func visible() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: inbox)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    func typeStatus() throws -> [String: Any] {
        let o = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: status))) as! [String: Any]
        return (o["types"] as! [String: Any])["virus-defs"] as! [String: Any]
    }

    func json(_ out: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(out.split(separator: "\n").first.map(String.init)!.utf8))
            as! [String: Any]
    }

    @Test func aRefusedRevisionIsNotSentAgainUntilForcedAndTheNextOneApplies() throws {
        let r0 = 20_261_201_001
        let r = 20_261_201_002
        let r1 = 20_261_201_003
        try publish(r0, "good")
        #expect(try push().status == 0)
        #expect(try applyOnce() == 0)
        #expect(try typeStatus()["installed"] as? Int == r0)

        // R fails the client's test command: refused, recorded with its code and reason.
        try publish(r, "bad")
        #expect(visible().isEmpty)
        #expect(try push().status == 0)
        #expect(visible().count == 1)
        #expect(try applyOnce() == 16)
        #expect(visible().isEmpty)
        let ts = try typeStatus()
        #expect(ts["installed"] as? Int == r0)
        let refused = try #require(ts["refused"] as? [[String: Any]])
        #expect(
            refused.count == 1 && refused[0]["revision"] as? Int == r && refused[0]["code"] as? String == "apply-failed"
        )
        #expect((refused[0]["reason"] as? String ?? "").contains("test command exited 1"))
        // The operator sees it in `status`, and the fleet report names it as why the client is stale.
        let st = try Programs.run("courier-inboxd", ["status", "--config", t.sub("client/inboxd.toml")])
        #expect(
            st.status == 0 && st.stdout.contains("refused \(r) ")
                && st.stdout.contains("(apply-failed): test command exited 1"), "\(st.stdout)")
        #expect(st.stdout.contains("quarantine: 1 file"), "\(st.stdout)")
        let rep = try Programs.run("courier-deliver", ["report", "--outbox", t.sub("outbox"), "--status", status])
        #expect(rep.stdout.contains("STALE: refused \(r) (apply-failed)"), "\(rep.stdout)\(rep.stderr)")

        // No later push or select sends R again.
        for _ in 0..<2 {
            let p = try push()
            #expect(p.status == 0)
            let o = try json(p.stdout)
            #expect(o["code"] as? String == "refused" && o["revision"] as? Int == r, "\(p.stdout)")
            #expect(visible().isEmpty, "push sent the refused revision again")
        }
        let s = try select()
        #expect(s.status == 0)
        let so = try json(s.stdout)
        #expect(so["action"] as? String == "none" && so["code"] as? String == "refused" && so["path"] == nil)
        #expect((so["reason"] as? String ?? "").contains("test command exited 1"))
        // Plain select prints no path.
        #expect(
            try Programs.run("courier-deliver", ["select", "--outbox", t.sub("outbox"), "--status", status]).stdout
                .isEmpty)

        // --force sends R again (select names it; push copies it); the client tries it again.
        let fs = try json(select(["--force"]).stdout)
        #expect(fs["revision"] as? Int == r && (fs["path"] as? String ?? "").hasSuffix(".cpkg"))
        let fp = try push(["--force"])
        #expect(fp.status == 0 && visible().count == 1, "\(fp.stdout)")
        #expect(try applyOnce() == 16)  // still bad: refused again, not dropped
        let log = try String(contentsOfFile: t.sub("refused.log"), encoding: .utf8).split(separator: "\n")
        #expect(log == ["\(r) apply-failed", "\(r) apply-failed"])

        // R+1 is published, sent as usual, and applies; the refusal of R is cleared.
        try publish(r1, "good again")
        let p1 = try push()
        #expect(p1.status == 0 && visible().count == 1, "\(p1.stdout)")
        #expect(try applyOnce() == 0)
        let after = try typeStatus()
        #expect(after["installed"] as? Int == r1 && after["refused"] == nil)
        #expect(try json(select().stdout)["code"] as? String == "up-to-date")
    }

    /// The quarantine keeps `quarantine_max_files` (3 here) however many refusals come; evictions
    /// are counted in status.json.
    @Test func theQuarantineStaysWithinItsCap() throws {
        let base = 20_261_202_000
        try publish(base + 20, "good")
        #expect(try push().status == 0)
        #expect(try applyOnce() == 0)
        // Eight older revisions, built by hand and dropped in: each a rollback, refused.
        for i in 1...8 {
            t.write("old/\(i)/daily.ndb", "old \(i)\n")
            let b = try Programs.run(
                "courier-stage",
                [
                    "build", "--tree", t.sub("old/\(i)"), "--type", "virus-defs", "--revision", String(base + i),
                    "--key", t.sub("stage.key"), "--out-dir", t.sub("built"),
                ])
            #expect(b.status == 0, "\(b.stderr)")
            try FileManager.default.copyItem(
                atPath: t.sub("built/virus-defs_\(base + i).cpkg"), toPath: inbox + "/virus-defs_\(base + i).cpkg")
            #expect(try applyOnce() == 16)
        }
        let q = try FileManager.default.contentsOfDirectory(atPath: t.sub("client/state/quarantine")).filter {
            !$0.hasPrefix(".")
        }.sorted()
        #expect(
            q
                == (6...8).flatMap { ["virus-defs_\(base + $0).cpkg", "virus-defs_\(base + $0).cpkg.reason.json"] }
                .sorted())
        let o = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: status))) as! [String: Any]
        let summary = try #require(o["quarantine"] as? [String: Any])
        #expect(summary["evicted"] as? Int == 5 && summary["files"] as? Int == 3)
    }
}
