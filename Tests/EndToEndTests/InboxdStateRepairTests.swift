import Foundation
import Glibc
import Testing

/// Transient failures and failures after the commit point, against the real daemon: a full or
/// read-only store (the package waits and is retried), a full state file system (`current` was
/// switched: the package is applied, the state is repaired), and crashes that left history,
/// `kept` or retention behind (issue #11, items 8, 9 and 12).
@Suite(.serialized) struct InboxdStateRepairTests {
    typealias Client = InboxdE2ETests.Client

    @discardableResult
    static func sh(_ args: [String]) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    /// Mounts a tmpfs of `size` at `dir` (created); the caller unmounts.
    static func mountTmpfs(_ dir: String, size: String) -> Bool {
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return sh(["mount", "-t", "tmpfs", "-o", "size=\(size)", "tmpfs", dir])
    }

    /// Fills the file system of `dir` with `dir/fill` until it refuses more.
    static func fill(_ dir: String) {
        _ = sh(["sh", "-c", "dd if=/dev/zero of='\(dir)/fill' bs=4k 2>/dev/null; true"])
    }

    func statusType(_ c: Client, _ type: String = "virus-defs") -> [String: Any] {
        guard let d = FileManager.default.contents(atPath: c.t.sub("state/status.json")),
            let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
            let types = o["types"] as? [String: Any], let ts = types[type] as? [String: Any]
        else { return [:] }
        return ts
    }

    func history(_ c: Client) -> [[String: Any]] {
        let text = (try? String(contentsOfFile: c.t.sub("state/history.jsonl"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func current(_ c: Client, store: String = "state/store") -> Int? {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: c.t.sub("\(store)/virus-defs/current"))).flatMap {
            Int($0)
        }
    }

    func log(_ c: Client) -> String {
        String(((try? String(contentsOfFile: c.logPath, encoding: .utf8)) ?? "").suffix(3000))
    }

    /// ENOSPC while building the tree is not the package's fault: it stays in the inbox, the
    /// status says why and when the next try is, and once space is back it is applied without
    /// any new event.
    @Test func aFullStoreIsRetriedNotRefused() throws {
        let c = try Client(top: "store = \"storefs\"")
        let storefs = c.t.sub("storefs")
        try #require(Self.mountTmpfs(storefs, size: "1m"), "mount a tmpfs for the store")
        defer { Self.sh(["umount", "-l", storefs]) }
        let p1 = try c.build(1)
        try c.start()
        Self.fill(storefs)
        #expect(try c.sh("cp \(p1) inbox/") == 0)
        #expect(
            waitFor(10) { (statusType(c)["last_error"] as? [String: Any])?["code"] as? String == "io" },
            "status: \(statusType(c)): \(log(c))")
        let err = statusType(c)["last_error"] as? [String: Any] ?? [:]
        #expect((err["reason"] as? String ?? "").contains("will retry in"), "\(err)")
        #expect((statusType(c)["retrying"] as? [String]) == ["virus-defs_1.cpkg"], "\(statusType(c))")
        #expect(c.inbox() == ["virus-defs_1.cpkg"], "the valid package stays in the inbox")
        #expect(c.quarantined().isEmpty, "\(c.quarantined())")
        sleep(3)
        #expect(c.inbox() == ["virus-defs_1.cpkg"] && c.quarantined().isEmpty)
        // Space is back: no event, the retry timer alone applies it.
        try FileManager.default.removeItem(atPath: storefs + "/fill")
        #expect(
            waitFor(70) { c.installed() == 1 && c.inbox().isEmpty },
            "not applied after space came back: \(statusType(c)): \(log(c))")
        #expect(statusType(c)["last_error"] == nil && statusType(c)["retrying"] == nil, "\(statusType(c))")
        #expect(c.quarantined().isEmpty)
        #expect(c.stop() == 0)
    }

    /// A read-only store (EROFS): the same.
    @Test func aReadOnlyStoreIsRetriedNotRefused() throws {
        let c = try Client(top: "store = \"storefs\"")
        let storefs = c.t.sub("storefs")
        try #require(Self.mountTmpfs(storefs, size: "4m"), "mount a tmpfs for the store")
        defer { Self.sh(["umount", "-l", storefs]) }
        let p1 = try c.build(1)
        try c.start()
        try #require(Self.sh(["mount", "-o", "remount,ro", storefs]), "remount read-only")
        #expect(try c.sh("cp \(p1) inbox/") == 0)
        #expect(
            waitFor(10) { (statusType(c)["last_error"] as? [String: Any])?["code"] as? String == "io" },
            "status: \(statusType(c)): \(log(c))")
        sleep(2)
        #expect(
            c.inbox() == ["virus-defs_1.cpkg"] && c.quarantined().isEmpty,
            "inbox \(c.inbox()), quarantine \(c.quarantined())")
        try #require(Self.sh(["mount", "-o", "remount,rw", storefs]), "remount read-write")
        #expect(waitFor(70) { c.installed() == 1 && c.inbox().isEmpty }, "not applied after the remount: \(log(c))")
        #expect(c.quarantined().isEmpty)
        #expect(c.stop() == 0)
    }

    /// The state file system is full when a package is applied: `current` is switched and the
    /// apply command ran, so the package is applied — removed from the inbox, not quarantined —
    /// and once the state can be written again, status.json and history say so (without a
    /// restart and without a new event).
    @Test func aFullStateFileSystemDoesNotUndoAnApply() throws {
        let c = try Client(top: "store = \"store\"\nquarantine = \"quarantine\"")
        let state = c.t.sub("state")
        try #require(Self.mountTmpfs(state, size: "256k"), "mount a tmpfs for the state")
        defer { Self.sh(["umount", "-l", state]) }
        let p1 = try c.build(1)
        let p2 = try c.build(2)
        try c.start()
        #expect(try c.sh("cp \(p1) inbox/") == 0)
        #expect(waitFor(10) { c.installed() == 1 && c.inbox().isEmpty })
        Self.fill(state)
        #expect(try c.sh("cp \(p2) inbox/") == 0)
        #expect(
            waitFor(10) { current(c, store: "store") == 2 && c.inbox().isEmpty },
            "current \(String(describing: current(c, store: "store"))), inbox \(c.inbox()): \(log(c))")
        let q = (try? FileManager.default.contentsOfDirectory(atPath: c.t.sub("quarantine"))) ?? []
        #expect(q.isEmpty, "an applied package was quarantined: \(q)")
        try FileManager.default.removeItem(atPath: state + "/fill")
        #expect(waitFor(70) { c.installed() == 2 }, "status.json not repaired: \(statusType(c)): \(log(c))")
        #expect(
            waitFor(5) { history(c).contains { $0["event"] as? String == "applied" && $0["revision"] as? Int == 2 } },
            "\(history(c))")
        #expect(!history(c).contains { $0["event"] as? String == "refused" }, "\(history(c))")
        #expect(c.stop() == 0)
    }

    func runOnce(_ c: Client, fault: String? = nil) throws -> Programs.Result {
        try Programs.run(
            "courier-inboxd", ["run", "--config", c.t.sub("inboxd.toml"), "--once"],
            env: fault.map { ["COURIER_FAULT": $0] } ?? ["COURIER_FAULT": ""])
    }

    /// Killed once `current` names the new revision but before the state was written: after the
    /// restart, history has an `applied` line for it (once), not only `recovered`.
    @Test(arguments: ["after-switch", "before-state"])
    func anAppliedLineForTheRevisionACrashLeftCurrent(point: String) throws {
        let c = try Client()
        let p1 = try c.build(1)
        let p2 = try c.build(2)
        try FileManager.default.copyItem(atPath: p1, toPath: c.t.sub("inbox/virus-defs_1.cpkg"))
        #expect(try runOnce(c).status == 0)
        try FileManager.default.copyItem(atPath: p2, toPath: c.t.sub("inbox/virus-defs_2.cpkg"))
        let killed = try runOnce(c, fault: point)
        #expect(killed.status == SIGKILL, "not killed at \(point): \(killed.stderr)")
        #expect(current(c) == 2)
        #expect(try runOnce(c).status == 0)
        #expect(try runOnce(c).status == 0)
        let applied = history(c).filter { $0["event"] as? String == "applied" && $0["revision"] as? Int == 2 }
        #expect(applied.count == 1, "\(point): \(history(c))")
        #expect(c.installed() == 2)
    }

    /// Killed after the apply's state write, before retention and the pass's closing status
    /// write; the package already left the inbox (as a kill just after the unlink) and retention
    /// had removed the oldest revision. After a restart with nothing to do, `kept` is what the
    /// store holds and retention has run.
    @Test func keptAndRetentionAreRepairedAtStartUp() throws {
        let c = try Client()  // keep = 2
        var pkgs: [String] = []
        for i in 1...4 { pkgs.append(try c.build(i)) }
        for i in 1...3 {
            try FileManager.default.copyItem(atPath: pkgs[i - 1], toPath: c.t.sub("inbox/virus-defs_\(i).cpkg"))
            #expect(try runOnce(c).status == 0)
        }
        #expect(statusType(c)["kept"] as? [Int] == [1, 2])
        try FileManager.default.copyItem(atPath: pkgs[3], toPath: c.t.sub("inbox/virus-defs_4.cpkg"))
        #expect(try runOnce(c, fault: "before-unlink").status == SIGKILL)
        try FileManager.default.removeItem(atPath: c.t.sub("inbox/virus-defs_4.cpkg"))
        #expect(try runOnce(c).status == 0)
        let revs = try FileManager.default.contentsOfDirectory(atPath: c.t.sub("state/store/virus-defs")).compactMap {
            Int($0)
        }.sorted()
        #expect(revs == [2, 3, 4], "retention re-run at start-up")
        #expect(statusType(c)["kept"] as? [Int] == [2, 3], "\(statusType(c))")

        // Retention ran, but the status was not rewritten: kept names a removed revision.
        try FileManager.default.copyItem(atPath: try c.build(5), toPath: c.t.sub("inbox/virus-defs_5.cpkg"))
        #expect(try runOnce(c, fault: "before-unlink").status == SIGKILL)
        try FileManager.default.removeItem(atPath: c.t.sub("inbox/virus-defs_5.cpkg"))
        try FileManager.default.removeItem(atPath: c.t.sub("state/store/virus-defs/2"))
        try? FileManager.default.removeItem(atPath: c.t.sub("state/store/virus-defs/2.manifest.json"))
        #expect(try runOnce(c).status == 0)
        #expect(statusType(c)["kept"] as? [Int] == [3, 4], "\(statusType(c))")
        #expect(statusType(c)["installed"] as? Int == 5)
    }
}
