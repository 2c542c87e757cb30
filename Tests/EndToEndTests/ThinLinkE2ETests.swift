import Foundation
import Testing

/// `courier-deliver push --bwlimit` and `--stagger` as an operator runs them: a real outbox from
/// courier-stage, real inboxes, the real program, wall-clock times.
@Suite(.serialized) struct ThinLinkE2ETests {
    static let package = "virus-defs_20261120001.cpkg"

    /// A stager whose one revision holds `mib` MiB of random bytes (so the package is that
    /// big), and `n` empty inboxes.
    func setUp(_ t: TempDir, mib: Int, inboxes n: Int) throws -> [String] {
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        try FileManager.default.createDirectory(atPath: t.sub("up/20261120001"), withIntermediateDirectories: true)
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<(mib << 17)).map { _ in rng.next() as UInt64 }
        try bytes.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: t.sub("up/20261120001/main.db"))) }
        t.write(
            "stage.toml",
            "outbox = \"outbox\"\nkey = \"stage.key\"\n[types.virus-defs]\nsource = \"dir\"\npath = \"up\"\n")
        let r = try Programs.run("courier-stage", ["run", "--config", t.sub("stage.toml")])
        #expect(r.status == 0, "\(r.stderr)")
        return (0..<n).map { i in
            let p = t.sub("clients/c\(i)/inbox")
            try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
            return p
        }
    }

    func push(_ t: TempDir, _ extra: [String]) throws -> Programs.Result {
        try Programs.run(
            "courier-deliver",
            [
                "push", "--outbox", t.sub("outbox"), "--trust", t.sub("stage.key.pub"),
                "--inbox", t.sub("clients/*/inbox"), "--no-verify-cache",
            ] + extra)
    }

    /// 20 MiB into 2 inboxes at 4M: one cap for the run, 40 MiB at 4 MiB/s = 10 s ± 15 %, each
    /// copy byte for byte the package. (Uncapped, the same push takes well under a second.)
    @Test func twentyMiBIntoTwoInboxesAtFourMiBPerSecond() throws {
        let t = TempDir()
        let inboxes = try setUp(t, mib: 20, inboxes: 2)
        let pkg = t.sub("outbox/virus-defs/20261120001/\(Self.package)")
        let size = Double(try FileManager.default.attributesOfItem(atPath: pkg)[.size] as! NSNumber)
        #expect(size >= Double(20 << 20), "random bytes do not compress")
        let t0 = Date()
        let r = try push(t, ["--bwlimit", "4M"])
        let took = Date().timeIntervalSince(t0)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("2 copied") && r.stdout.contains("by writes capped by --bwlimit"), "\(r.stdout)")
        let expected = 2 * size / Double(4 << 20)
        print(
            "ThinLinkE2ETests: 2 × \(Int(size)) bytes at --bwlimit 4M took \(String(format: "%.2f", took)) s (expected \(String(format: "%.2f", expected)) s)"
        )
        #expect(abs(took - expected) <= 0.15 * expected, "took \(took) s, expected \(expected) s ± 15 %")
        let src = FileManager.default.contents(atPath: pkg)
        for ib in inboxes { #expect(FileManager.default.contents(atPath: ib + "/" + Self.package) == src, "\(ib)") }
    }

    /// --stagger 6s over 4 inboxes: the packages appear spread over the window (slots 1.5 s
    /// apart), not all within the first second; the run lasts about the last slot, not the window.
    @Test func staggerSpreadsArrivalsOverTheWindow() throws {
        let t = TempDir()
        let inboxes = try setUp(t, mib: 1, inboxes: 4)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Programs.binDir + "/courier-deliver")
        p.arguments = [
            "push", "--outbox", t.sub("outbox"), "--trust", t.sub("stage.key.pub"),
            "--inbox", t.sub("clients/*/inbox"), "--no-verify-cache", "--stagger", "6s",
        ]
        p.standardOutput = FileHandle.nullDevice
        let t0 = Date()
        try p.run()
        var arrived: [String: Double] = [:]
        while p.isRunning || arrived.count < inboxes.count {
            for ib in inboxes
            where arrived[ib] == nil && FileManager.default.fileExists(atPath: ib + "/" + Self.package) {
                arrived[ib] = Date().timeIntervalSince(t0)
            }
            if !p.isRunning && arrived.count < inboxes.count { break }
            usleep(20_000)
        }
        p.waitUntilExit()
        let took = Date().timeIntervalSince(t0)
        #expect(p.terminationStatus == 0)
        #expect(arrived.count == 4, "\(arrived)")
        let times = arrived.values.sorted()
        print(
            "ThinLinkE2ETests: --stagger 6s, arrivals at \(times.map { String(format: "%.2f", $0) }) s, run \(String(format: "%.2f", took)) s"
        )
        #expect(times.filter { $0 - times[0] < 1 }.count == 1, "only the first slot in the first second: \(times)")
        // Slots 1.5 s apart; each arrival also waits for its inbox's syncfs, which on a shared
        // machine may take a while: hence the margins.
        #expect(times.last! - times.first! >= 3.5 && times.last! - times.first! < 6.0, "\(times)")
        for k in 1..<times.count { #expect(times[k] - times[k - 1] >= 0.5, "slots 1.5 s apart: \(times)") }
        #expect(took < 6.0 + 2.0, "the run ends after the last slot, \(took) s")
    }

    /// Bad values: exit 64 and the option named, nothing copied.
    @Test(arguments: [
        ["--bwlimit", "0"], ["--bwlimit", "fast"], ["--bwlimit", "-2M"],
        ["--stagger", "soon"], ["--stagger", "5x"], ["--stagger", "-1s"],
    ])
    func badValuesAreUsageErrors(args: [String]) throws {
        let t = TempDir()
        let inboxes = try setUp(t, mib: 0, inboxes: 1)
        let r = try push(t, args)
        #expect(r.status == 64, "\(args): \(r.status) \(r.stderr)")
        #expect(r.stderr.contains(args[0]), "\(args): \(r.stderr)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: inboxes[0])) ?? ["?"]).isEmpty)
    }
}
