import CourierCore
import CourierInbox
import Foundation
import Logging
import Testing

/// The apply pipeline, in process: packages in a real inbox, a real store, real commands.
@Suite(.serialized) struct ProcessorTests {
    final class Client {
        let root: String
        let key = SigningKey()
        var config: InboxConfig

        init(types: String = "") throws {
            root =
                FileManager.default.temporaryDirectory.path + "/courier-proc-\(getpid())-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: root + "/trust", withIntermediateDirectories: true)
            try key.publicKey.fileText.write(toFile: root + "/trust/stage.pub", atomically: true, encoding: .utf8)
            let text = """
                inbox = "inbox"
                state_dir = "state"
                trust = "trust"
                delta_wait = "1s"
                [types.virus-defs]
                keep = 1
                apply_command = "echo $COURIER_TYPE $COURIER_REVISION $COURIER_PREVIOUS_REVISION $COURIER_PATH >> \(root)/hook.log"
                \(types)
                """
            try text.write(toFile: root + "/inboxd.toml", atomically: true, encoding: .utf8)
            config = try InboxConfig.load(root + "/inboxd.toml")
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }

        func upstream(_ rev: UInt64, daily: String) -> String {
            let dir = root + "/upstream/\(rev)"
            try! FileManager.default.createDirectory(atPath: dir + "/db", withIntermediateDirectories: true)
            try! String(repeating: "Sig:0:*:00\n", count: 300).write(
                toFile: dir + "/main.ndb", atomically: true, encoding: .utf8)
            try! daily.write(toFile: dir + "/db/daily.ndb", atomically: true, encoding: .utf8)
            return dir
        }

        /// Builds a package into the outbox and returns its path.
        @discardableResult
        func package(
            _ rev: UInt64, daily: String, base: UInt64? = nil, type: String = "virus-defs", created: Int64? = nil
        ) throws -> String {
            let tree = upstream(rev, daily: daily)
            let out = root + "/outbox"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            var o = PackageBuilder.Options(type: type, revision: rev, keys: [key], limits: Limits())
            o.created = created
            if let b = base {
                let baseFiles = try TreeScanner.scan(root + "/upstream/\(b)")
                let p = out + "/" + Names.deltaPackageName(type: type, revision: rev, base: b)
                try PackageBuilder.buildDelta(
                    baseRevision: b, baseFiles: baseFiles, tree: tree, to: p, options: o,
                    baseTree: root + "/upstream/\(b)")
                return p
            }
            let p = out + "/" + Names.fullPackageName(type: type, revision: rev)
            try PackageBuilder.buildFull(tree: tree, to: p, options: o)
            return p
        }

        func deliver(_ pkg: String) throws {
            try FileManager.default.createDirectory(atPath: root + "/inbox", withIntermediateDirectories: true)
            let dest = root + "/inbox/" + (pkg as NSString).lastPathComponent
            try? FileManager.default.removeItem(atPath: dest)
            try FileManager.default.copyItem(atPath: pkg, toPath: dest)
            // Make it look long closed, as a copy that finished a while ago.
            var times = [timespec(tv_sec: time(nil) - 10, tv_nsec: 0), timespec(tv_sec: time(nil) - 10, tv_nsec: 0)]
            utimensat(AT_FDCWD, dest, &times, 0)
        }

        func processor() throws -> InboxProcessor {
            let p = try InboxProcessor(
                config: config, logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }))
            try p.recover()
            return p
        }

        var current: String { root + "/state/store/virus-defs/current" }
        /// The directory `current` names (FileManager's enumerator does not follow the link).
        var currentTree: String {
            root + "/state/store/virus-defs/"
                + ((try? FileManager.default.destinationOfSymbolicLink(atPath: current)) ?? "none")
        }
        func inbox() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: root + "/inbox")) ?? []).sorted()
        }
        func quarantined() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: root + "/state/quarantine")) ?? []).filter {
                !$0.hasSuffix(".json")
            }.sorted()
        }
        func reason(_ name: String) throws -> [String: Any] {
            let d = try Data(contentsOf: URL(fileURLWithPath: root + "/state/quarantine/\(name).reason.json"))
            return try JSONSerialization.jsonObject(with: d) as! [String: Any]
        }
    }

    func tree(_ dir: String) -> [String: Data] {
        var out: [String: Data] = [:]
        let e = FileManager.default.enumerator(atPath: dir)!
        while let p = e.nextObject() as? String {
            var isDir: ObjCBool = false
            FileManager.default.fileExists(atPath: dir + "/" + p, isDirectory: &isDir)
            if !isDir.boolValue { out[p] = FileManager.default.contents(atPath: dir + "/" + p) }
        }
        return out
    }

    @Test func fullThenDeltaThenDuplicateWithHooksStateAndRetention() throws {
        let c = try Client()
        try c.deliver(c.package(1, daily: "one\n"))
        try c.deliver(c.package(2, daily: "two\n", base: 1))
        let p = try c.processor()
        let r = p.processInbox()
        #expect(r["virus-defs_1.cpkg"] == .applied(1))
        #expect(r["virus-defs_2_from_1.cpkg"] == .applied(2))
        #expect(c.inbox().isEmpty)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: c.current) == "2")
        #expect(tree(c.currentTree) == tree(c.root + "/upstream/2"))
        let hook = try String(contentsOfFile: c.root + "/hook.log", encoding: .utf8).split(separator: "\n")
        #expect(hook.count == 2)
        #expect(hook[1].hasPrefix("virus-defs 2 1 ") && hook[1].hasSuffix("/state/store/virus-defs/2"))
        let s = try #require(p.status.types["virus-defs"])
        #expect(s.installed == 2 && s.previous == 1 && s.kept == [1] && s.pending.isEmpty && s.lastError == nil)
        let onDisk = try String(contentsOfFile: c.root + "/state/status.json", encoding: .utf8)
        #expect(onDisk.contains("\"installed\" : 2"))

        // The same package again: removed from the inbox, not quarantined.
        try c.deliver(c.root + "/outbox/virus-defs_2_from_1.cpkg")
        #expect(p.processInbox()["virus-defs_2_from_1.cpkg"] == .duplicate)
        #expect(c.inbox().isEmpty && c.quarantined().isEmpty)

        // keep = 1: after revision 3, revision 1 is gone, 2 is kept.
        try c.deliver(c.package(3, daily: "three\n", base: 2))
        #expect(p.processInbox()["virus-defs_3_from_2.cpkg"] == .applied(3))
        let revs = try FileManager.default.contentsOfDirectory(atPath: c.root + "/state/store/virus-defs").sorted()
        #expect(revs == ["2", "2.manifest.json", "3", "3.manifest.json", "current"])
        let history = try String(contentsOfFile: c.root + "/state/history.jsonl", encoding: .utf8)
        #expect(history.split(separator: "\n").count == 4)
    }

    @Test func rollbackRefusedAndPinHonoured() throws {
        let c = try Client()
        try c.deliver(c.package(5, daily: "five\n"))
        try c.deliver(c.package(6, daily: "six\n"))
        let p = try c.processor()
        p.processInbox()
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: c.current) == "6")
        try c.deliver(c.root + "/outbox/virus-defs_5.cpkg")
        let r = p.processInbox()
        guard case .refused(let why)? = r["virus-defs_5.cpkg"] else {
            Issue.record("\(r)")
            return
        }
        #expect(why.contains("not newer than the installed 6: rollback refused"))
        #expect(try c.reason("virus-defs_5.cpkg")["code"] as? String == "rollback")

        // A pin names revision 5: now the older package is accepted.
        try p.state.writePins(["virus-defs": 5])
        try c.deliver(c.root + "/outbox/virus-defs_5.cpkg")
        #expect(p.processInbox()["virus-defs_5.cpkg"] == .applied(5))
        #expect(tree(c.currentTree) == tree(c.root + "/upstream/5"))
        // While pinned, a newer revision is refused with a reason that says how to unpin.
        try c.deliver(c.package(7, daily: "seven\n"))
        guard case .refused(let w7)? = p.processInbox()["virus-defs_7.cpkg"] else {
            Issue.record("7 not refused")
            return
        }
        #expect(w7.contains("pinned to revision 5") && w7.contains("unpin"))
    }

    @Test func deltaWithAMissingBaseWaitsThenIsQuarantined() throws {
        let c = try Client()
        try c.package(1, daily: "one\n")
        try c.deliver(c.package(2, daily: "two\n", base: 1))
        let p = try c.processor()
        guard case .waiting? = p.processInbox()["virus-defs_2_from_1.cpkg"] else {
            Issue.record("should wait")
            return
        }
        #expect(p.hasWaiting && p.nextDeadline != nil)
        #expect(c.inbox() == ["virus-defs_2_from_1.cpkg"])
        Thread.sleep(forTimeInterval: 1.1)
        guard case .refused(let why)? = p.processInbox()["virus-defs_2_from_1.cpkg"] else {
            Issue.record("should be refused")
            return
        }
        #expect(why.contains("base revision 1 not installed"))
        #expect(c.quarantined() == ["virus-defs_2_from_1.cpkg"])
        #expect(!p.hasWaiting)
    }

    @Test func aDeltaWhoseBaseArrivesLaterIsApplied() throws {
        let c = try Client()
        let full = try c.package(1, daily: "one\n")
        try c.deliver(c.package(2, daily: "two\n", base: 1))
        let p = try c.processor()
        _ = p.processInbox()
        try c.deliver(full)
        let r = p.processInbox()
        #expect(r["virus-defs_1.cpkg"] == .applied(1) && r["virus-defs_2_from_1.cpkg"] == .applied(2))
    }

    @Test func failingTestCommandKeepsTheOldContent() throws {
        let c = try Client(types: "")
        c.config.types["virus-defs"]?.testCommand = .shell(
            "grep -q bad $COURIER_PATH/db/daily.ndb && { echo 'signature db rejected' >&2; exit 3; } || exit 0")
        try c.deliver(c.package(1, daily: "good\n"))
        let p = try c.processor()
        #expect(p.processInbox()["virus-defs_1.cpkg"] == .applied(1))
        try c.deliver(c.package(2, daily: "bad\n"))
        guard case .refused(let why)? = p.processInbox()["virus-defs_2.cpkg"] else {
            Issue.record("not refused")
            return
        }
        #expect(why.contains("test command exited 3") && why.contains("signature db rejected"))
        #expect(p.status.types["virus-defs"]?.lastError?.package == "virus-defs_2.cpkg")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: c.current) == "1")
        #expect(tree(c.currentTree) == tree(c.root + "/upstream/1"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: c.root + "/state/store/virus-defs").filter {
            $0.contains("tmp") || $0 == "2"
        }
        #expect(leftovers.isEmpty)
        // A later good apply clears the error from the status.
        try c.deliver(c.package(3, daily: "good again\n"))
        #expect(p.processInbox()["virus-defs_3.cpkg"] == .applied(3))
        #expect(p.status.types["virus-defs"]?.lastError == nil)
    }

    @Test func failingApplyCommandSwitchesBack() throws {
        let c = try Client()
        try c.deliver(c.package(1, daily: "one\n"))
        let p = try c.processor()
        p.processInbox()
        c.config.types["virus-defs"]?.applyCommand = .argv(["/bin/sh", "-c", "test $COURIER_REVISION != 2"])
        let p2 = try c.processor()
        try c.deliver(c.package(2, daily: "two\n"))
        guard case .refused(let why)? = p2.processInbox()["virus-defs_2.cpkg"] else {
            Issue.record("not refused")
            return
        }
        #expect(why.contains("apply command exited 1; switched back to 1"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: c.current) == "1")
        #expect(p2.status.types["virus-defs"]?.installed == 1)
    }

    @Test func tamperedUnknownTypeAndExpiredPackagesAreQuarantinedWithReasons() throws {
        let c = try Client()
        let good = try c.package(1, daily: "one\n")
        var data = try Data(contentsOf: URL(fileURLWithPath: good))
        data[data.count - 40] ^= 0xff
        try data.write(to: URL(fileURLWithPath: c.root + "/tampered.cpkg"))
        try FileManager.default.createDirectory(atPath: c.root + "/inbox", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: c.root + "/tampered.cpkg", toPath: c.root + "/inbox/virus-defs_1.cpkg")
        try c.deliver(c.package(3, daily: "x\n", type: "ips-rules"))
        try c.deliver(c.package(4, daily: "old\n", created: Int64(time(nil)) - 40 * 86400))
        let p = try c.processor()
        var times = [timespec(tv_sec: time(nil) - 10, tv_nsec: 0), timespec(tv_sec: time(nil) - 10, tv_nsec: 0)]
        utimensat(AT_FDCWD, c.root + "/inbox/virus-defs_1.cpkg", &times, 0)
        let r = p.processInbox()
        #expect(c.inbox().isEmpty)
        #expect(c.quarantined() == ["ips-rules_3.cpkg", "virus-defs_1.cpkg", "virus-defs_4.cpkg"])
        #expect(
            try c.reason("ips-rules_3.cpkg")["reason"] as! String
                == "content type 'ips-rules' is not configured on this client (add [types.ips-rules] to \(c.root)/inboxd.toml)"
        )
        #expect(try c.reason("virus-defs_4.cpkg")["code"] as? String == "expired")
        let tamperedCode = try c.reason("virus-defs_1.cpkg")["code"] as? String
        #expect(tamperedCode == "malformed" || tamperedCode == "integrity", "\(r)")
        #expect(!FileManager.default.fileExists(atPath: c.current))
    }

    @Test func recoveryRemovesHalfBuiltTreesAndCompletesAnInterruptedSwitch() throws {
        let c = try Client()
        try c.deliver(c.package(1, daily: "one\n"))
        let p = try c.processor()
        p.processInbox()
        // Simulate a crash after the switch to 2, before the state was written.
        let store = c.root + "/state/store/virus-defs"
        try FileManager.default.copyItem(atPath: c.root + "/upstream/1", toPath: store + "/2")
        try FileManager.default.createDirectory(atPath: store + "/3.tmp/half", withIntermediateDirectories: true)
        try FileManager.default.removeItem(atPath: store + "/current")
        try FileManager.default.createSymbolicLink(atPath: store + "/current", withDestinationPath: "2")
        let p2 = try c.processor()
        #expect(p2.status.types["virus-defs"]?.installed == 2)
        #expect(!FileManager.default.fileExists(atPath: store + "/3.tmp"))
        let hook = try String(contentsOfFile: c.root + "/hook.log", encoding: .utf8)
        #expect(hook.contains("virus-defs 2 1 "), "the apply command runs for the revision the crash left current")
    }
}
