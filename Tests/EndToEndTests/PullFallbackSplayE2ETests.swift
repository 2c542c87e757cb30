import Foundation
import Glibc
import Testing

/// courier-pull's delta fallback and splay, against a real nginx on 127.0.0.1 serving a copy of a
/// real stager's outbox (issue #16 follow-ups): what the unit tests of the decision cannot show.
@Suite(.serialized, .enabled(if: Nginx.available, "nginx is not installed")) struct PullFallbackSplayE2ETests {
    /// Replaces `dir` with a copy of the stager's outbox (nginx keeps serving the path).
    static func mirror(_ w: PullWorld, into dir: String) throws {
        if FileManager.default.fileExists(atPath: dir) { try FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: w.outbox, toPath: dir)
    }

    static func sha256(_ path: String) throws -> String {
        let r = try Programs.runTool("/usr/bin/sha256sum", [path])
        return String(r.stdout.split(separator: " ").first ?? "")
    }

    /// The only mirror serves a delta that fails its checks: the client takes the full package
    /// from the same mirror, which applies; the delta never shows in the inbox. `integrity`: one
    /// byte flipped, the index unchanged (SHA-256 against the index catches it). `manifest`: the
    /// mirror's index.json rewritten to the tampered bytes' SHA-256, as a hostile mirror would,
    /// so only the package's own verification catches it (here: a payload entry's SHA-256
    /// against the signed manifest).
    @Test(arguments: ["integrity", "manifest"])
    func aDeltaThatFailsVerificationFallsBackToTheFullPackage(_ how: String) throws {
        let w = try PullWorld()
        try w.stage("20261120001")
        let root = w.t.sub("mirror")
        try Self.mirror(w, into: root)
        let server = try Nginx(root: root, dir: w.t.sub("nginx"))
        let conf = w.client("c1", mirrors: [server.url])
        let first = try w.pull(conf)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try w.apply("c1").status == 0)
        #expect(w.installed("c1") == "20261120001")

        try w.stage("20261121001")
        try Self.mirror(w, into: root)
        let deltaName = "virus-defs_20261121001_from_20261120001.cpkg"
        let fullName = "virus-defs_20261121001.cpkg"
        let delta = root + "/virus-defs/20261121001/" + deltaName
        var bytes = try Data(contentsOf: URL(fileURLWithPath: delta))
        bytes[bytes.count / 2] ^= 0x55
        try bytes.write(to: URL(fileURLWithPath: delta))
        if how == "manifest" {
            let sha = try Self.sha256(delta)
            var text = try String(contentsOfFile: root + "/index.json", encoding: .utf8)
            let original = try Self.sha256(w.outbox + "/virus-defs/20261121001/" + deltaName)
            #expect(text.contains(original), "the index names the delta by its SHA-256")
            text = text.replacingOccurrences(of: original, with: sha)
            try text.write(toFile: root + "/index.json", atomically: true, encoding: .utf8)
        }
        // Without the corruption the delta would have been chosen (the client holds its base);
        // a delta that verifies is the case PullE2ETests covers.
        let v = try Programs.run("courier-deliver", ["verify", "--trust", w.trust, delta])
        #expect(v.status != 0, "the tampered delta must fail verification: \(v.stdout)")

        let r = try w.pull(conf, ["--log-file", w.t.sub("c1/pull.log")])
        #expect(r.status == 0, "\(r.status) \(r.stderr)")
        let line = typeLines(r.json).first ?? [:]
        #expect(line["action"] as? String == "full", "\(r.json)")
        #expect(line["code"] as? String == "delta-failed", "\(r.json)")
        #expect(line["package"] as? String == fullName, "\(r.json)")
        let reason = line["reason"] as? String ?? ""
        #expect(reason.contains("the delta failed"), "\(r.json)")
        // Caught where each case must be caught: against the index, or by the package's own checks.
        #expect(reason.contains("the index says") == (how == "integrity"), "\(reason)")
        // Both were asked of the mirror: the delta first, then the full package.
        #expect(server.requests(matching: "GET /virus-defs/20261121001/\(deltaName)") >= 1)
        #expect(server.requests(matching: "GET /virus-defs/20261121001/\(fullName) HTTP/1.1\" 200") == 1)
        // The inbox holds the full package alone, byte for byte the stager's; no temporaries.
        let inbox = try FileManager.default.contentsOfDirectory(atPath: w.t.sub("c1/inbox"))
        #expect(inbox == [fullName], "\(inbox)")
        #expect(
            FileManager.default.contents(atPath: w.t.sub("c1/inbox/" + fullName))
                == FileManager.default.contents(atPath: w.outbox + "/virus-defs/20261121001/" + fullName))
        let log = (try? String(contentsOfFile: w.t.sub("c1/pull.log"), encoding: .utf8)) ?? ""
        let delivered = log.split(separator: "\n").filter { $0.contains("delivered into the inbox") }
        #expect(
            delivered.count == 1 && !delivered.contains { $0.contains(deltaName) }
                && delivered.last?.contains(fullName) == true, "\(log)")
        #expect(log.contains("] summary: ") && log.contains("full (delta-failed)"), "\(log)")

        #expect(try w.apply("c1").status == 0)
        #expect(w.installed("c1") == "20261121001")
        let quarantine = (try? FileManager.default.contentsOfDirectory(atPath: w.t.sub("c1/state/quarantine"))) ?? []
        #expect(quarantine.isEmpty, "nothing was refused by the client: \(quarantine)")
    }

    /// Wall time of one `courier-pull run` (a 304, nothing to download), and its stderr.
    static func timedPull(_ conf: String, _ more: [String]) throws -> (seconds: Double, stderr: String, status: Int32) {
        let t0 = Date()
        let r = try Programs.run("courier-pull", ["run", "--config", conf, "--verbose"] + more)
        return (Date().timeIntervalSince(t0), r.stderr, r.status)
    }

    /// `splay = "3s"`: every run waits a random time within [0, 3 s] before it contacts a mirror,
    /// the waits differ, and the time measured matches the wait the log announces;
    /// `--no-splay` does not wait.
    @Test func splayWaitsARandomTimeWithinTheWindowAndNoSplayDoesNot() throws {
        let w = try PullWorld()
        try w.stage("20261120001")
        let server = try Nginx(root: w.outbox, dir: w.t.sub("nginx"))
        let conf = w.client("c1", mirrors: [server.url], extra: "splay = \"3s\"")
        #expect(try w.pull(conf).status == 0)  // the package; later runs are 304s

        var base: [Double] = []
        for _ in 0..<4 {
            let r = try Self.timedPull(conf, ["--no-splay"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(!r.stderr.contains("splay"), "\(r.stderr)")
            base.append(r.seconds)
        }
        let baseMax = base.max()!
        #expect(baseMax < 2.0, "a run without splay takes \(base)")

        var waits: [Double] = []
        for _ in 0..<6 {
            let r = try Self.timedPull(conf, [])
            #expect(r.status == 0, "\(r.stderr)")
            // "splay: waiting N s before contacting a mirror" (N: whole seconds of the wait).
            let announced = r.stderr.split(separator: "\n").first { $0.contains("splay: waiting") }
                .flatMap { $0.components(separatedBy: "splay: waiting ").last?.split(separator: " ").first }
                .flatMap { Int($0) }
            #expect(announced != nil && (0...3).contains(announced!), "\(r.stderr)")
            let wait = r.seconds - base.min()!
            if let a = announced {
                #expect(
                    wait >= Double(a) - 0.3 && wait <= Double(a) + 1 + baseMax, "announced \(a) s, measured \(wait) s")
            }
            waits.append(wait)
        }
        print(
            "splay 3s: extra seconds per run \(waits.map { String(format: "%.2f", $0) }); --no-splay runs \(base.map { String(format: "%.2f", $0) }) s"
        )
        #expect(waits.allSatisfy { $0 >= -0.3 && $0 <= 3.0 + baseMax + 0.5 }, "\(waits)")
        // Not all ~0: six uniform draws in [0, 3] all below 0.3 s has probability 1e-6.
        #expect(waits.contains { $0 > 0.3 + (baseMax - base.min()!) }, "\(waits)")
        // Random, not a constant: the draws spread (six uniform draws within 0.2 s: < 1e-4).
        #expect(waits.max()! - waits.min()! > 0.2, "\(waits)")
    }
}
