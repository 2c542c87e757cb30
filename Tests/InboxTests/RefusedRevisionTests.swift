import CourierCore
import Foundation
import Testing

@testable import CourierInbox

/// Issue #16.3–5 on the client, in process with real packages, a real store and real commands:
/// refused revisions recorded in status.json and cleared by a newer apply, a refused revision
/// tried again when it arrives again, the quarantine kept within its caps, on_refused and
/// on_error hooks with their environment.
@Suite(.serialized) struct RefusedRevisionTests {
    typealias Client = ProcessorTests.Client

    /// A directory outside the client for the hooks' output (the client's root is made in its init).
    final class Scratch {
        let path =
            FileManager.default.temporaryDirectory.path + "/courier-hooks-\(getpid())-\(UUID().uuidString.prefix(8))"
        init() { try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        /// The COURIER_* variables a hook wrote with `env > file`, one run per file.
        func env(_ name: String) -> [String: String] {
            guard let text = try? String(contentsOfFile: path + "/" + name, encoding: .utf8) else { return [:] }
            var out: [String: String] = [:]
            for line in text.split(separator: "\n") where line.hasPrefix("COURIER_") {
                let kv = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                out[String(kv[0])] = kv.count > 1 ? String(kv[1]) : ""
            }
            return out
        }
        func lines(_ name: String) -> [String] {
            ((try? String(contentsOfFile: path + "/" + name, encoding: .utf8)) ?? "").split(separator: "\n").map(
                String.init)
        }
    }

    @Test func refusedRevisionIsRecordedRetriedAndClearedWithHook() throws {
        let x = Scratch()
        // Revision 2's content fails the test command; every refusal runs on_refused.
        let c = try Client(
            types: """
                test_command = "grep -qv bad $COURIER_PATH/db/daily.ndb"
                on_refused = "env > \(x.path)/refused.env; echo $COURIER_REVISION >> \(x.path)/refused.log"
                """)
        try c.deliver(c.package(1, daily: "one\n"))
        let p = try c.processor()
        #expect(p.processInbox()["virus-defs_1.cpkg"] == .applied(1))
        try c.deliver(c.package(2, daily: "bad\n"))
        guard case .refused(let why)? = p.processInbox()["virus-defs_2.cpkg"] else {
            Issue.record("not refused")
            return
        }
        #expect(why.contains("test command exited 1"))
        let r = try #require(p.status.types["virus-defs"]?.refused)
        #expect(
            r.map(\.revision) == [2] && r[0].code == "apply-failed" && r[0].package == "virus-defs_2.cpkg"
                && r[0].reason == why)
        // In status.json on disk, where push and select read it.
        let onDisk = try #require(try ClientStatus.load(c.root + "/state/status.json"))
        #expect(onDisk.types["virus-defs"]?.refused?.map(\.revision) == [2])
        // The hook saw what happened.
        let env = x.env("refused.env")
        #expect(
            env["COURIER_EVENT"] == "refused" && env["COURIER_TYPE"] == "virus-defs" && env["COURIER_REVISION"] == "2")
        #expect(env["COURIER_CODE"] == "apply-failed" && env["COURIER_PACKAGE"] == "virus-defs_2.cpkg")
        #expect(env["COURIER_REASON"] == why && env["COURIER_INSTALLED_REVISION"] == "1")
        #expect(env["COURIER_PATH"] == c.root + "/state/quarantine/virus-defs_2.cpkg")
        #expect(FileManager.default.fileExists(atPath: env["COURIER_PATH"] ?? "/nonexistent"))

        // Revision 2 arrives again (forced by a sender): tried again, not dropped — refused again.
        try c.deliver(c.package(2, daily: "bad\n"))
        guard case .refused? = p.processInbox()["virus-defs_2.cpkg"] else {
            Issue.record("not tried again")
            return
        }
        #expect(x.lines("refused.log") == ["2", "2"])
        #expect(p.status.types["virus-defs"]?.refused?.count == 1)

        // A wrong-type or unverifiable file records no refused revision (no trusted revision).
        FileManager.default.createFile(
            atPath: c.root + "/outbox/virus-defs_7.cpkg", contents: Data("not a package".utf8))
        try c.deliver(c.root + "/outbox/virus-defs_7.cpkg")
        guard case .refused? = p.processInbox()["virus-defs_7.cpkg"] else {
            Issue.record("garbage not refused")
            return
        }
        #expect(p.status.types["virus-defs"]?.refused?.map(\.revision) == [2])
        // Its hook ran with the type its name claims, and no revision.
        #expect(x.env("refused.env")["COURIER_REVISION"] == "" && x.env("refused.env")["COURIER_CODE"] == "malformed")

        // Revision 3 applies and clears the older refusal.
        try c.deliver(c.package(3, daily: "three\n"))
        #expect(p.processInbox()["virus-defs_3.cpkg"] == .applied(3))
        #expect(p.status.types["virus-defs"]?.refused == nil)
        #expect(try String(contentsOfFile: c.root + "/state/status.json", encoding: .utf8).contains("refused") == false)
    }

    /// A delta refused for its base (not the revision's fault) is not recorded; its full package applies.
    @Test func deltaTroubleIsNotARefusedRevision() throws {
        let c = try Client()
        try c.deliver(c.package(1, daily: "one\n"))
        let p = try c.processor()
        p.processInbox()
        // The installed tree drifts: a file the delta keeps from its base no longer matches.
        try "drifted\n".write(toFile: c.currentTree + "/main.ndb", atomically: false, encoding: .utf8)
        try c.deliver(c.package(2, daily: "two\n", base: 1))
        let o = p.processInbox()["virus-defs_2_from_1.cpkg"]
        guard case .refused? = o else {
            Issue.record("delta not refused: \(String(describing: o))")
            return
        }
        #expect(p.status.types["virus-defs"]?.lastError != nil)
        #expect(p.status.types["virus-defs"]?.refused == nil)
    }

    /// An error that is not a `CourierError` (a bug's, the machine's) while a verified package is
    /// applied: quarantined with its cause in the reason, but the revision is not recorded as
    /// refused — a sender would otherwise skip it until `--force`. A `CourierError` from the
    /// same step (the package's own failure) still is.
    @Test func unexpectedApplyErrorIsNotARefusedRevision() throws {
        struct Unexpected: Error, CustomStringConvertible { var description: String { "bus\u{1b}[2J glitch" } }
        let c = try Client()
        let p = try c.processor()
        try c.deliver(c.package(4, daily: "four\n"))
        guard case .next(let c4) = p.read("virus-defs_4.cpkg") else {
            Issue.record("not read")
            return
        }
        guard case .refused(let why) = p.failedApplying(c4, Unexpected()) else {
            Issue.record("not refused")
            return
        }
        #expect(
            why.contains("unexpected error while applying revision 4") && why.contains("glitch")
                && !why.contains("\u{1b}"))
        #expect(c.quarantined() == ["virus-defs_4.cpkg"])
        #expect(p.status.types["virus-defs"]?.lastError?.code == "apply-failed")
        #expect(p.status.types["virus-defs"]?.refused == nil)

        // The package's own failure, same step: recorded.
        try c.deliver(c.package(5, daily: "five\n"))
        guard case .next(let c5) = p.read("virus-defs_5.cpkg") else {
            Issue.record("not read")
            return
        }
        guard case .refused = p.failedApplying(c5, CourierError(.applyFailed, "apply command exited 1")) else {
            Issue.record("not refused")
            return
        }
        #expect(p.status.types["virus-defs"]?.refused?.map(\.revision) == [5])
    }

    @Test func hookFailureChangesNothingAndOnErrorRunsWhenContentIsKept() throws {
        let x = Scratch()
        let c = try Client(
            types: """
                rollback_on_apply_failure = false
                on_refused = "echo hook-ran >> \(x.path)/refused.log; exit 3"
                on_error = "env > \(x.path)/error.env; sleep 30"
                hook_timeout = "1s"
                """)
        // Overrides the client's apply command: this one fails for revision 2.
        c.config.types["virus-defs"]!.applyCommand = .shell("test $COURIER_REVISION != 2")
        try c.deliver(c.package(1, daily: "one\n"))
        let p = try c.processor()
        #expect(p.processInbox()["virus-defs_1.cpkg"] == .applied(1))
        try c.deliver(c.package(2, daily: "two\n"))
        let t0 = Date()
        // Applied (content kept) although the apply command failed and the hook timed out.
        #expect(p.processInbox()["virus-defs_2.cpkg"] == .applied(2))
        let took = Date().timeIntervalSince(t0)
        #expect(took < 10, "the hook's 1 s timeout was not applied (\(took) s)")
        let env = x.env("error.env")
        #expect(
            env["COURIER_EVENT"] == "error" && env["COURIER_CODE"] == "apply-failed" && env["COURIER_REVISION"] == "2")
        #expect((env["COURIER_REASON"] ?? "").contains("content kept"))
        #expect(
            p.status.types["virus-defs"]?.installed == 2
                && p.status.types["virus-defs"]?.lastError?.code == "apply-failed")
        // A rollback is refused, the failing hook runs and the outcome is still the refusal.
        try c.deliver(c.package(1, daily: "one\n"))
        guard case .refused? = p.processInbox()["virus-defs_1.cpkg"] else {
            Issue.record("rollback not refused")
            return
        }
        #expect(x.lines("refused.log") == ["hook-ran"])
        #expect(c.quarantined() == ["virus-defs_1.cpkg"])
        // A rollback is decided by the rule each time: not a refused revision.
        #expect(p.status.types["virus-defs"]?.refused == nil)
    }

    /// A transient error (here the disk-full error the apply would throw) runs on_error once
    /// for the package, not at every backoff step, and leaves it in the inbox.
    @Test func onErrorRunsOnceForATransientError() throws {
        let x = Scratch()
        let c = try Client(
            types:
                "on_error = \"echo $COURIER_EVENT $COURIER_CODE $COURIER_PACKAGE $COURIER_REVISION >> \(x.path)/error.log\""
        )
        let pkg = try c.package(5, daily: "five\n")
        try c.deliver(pkg)
        let p = try c.processor()
        let path = c.root + "/inbox/virus-defs_5.cpkg"
        for _ in 0..<3 {
            guard
                case .retrying = p.retryLater(
                    path, CourierError.io("write", path: path, errno: .noSpace), type: "virus-defs", revision: 5)
            else {
                Issue.record("not retrying")
                return
            }
        }
        #expect(x.lines("error.log") == ["error io virus-defs_5.cpkg 5"])
        #expect(c.inbox() == ["virus-defs_5.cpkg"])
    }

    /// The must-show: 100 refusals of real packages, and the quarantine stays within its caps,
    /// the newest kept, evictions counted in status.json.
    @Test func quarantineStaysWithinItsCapsAfterAHundredRefusals() throws {
        let c = try Client()
        c.config.quarantineCaps.maxFiles = 10
        try c.deliver(c.package(1000, daily: "installed\n"))
        let p = try c.processor()
        #expect(p.processInbox()["virus-defs_1000.cpkg"] == .applied(1000))
        // 100 older revisions: each a rollback, refused and quarantined, in four passes.
        for batch in 0..<4 {
            for rev in UInt64(batch * 25 + 1)...UInt64(batch * 25 + 25) {
                try c.deliver(c.package(rev, daily: "r\(rev)\n"))
            }
            let r = p.processInbox()
            #expect(
                r.values.filter {
                    if case .refused = $0 { return true }
                    return false
                }.count == 25)
            let q = try FileManager.default.contentsOfDirectory(atPath: c.root + "/state/quarantine")
            #expect(q.filter { !$0.hasSuffix(".reason.json") && !$0.hasPrefix(".") }.count <= 10)
        }
        #expect(c.quarantined() == (91...100).map { "virus-defs_\($0).cpkg" }.sorted())
        let all = try FileManager.default.contentsOfDirectory(atPath: c.root + "/state/quarantine").filter {
            !$0.hasPrefix(".")
        }
        #expect(all.count == 20, "each package with its reason file, nothing else: \(all.sorted())")
        let onDisk = try #require(try ClientStatus.load(c.root + "/state/status.json"))
        #expect(onDisk.quarantine?.evicted == 90 && onDisk.quarantine?.files == 10)
        #expect((onDisk.quarantine?.bytes ?? 0) > 0)
    }

    /// Bytes and age, on files of chosen sizes and times.
    @Test func quarantineBytesAndAgeCaps() throws {
        let x = Scratch()
        var q = Quarantine(dir: x.path + "/q")
        q.caps.maxBytes = 3 << 20 + 64 << 10  // 3 MiB of packages, and room for their reason files
        func put(_ name: String, mib: Int) throws {
            let src = x.path + "/" + name
            FileManager.default.createFile(atPath: src, contents: Data(count: mib << 20))
            try q.put(src, code: .applyFailed, reason: "test", type: "virus-defs", revision: 1)
        }
        try put("a.cpkg", mib: 1)
        try put("b.cpkg", mib: 1)
        #expect(try q.enforce().evicted.isEmpty)
        try put("c.cpkg", mib: 2)
        let r = try q.enforce()
        #expect(r.evicted == ["a.cpkg"] && r.files == 2)
        #expect(!FileManager.default.fileExists(atPath: x.path + "/q/a.cpkg.reason.json"))
        // One entry larger than the cap alone: the newest is kept, the rest go.
        try put("d.cpkg", mib: 4)
        #expect(try q.enforce().evicted == ["b.cpkg", "c.cpkg"])
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: x.path + "/q").sorted() == [
                "d.cpkg", "d.cpkg.reason.json",
            ])
        // Past max_age, even the newest goes.
        q.caps.maxAge = 3600
        #expect(try q.enforce(now: Int64(time(nil)) + 3599).evicted.isEmpty)
        #expect(try q.enforce(now: Int64(time(nil)) + 3700).evicted == ["d.cpkg"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: x.path + "/q").isEmpty)
    }

    /// A refused entry can be a directory (a `.courier` directory dropped in the inbox is
    /// quarantined as it is): evicted whole, without following a symlink inside it; and an entry
    /// that cannot be removed is skipped, so newer ones are still evicted.
    @Test func directoriesAreEvictedAndAStuckEntryDoesNotBlockTheRest() throws {
        let x = Scratch()
        var q = Quarantine(dir: x.path + "/q")
        q.caps.maxFiles = 1
        let outside = x.path + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: outside + "/keep", contents: Data("keep".utf8))
        let dir = x.path + "/x.courier"
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/sub/f", contents: Data("f".utf8))
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: outside)
        try q.put(dir, code: .malformed, reason: "a directory", type: nil, revision: nil)
        let pkg = x.path + "/b.cpkg"
        FileManager.default.createFile(atPath: pkg, contents: Data(count: 10))
        try q.put(pkg, code: .applyFailed, reason: "test", type: "virus-defs", revision: 2)
        let r = try q.enforce()
        #expect(r.evicted == ["x.courier"] && r.failed.isEmpty && r.files == 1)
        #expect(!FileManager.default.fileExists(atPath: x.path + "/q/x.courier"))
        #expect(FileManager.default.fileExists(atPath: outside + "/keep"), "eviction followed a symlink")

        // A stuck entry — a mount point (EBUSY) as root, a read-only directory otherwise — is
        // skipped and reported, and the next one is evicted instead.
        let stuck = x.path + "/s.courier"
        try FileManager.default.createDirectory(atPath: stuck, withIntermediateDirectories: true)
        try q.put(stuck, code: .malformed, reason: "stuck", type: nil, revision: nil)
        let inQ = x.path + "/q/s.courier"
        if getuid() == 0 {
            #expect(mount("tmpfs", inQ, "tmpfs", 0, "size=1m") == 0, "mount: \(errno)")
        } else {
            FileManager.default.createFile(atPath: inQ + "/f", contents: Data("f".utf8))
            #expect(chmod(inQ, 0o555) == 0)
        }
        defer { if getuid() == 0 { _ = umount(inQ) } else { _ = chmod(inQ, 0o755) } }
        let c = x.path + "/c.cpkg"
        FileManager.default.createFile(atPath: c, contents: Data(count: 10))
        try q.put(c, code: .applyFailed, reason: "test", type: "virus-defs", revision: 3)
        let r2 = try q.enforce()
        #expect(r2.failed.map(\.0) == ["s.courier"] && r2.evicted == ["b.cpkg"], "\(r2)")
        #expect(r2.files == 2)  // the stuck entry still counts: it is still there
    }

    @Test func configKeys() throws {
        let text = """
            inbox = "/i"
            trust = "/t"
            quarantine_max_files = 7
            quarantine_max_bytes = "5M"
            quarantine_max_age = "2d"
            [types.virus-defs]
            on_refused = ["/usr/bin/logger", "refused $COURIER_REVISION"]
            on_error = "echo $COURIER_CODE"
            hook_timeout = "10s"
            """
        let c = try InboxConfig.parse(text, path: "inboxd.toml")
        #expect(
            c.quarantineCaps.maxFiles == 7 && c.quarantineCaps.maxBytes == 5 << 20
                && c.quarantineCaps.maxAge == 2 * 86400)
        let t = try #require(c.types["virus-defs"])
        #expect(
            t.onRefused == .argv(["/usr/bin/logger", "refused $COURIER_REVISION"])
                && t.onError == .shell("echo $COURIER_CODE") && t.hookTimeout == 10)
        // Defaults: bounded.
        let d = try InboxConfig.parse("inbox = \"/i\"\ntrust = \"/t\"\n", path: "inboxd.toml")
        #expect(
            d.quarantineCaps == Quarantine.Caps() && d.quarantineCaps.maxFiles == 100
                && d.quarantineCaps.maxBytes == 1 << 30)
        // The shipped example, with the new keys, parses.
        let example =
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path + "/scripts/examples/inboxd.toml"
        let e = try InboxConfig.load(example)
        #expect(
            e.quarantineCaps.maxFiles == 100 && e.types["virus-defs"]?.onRefused != nil
                && e.types["virus-defs"]?.hookTimeout == 30)
        for bad in ["quarantine_max_files = 0", "quarantine_max_bytes = \"1K\"", "quarantine_max_age = 5"] {
            #expect(throws: CourierError.self) {
                try InboxConfig.parse("inbox = \"/i\"\ntrust = \"/t\"\n\(bad)\n", path: "inboxd.toml")
            }
        }
    }
}
