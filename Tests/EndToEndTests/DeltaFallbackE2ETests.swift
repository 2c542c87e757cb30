import Foundation
import Testing

/// Issue #13, with the real programs: courier-stage publishes a format 2 delta (the changed
/// signature file patched), courier-deliver pushes it, courier-inboxd applies it on a healthy
/// client byte for byte; a client whose base file drifted refuses it (base-mismatch, quarantine,
/// status), and the next push sends that client the full package, which it applies.
@Suite(.serialized) struct DeltaFallbackE2ETests {
    /// 3,000 signature lines; revision `rev` changes lines 100, 1500 and 2900 and appends one.
    func daily(_ rev: Int) -> String {
        var x: UInt64 = 0x1234_5678_9ABC_DEF1
        var lines = (0..<3000).map { i -> String in
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            return "Courier.Daily.Sig-\(i):0:*:\(String(x, radix: 16))\(String(x &* 31, radix: 16))"
        }
        if rev > 1 {
            for i in [100, 1500, 2900] {
                lines[i] =
                    "Courier.Daily.Sig-\(i)-rev\(rev):0:*:\(String(UInt64(i * rev) &* 0x9E37_79B9_7F4A_7C15, radix: 16))"
            }
            lines.append("Courier.Daily.New-\(rev):0:*:deadbeef\(rev)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func client(_ t: TempDir, _ name: String) {
        t.write(
            "\(name)/inboxd.toml",
            """
            inbox = "inbox"
            state_dir = "state"
            trust = "../stage.key.pub"
            delta_wait = "1s"
            [types.virus-defs]
            keep = 2
            """)
        try! FileManager.default.createDirectory(atPath: t.sub("\(name)/inbox"), withIntermediateDirectories: true)
    }

    func status(_ t: TempDir, _ name: String) -> [String: Any] {
        guard let d = FileManager.default.contents(atPath: t.sub("\(name)/state/status.json")),
            let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
            let types = o["types"] as? [String: Any], let ts = types["virus-defs"] as? [String: Any]
        else { return [:] }
        return ts
    }

    @Test func driftedBaseRefusesTheDeltaAndGetsTheFull() throws {
        let t = TempDir()
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        t.write(
            "stage.toml",
            "outbox = \"outbox\"\nkey = \"stage.key\"\n[types.virus-defs]\nsource = \"dir\"\npath = \"up\"\n")
        t.write("up/1/main.ndb", stableSignatures)
        t.write("up/1/daily.ndb", daily(1))
        #expect(try Programs.run("courier-stage", ["run", "--config", t.sub("stage.toml")]).status == 0)
        for c in ["good", "drifted"] { client(t, c) }
        let push = [
            "push", "--outbox", t.sub("outbox"), "--trust", t.sub("stage.key.pub"),
            "--inbox", t.sub("good/inbox"), "--inbox", t.sub("drifted/inbox"),
        ]
        func once(_ c: String) throws -> Programs.Result {
            try Programs.run("courier-inboxd", ["run", "--config", t.sub("\(c)/inboxd.toml"), "--once", "--quiet"])
        }
        #expect(try Programs.run("courier-deliver", push).status == 0)
        for c in ["good", "drifted"] { #expect(try once(c).status == 0) }
        let rev1 = status(t, "good")["installed"] as? Int
        #expect(rev1 != nil)

        // Revision 2: three lines changed and one added in daily.ndb.
        try FileManager.default.removeItem(atPath: t.sub("up/1"))
        t.write("up/2/main.ndb", stableSignatures)
        t.write("up/2/daily.ndb", daily(2))
        let staged = try Programs.run("courier-stage", ["run", "--config", t.sub("stage.toml")])
        #expect(staged.status == 0, "\(staged.stderr)")
        let rev2 = try FileManager.default.contentsOfDirectory(atPath: t.sub("outbox/virus-defs"))
            .compactMap { Int($0) }.max()!
        let delta = "virus-defs_\(rev2)_from_\(rev1!).cpkg"
        let deltaPath = t.sub("outbox/virus-defs/\(rev2)/\(delta)")
        let fullPath = t.sub("outbox/virus-defs/\(rev2)/virus-defs_\(rev2).cpkg")
        let deltaSize = try FileManager.default.attributesOfItem(atPath: deltaPath)[.size] as! Int
        let fullSize = try FileManager.default.attributesOfItem(atPath: fullPath)[.size] as! Int
        // daily.ndb is ~150 KB; patched, the delta is a few hundred bytes of patch plus envelope.
        #expect(deltaSize < 2_000 && deltaSize * 20 < fullSize, "delta \(deltaSize) bytes, full \(fullSize)")
        let verify = try Programs.run(
            "courier-deliver", ["verify", "--trust", t.sub("stage.key.pub"), "--json", deltaPath])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")

        // The drifted client: one byte of its installed daily.ndb changed (same size).
        let drifted = t.sub("drifted/state/store/virus-defs/\(rev1!)/daily.ndb")
        var bytes = Array(FileManager.default.contents(atPath: drifted)!)
        bytes[10] ^= 0x20
        chmod(drifted, 0o644)
        try Data(bytes).write(to: URL(fileURLWithPath: drifted))

        let first = try Programs.run("courier-deliver", push)
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        #expect(FileManager.default.fileExists(atPath: t.sub("good/inbox/\(delta)")))
        #expect(FileManager.default.fileExists(atPath: t.sub("drifted/inbox/\(delta)")))
        #expect(try once("good").status == 0)
        _ = try once("drifted")
        #expect(status(t, "good")["installed"] as? Int == rev2)
        #expect(treeContents(t.sub("good/state/store/virus-defs/\(rev2)")) == treeContents(t.sub("up/2")))
        let err = status(t, "drifted")["last_error"] as? [String: Any]
        #expect(status(t, "drifted")["installed"] as? Int == rev1)
        #expect(err?["code"] as? String == "base-mismatch", "\(String(describing: err))")
        #expect(
            (err?["reason"] as? String)?.contains("daily.ndb") == true
                || (err?["reason"] as? String)?.contains("differ") == true)
        #expect(err?["package"] as? String == delta)

        // The next push sends the drifted client the full package; it applies.
        let second = try Programs.run("courier-deliver", push)
        #expect(second.status == 0, "\(second.stdout)\(second.stderr)")
        #expect(
            FileManager.default.fileExists(atPath: t.sub("drifted/inbox/virus-defs_\(rev2).cpkg")), "\(second.stdout)")
        #expect(second.stdout.contains("delta-refused") || second.stdout.contains("refused"), "\(second.stdout)")
        #expect(try once("drifted").status == 0)
        #expect(status(t, "drifted")["installed"] as? Int == rev2)
        #expect(treeContents(t.sub("drifted/state/store/virus-defs/\(rev2)")) == treeContents(t.sub("up/2")))
    }
}
