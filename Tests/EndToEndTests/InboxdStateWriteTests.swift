import Foundation
import Glibc
import Testing

/// No swallowed state failures in the daemon (issue #17, item 3), against the real daemon on a
/// small tmpfs state directory (as root): a status.json write that fails is logged naming the
/// file and why, and repaired on a later pass once the cause is gone — without a restart and
/// without a new event — with what the failed write would have said; a pass whose state lock
/// cannot be taken is logged and run again; `--once` says in its exit status that the state
/// could not be written.
@Suite(.serialized) struct InboxdStateWriteTests {
    typealias Client = InboxdE2ETests.Client
    typealias Repair = InboxdStateRepairTests

    static let top = "store = \"store\"\nquarantine = \"quarantine\""

    /// The whole log (these tests look for lines written well before the end).
    func log(_ c: Client) -> String { (try? String(contentsOfFile: c.logPath, encoding: .utf8)) ?? "" }

    func lastError(_ c: Client) -> [String: Any]? { Repair().statusType(c)["last_error"] as? [String: Any] }

    func quarantined(_ c: Client) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: c.t.sub("quarantine"))) ?? []).filter {
            !$0.hasSuffix(".json")
        }
    }

    /// A package refused while the state file system is full (an older revision: a rollback,
    /// recorded as the type's `last_error`): the refusal cannot be written to status.json. The
    /// log names status.json and ENOSPC; once space is back, the repair pass writes the refusal
    /// kept in memory — not the stale file's view, which has none — and says the state is
    /// written again.
    @Test func aFailedStatusWriteIsLoggedAndRepairedOnALaterPass() throws {
        let c = try Client(top: Self.top)
        let state = c.t.sub("state")
        try #require(Repair.mountTmpfs(state, size: "256k"), "mount a tmpfs for the state")
        defer { Repair.sh(["umount", "-l", state]) }
        let p1 = try c.build(1)
        let p2 = try c.build(2)
        try c.start()
        #expect(try c.sh("cp \(p2) inbox/") == 0)
        #expect(waitFor(10) { c.installed() == 2 && c.inbox().isEmpty }, "\(log(c))")
        #expect(lastError(c) == nil)
        Repair.fill(state)
        #expect(try c.sh("cp \(p1) inbox/") == 0)
        #expect(waitFor(10) { quarantined(c) == ["virus-defs_1.cpkg"] }, "\(quarantined(c)): \(log(c))")
        #expect(
            waitFor(10) {
                log(c).split(separator: "\n").contains {
                    $0.contains("could not write ") && $0.contains("state/status.json")
                        && $0.contains("No space left on device")
                }
            }, "no log line naming status.json and the reason: \(log(c))")
        #expect(lastError(c) == nil, "status.json was written on a full file system?")
        try FileManager.default.removeItem(atPath: state + "/fill")
        #expect(
            waitFor(70) { lastError(c)?["package"] as? String == "virus-defs_1.cpkg" },
            "status.json not repaired with the refusal: \(Repair().statusType(c)): \(log(c))")
        #expect(lastError(c)?["code"] as? String == "rollback", "\(String(describing: lastError(c)))")
        #expect(c.installed() == 2)
        #expect(log(c).contains("state files written again"), "\(log(c))")
        #expect(c.stop() == 0)
    }

    /// The state directory read-only: the state lock cannot be taken (opening it for writing
    /// fails), so the pass does nothing — logged, naming the lock file and why. Once the file
    /// system is writable again the owed pass scans the inbox and applies the package, without
    /// a new event.
    @Test func aPassWhoseLockCannotBeTakenIsLoggedAndRunAgain() throws {
        let c = try Client(top: Self.top)
        let state = c.t.sub("state")
        try #require(Repair.mountTmpfs(state, size: "1m"), "mount a tmpfs for the state")
        defer { Repair.sh(["umount", "-l", state]) }
        let p1 = try c.build(1)
        let p2 = try c.build(2)
        try c.start()
        #expect(try c.sh("cp \(p1) inbox/") == 0)
        #expect(waitFor(10) { c.installed() == 1 && c.inbox().isEmpty }, "\(log(c))")
        try #require(Repair.sh(["mount", "-o", "remount,ro", state]), "remount the state read-only")
        #expect(try c.sh("cp \(p2) inbox/") == 0)
        #expect(
            waitFor(10) {
                log(c).split(separator: "\n").contains {
                    $0.contains("could not take the state lock") && $0.contains("state/lock")
                        && $0.contains("Read-only file system")
                }
            }, "no log line naming the lock and the reason: \(log(c))")
        sleep(1)
        #expect(Repair().current(c, store: "store") == 1 && c.inbox() == ["virus-defs_2.cpkg"], "\(log(c))")
        try #require(Repair.sh(["mount", "-o", "remount,rw", state]), "remount the state read-write")
        #expect(
            waitFor(70) { c.installed() == 2 && c.inbox().isEmpty },
            "the owed pass did not apply the package: \(log(c))")
        #expect(Repair().current(c, store: "store") == 2)
        #expect(c.stop() == 0)
    }

    /// `--once` has no later pass to repair the state: a status that could not be written is an
    /// error (exit 12, naming status.json and why), though the package is applied; the next run
    /// with space writes it.
    @Test func onceReportsAStateItCouldNotWrite() throws {
        let c = try Client(top: Self.top)
        let state = c.t.sub("state")
        try #require(Repair.mountTmpfs(state, size: "256k"), "mount a tmpfs for the state")
        defer { Repair.sh(["umount", "-l", state]) }
        try FileManager.default.copyItem(atPath: try c.build(1), toPath: c.t.sub("inbox/virus-defs_1.cpkg"))
        #expect(try Repair().runOnce(c).status == 0)
        Repair.fill(state)
        try FileManager.default.copyItem(atPath: try c.build(2), toPath: c.t.sub("inbox/virus-defs_2.cpkg"))
        let r = try Repair().runOnce(c)
        #expect(r.status == 12, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("state/status.json") && r.stderr.contains("No space left on device"), "\(r.stderr)")
        #expect(Repair().current(c, store: "store") == 2 && c.inbox().isEmpty)
        #expect(c.installed() == 1, "the stale status")
        try FileManager.default.removeItem(atPath: state + "/fill")
        let again = try Repair().runOnce(c)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(c.installed() == 2)
    }
}
