import Foundation
import Testing

/// End-to-end: the built `courier-stage`, `courier-deliver` and `courier-inboxd` executables,
/// their exit codes (docs/OPERATIONS.md) and what they print.
@Suite(.serialized) struct CLITests {
    @Test func helpAndVersion() throws {
        for prog in ["courier-stage", "courier-deliver", "courier-inboxd"] {
            let v = try Programs.run(prog, ["--version"])
            #expect(v.status == 0)
            #expect(v.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0.2.0")
            let h = try Programs.run(prog, ["--help"])
            #expect(h.status == 0)
            #expect(h.stdout.contains("Exit codes"), "\(prog) --help must document exit codes")
        }
        let vh = try Programs.run("courier-deliver", ["verify", "--help"])
        #expect(vh.stdout.contains("validate: courier-deliver verify"))
        let bad = try Programs.run("courier-deliver", ["verify"])
        #expect(bad.status == 64)
    }

    @Test func keygenWritesKeysAndRefusesToOverwrite() throws {
        let t = TempDir()
        let r = try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key"), "--comment", "e2e"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("key id "))
        let attrs = try FileManager.default.attributesOfItem(atPath: t.sub("stage.key"))
        #expect((attrs[.posixPermissions] as! Int) == 0o600)
        let pub = try String(contentsOfFile: t.sub("stage.key.pub"), encoding: .utf8)
        #expect(pub.hasPrefix("courier-ed25519-v1 ") && pub.contains("e2e"))
        let before = try Data(contentsOf: URL(fileURLWithPath: t.sub("stage.key")))
        let again = try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        #expect(again.status == 7)
        #expect(again.stderr.contains("already exists"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: t.sub("stage.key"))) == before)
    }

    /// Key, full and delta packages, verify (text and JSON), extract, apply the delta.
    @Test func buildVerifyExtractAndApplyDelta() throws {
        let t = TempDir()
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("k")])
        t.write("v1/main.cvd", String(repeating: "signature\n", count: 1000))
        t.write("v1/daily/a.ndb", "a\n")
        t.write("v1/daily/b.ndb", "b\n")
        let b1 = try Programs.run(
            "courier-stage",
            [
                "build", "--tree", t.sub("v1"), "--type", "virus-defs", "--revision", "20261121001",
                "--key", t.sub("k"), "--out-dir", t.sub("out"),
            ])
        #expect(b1.status == 0, "\(b1.stderr)")
        let full = t.sub("out/virus-defs_20261121001.cpkg")

        let v = try Programs.run("courier-deliver", ["verify", "--trust", t.sub("k.pub"), full])
        #expect(v.status == 0, "\(v.stdout)\(v.stderr)")
        #expect(v.stdout.hasPrefix("OK "))
        #expect(v.stdout.contains("virus-defs 20261121001 full"))

        let j = try Programs.run("courier-deliver", ["verify", "--json", "--trust", t.sub("k.pub"), full])
        let obj = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as! [String: Any]
        #expect(obj["ok"] as? Bool == true)
        #expect(obj["revision"] as? Int == 20_261_121_001)
        #expect(obj["files"] as? Int == 3)

        t.write("v2/main.cvd", String(repeating: "signature\n", count: 1000) + "new\n")
        t.write("v2/daily/a.ndb", "a\n")
        t.write("v2/daily/c.ndb", "c\n")
        let b2 = try Programs.run(
            "courier-stage",
            [
                "build", "--tree", t.sub("v2"), "--type", "virus-defs", "--revision", "20261121002",
                "--key", t.sub("k"), "--out-dir", t.sub("out"), "--delta-from", full,
            ])
        #expect(b2.status == 0, "\(b2.stderr)")
        let delta = t.sub("out/virus-defs_20261121002_from_20261121001.cpkg")
        #expect(b2.stdout.contains("(format 2), 2 changed (1 patched in 1 patches), 1 removed"), "\(b2.stdout)")

        let x1 = try Programs.run(
            "courier-inboxd", ["extract", "--trust", t.sub("k.pub"), "--into", t.sub("store/1"), full])
        #expect(x1.status == 0, "\(x1.stderr)")
        #expect(treeContents(t.sub("store/1")) == treeContents(t.sub("v1")))
        let noBase = try Programs.run(
            "courier-inboxd", ["extract", "--trust", t.sub("k.pub"), "--into", t.sub("store/2"), delta])
        #expect(noBase.status == 64)
        #expect(noBase.stderr.contains("give --base"))
        let x2 = try Programs.run(
            "courier-inboxd",
            [
                "extract", "--trust", t.sub("k.pub"), "--into", t.sub("store/2"),
                "--base", t.sub("store/1"), delta,
            ])
        #expect(x2.status == 0, "\(x2.stderr)")
        #expect(treeContents(t.sub("store/2")) == treeContents(t.sub("v2")))
    }

    @Test func verifyRefusalsAndExitCodes() throws {
        let t = TempDir()
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("k")])
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("other")])
        t.write("tree/rules.txt", String(repeating: "alert tcp any any -> any any\n", count: 50))
        try Programs.run(
            "courier-stage",
            [
                "build", "--tree", t.sub("tree"), "--type", "ips-rules", "--revision", "7",
                "--key", t.sub("k"), "--out-dir", t.sub("out"), "--compression", "none",
            ])
        let good = t.sub("out/ips-rules_7.cpkg")

        // Wrong key: exit 7, one FAIL line naming the reason.
        let wrong = try Programs.run("courier-deliver", ["verify", "--trust", t.sub("other.pub"), good])
        #expect(wrong.status == 7)
        #expect(wrong.stdout.hasPrefix("FAIL ") && wrong.stdout.contains("no valid signature by a trusted key"))

        // Revoked key in a trust directory: exit 7.
        try FileManager.default.createDirectory(atPath: t.sub("trust"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: t.sub("k.pub"), toPath: t.sub("trust/k.pub"))
        try FileManager.default.copyItem(atPath: t.sub("other.pub"), toPath: t.sub("trust/other.pub"))
        let okDir = try Programs.run("courier-deliver", ["verify", "--trust", t.sub("trust"), good])
        #expect(okDir.status == 0)
        try FileManager.default.copyItem(atPath: t.sub("k.pub"), toPath: t.sub("trust/revoked"))
        let revoked = try Programs.run("courier-deliver", ["verify", "--trust", t.sub("trust"), good])
        #expect(revoked.status == 7)
        #expect(revoked.stdout.contains("revoked"))

        // A flipped payload byte: exit 11.
        var data = try Data(contentsOf: URL(fileURLWithPath: good))
        let r = data.range(of: Data("alert tcp".utf8))!
        data[r.lowerBound + 1] ^= 0x01
        try data.write(to: URL(fileURLWithPath: t.sub("out/tampered.cpkg")))
        let tampered = try Programs.run(
            "courier-deliver", ["verify", "--trust", t.sub("k.pub"), t.sub("out/tampered.cpkg")])
        #expect(tampered.status == 11)
        #expect(tampered.stdout.contains("SHA-256"))

        // Wrong type: exit 6. Not a package: exit 6. Missing trust store: exit 7.
        let ty = try Programs.run(
            "courier-deliver", ["verify", "--type", "virus-defs", "--trust", t.sub("k.pub"), good])
        #expect(ty.status == 6)
        t.write("junk.cpkg", "hello")
        #expect(
            try Programs.run("courier-deliver", ["verify", "--trust", t.sub("k.pub"), t.sub("junk.cpkg")]).status == 6)
        let noTrust = try Programs.run("courier-deliver", ["verify", "--trust", t.sub("nope"), good])
        #expect(noTrust.status == 7)
        #expect(noTrust.stderr.contains("nope: trust store not found"))

        // Several packages, one bad: exit 16, one line each.
        let mixed = try Programs.run(
            "courier-deliver", ["verify", "--trust", t.sub("k.pub"), good, t.sub("out/tampered.cpkg")])
        #expect(mixed.status == 16)
        #expect(mixed.stdout.split(separator: "\n").count == 2)
    }

    @Test func expiredPackageIsRefused() throws {
        let t = TempDir()
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("k")])
        t.write("tree/x", "x")
        try Programs.run(
            "courier-stage",
            [
                "build", "--tree", t.sub("tree"), "--type", "t", "--revision", "1",
                "--key", t.sub("k"), "--out-dir", t.sub("out"), "--lifetime", "1s",
            ])
        sleep(2)
        let r = try Programs.run(
            "courier-deliver", ["verify", "--clock-skew", "0", "--trust", t.sub("k.pub"), t.sub("out/t_1.cpkg")])
        #expect(r.status == 8)
        #expect(r.stdout.contains("expired at"))
        let lenient = try Programs.run(
            "courier-deliver", ["verify", "--clock-skew", "1h", "--trust", t.sub("k.pub"), t.sub("out/t_1.cpkg")])
        #expect(lenient.status == 0)
    }
}
