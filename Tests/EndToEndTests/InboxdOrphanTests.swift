import CourierCore
import Foundation
import Glibc
import Testing

/// Issue #11.13: a test or apply command must not outlive a SIGKILLed daemon and go on working on
/// a tree the restarted daemon removes.
@Suite(.serialized) struct InboxdOrphanTests {
    static func alive(_ pid: Int32) -> Bool {
        // A zombie is dead for this purpose; /proc/PID/stat's state field says so.
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = s.lastIndex(of: ")")
        else { return false }
        return !s[s.index(after: close)...].hasPrefix(" Z")
    }

    static func pid(_ path: String) -> Int32? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap {
            Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// The test command's shell and the `sleep` it started in the background are both running when
    /// the daemon is SIGKILLed. The shell dies with the daemon (PR_SET_PDEATHSIG); the `sleep`,
    /// reparented to init, is ended by the restarted daemon before recovery, and the package then
    /// applies (the command succeeds the second time).
    @Test func commandsDieWithAKilledDaemon() throws {
        let dir = FileManager.default.temporaryDirectory.path + "/courier-orphan-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try InboxdE2ETests.Client(
            extraTypes: """
                [types.hooked]
                test_timeout = "10m"
                test_command = "if [ -e \(dir)/second ]; then exit 0; fi; touch \(dir)/second; echo $$ > \(dir)/sh.pid; sleep 300 & echo $! > \(dir)/child.pid; wait"
                """)
        let pkg = try c.build(1, type: "hooked")
        try c.start()
        try FileManager.default.copyItem(atPath: pkg, toPath: c.t.sub("inbox/.tmp-x"))
        try FileManager.default.moveItem(atPath: c.t.sub("inbox/.tmp-x"), toPath: c.t.sub("inbox/hooked_1.cpkg"))
        #expect(waitFor(20) { Self.pid(dir + "/child.pid") != nil && Self.pid(dir + "/sh.pid") != nil })
        let shPid = try #require(Self.pid(dir + "/sh.pid"))
        let childPid = try #require(Self.pid(dir + "/child.pid"))
        #expect(Self.alive(shPid) && Self.alive(childPid))

        let d = try #require(c.daemon)
        kill(d.processIdentifier, SIGKILL)
        d.waitUntilExit()
        c.daemon = nil
        #expect(waitFor(5) { !Self.alive(shPid) }, "the test command's shell outlived the SIGKILLed daemon")
        #expect(
            FileManager.default.fileExists(atPath: c.t.sub("state/command.pid")), "no record of the running command")

        try c.start()
        #expect(
            waitFor(10) { !Self.alive(childPid) }, "the restarted daemon did not end the command's orphaned process")
        #expect(waitFor(20) { c.installed("hooked") == 1 }, "the package did not apply after the restart")
        #expect(!FileManager.default.fileExists(atPath: c.t.sub("state/command.pid")))
        let log = (try? String(contentsOfFile: c.logPath, encoding: .utf8)) ?? ""
        #expect(log.contains("ended 1 process(es) of a test or apply command"), "\(log)")
        #expect(c.stop() == 0)
        if Self.alive(childPid) { kill(childPid, SIGKILL) }
    }

    /// A command record from another boot, or naming a group that no longer exists, kills nothing.
    @Test func staleRecordsKillNothing() throws {
        let dir = FileManager.default.temporaryDirectory.path + "/courier-orphan-rec-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A live process group of our own making (bash without job control runs `setsid` in its
        // own group, so setsid does not fork: $! is the sleep, leader of a new group), recorded
        // with another boot id: left alone.
        // (ChildProcess, not Foundation's Process, whose wait also waits for every process that
        // inherited its internal descriptors: here the `sleep`, for 30 s.)
        let out = try ChildProcess.run(
            ["/bin/bash", "-c", "setsid sleep 30 </dev/null >/dev/null 2>&1 & echo $!"],
            environment: ChildProcess.currentEnvironment(), timeout: 10)
        let text = String(decoding: out.output, as: UTF8.self)
        let pid = try #require(Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(pid, SIGKILL) }
        usleep(200_000)
        try "\(pid) 0 not-this-boot\n".write(toFile: dir + "/command.pid", atomically: true, encoding: .utf8)
        let c = try InboxdE2ETests.Client()
        try FileManager.default.createDirectory(atPath: c.t.sub("state"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: dir + "/command.pid", toPath: c.t.sub("state/command.pid"))
        let r = try Programs.run("courier-inboxd", ["run", "--once", "--config", c.t.sub("inboxd.toml")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Self.alive(pid), "a process of another boot's record was killed")
        #expect(
            !FileManager.default.fileExists(atPath: c.t.sub("state/command.pid")), "the stale record was not removed")
    }
}
