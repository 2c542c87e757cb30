import CourierCore
import Foundation
import Testing

@testable import CourierInbox

/// Real inotify on a real directory, with the copiers that deliver packages in the field run as
/// processes. For each: the watcher names exactly the final file, never a temporary name, and
/// never a file that is still being written.
@Suite(.serialized) struct InboxWatcherTests {
    /// Common assertion: after the copier finished, the only `.file` signal is `name`, once, and it
    /// arrived when the file already had its final size.
    func expectExactly(_ name: String, size: Int64, _ collector: Collector, _ copier: String) async {
        let entry = await collector.waitForFile(name)
        #expect(entry != nil, "\(copier): no signal for \(name)")
        #expect(
            entry?.size == size, "\(copier): signalled at size \(String(describing: entry?.size)), final size \(size)")
        await settle()
        #expect(collector.files == [name], "\(copier): signals \(collector.signals)")
    }

    @Test func cpOfALargeFile() async throws {
        let box = InboxSandbox("cp")
        let size = 48 << 20
        let src = box.source("big.cpkg", size: size)
        let (watcher, collector) = try await watchInbox(box)
        defer { watcher.stop() }
        #expect(try await run("/bin/cp", [src, box.inbox + "/virus-defs_20261121001.cpkg"]) == 0)
        await expectExactly("virus-defs_20261121001.cpkg", size: Int64(size), collector, "cp")
    }

    @Test func mvIsARename() async throws {
        let box = InboxSandbox("mv")
        let src = box.source("p.cpkg", size: 100_000)
        let (watcher, collector) = try await watchInbox(box)
        defer { watcher.stop() }
        #expect(try await run("/bin/mv", [src, box.inbox + "/ips-rules_7.cpkg"]) == 0)
        await expectExactly("ips-rules_7.cpkg", size: 100_000, collector, "mv")
    }

    @Test func rsyncTempNameThenRename() async throws {
        let box = InboxSandbox("rsync")
        let src = box.source("p.cpkg", size: 3 << 20)
        // A second, raw inotify on the inbox proves rsync really went through a dot-name, so the
        // absence of that name in the signals is the filter at work, not luck.
        let raw = try Inotify()
        defer { raw.stop() }
        try raw.addWatch(box.inbox, mask: InotifyMask.create | InotifyMask.movedTo | InotifyMask.closeWrite)
        let rawNames = Collected()
        let rawDone = Collected()
        Thread {
            while case .event(let e) = raw.nextEvent(deadlineNanos: nil) { rawNames.add(e.name ?? "?") }
            rawDone.add("end")
        }.start()
        let (watcher, collector) = try await watchInbox(box)
        defer { watcher.stop() }
        #expect(try await run("/usr/bin/rsync", [src, box.inbox + "/virus-defs_9.cpkg"]) == 0)
        await expectExactly("virus-defs_9.cpkg", size: 3 << 20, collector, "rsync")
        #expect(
            await waitUntil(5) { rawNames.all.contains { $0.hasPrefix(".virus-defs_9.cpkg.") } },
            "rsync wrote no temporary name: \(rawNames.all)")
        raw.stop()
        #expect(await waitUntil(5) { rawDone.all == ["end"] })
    }

    @Test func install() async throws {
        let box = InboxSandbox("install")
        let src = box.source("p.cpkg", size: 1 << 20)
        let (watcher, collector) = try await watchInbox(box)
        defer { watcher.stop() }
        #expect(try await run("/usr/bin/install", ["-m", "0644", src, box.inbox + "/yara_3.cpkg"]) == 0)
        await expectExactly("yara_3.cpkg", size: 1 << 20, collector, "install")
    }

    /// Ansible's `copy` module writes `.ansible_tmp<random><name>` in the destination directory
    /// and renames it (module_utils `atomic_move`). Ansible is not installed here, so the same
    /// steps run in a Python process.
    @Test func ansibleStyleTempThenRename() async throws {
        let box = InboxSandbox("ansible")
        let src = box.source("p.cpkg", size: 256 << 10)
        let (watcher, collector) = try await watchInbox(box)
        defer { watcher.stop() }
        let script = """
            import os, shutil, sys, tempfile
            src, dest = sys.argv[1], sys.argv[2]
            fd, tmp = tempfile.mkstemp(prefix='.ansible_tmp', dir=os.path.dirname(dest), suffix=os.path.basename(dest))
            with os.fdopen(fd, 'wb') as out, open(src, 'rb') as inp:
                shutil.copyfileobj(inp, out)
            os.chmod(tmp, 0o644)
            os.rename(tmp, dest)
            """
        #expect(try await run("/usr/bin/python3", ["-c", script, src, box.inbox + "/virus-defs_11.cpkg"]) == 0)
        await expectExactly("virus-defs_11.cpkg", size: 256 << 10, collector, "ansible-style")
    }

    /// A writer that writes five chunks with pauses, through one open descriptor: nothing may be
    /// signalled until it closes, and the signal must find the file complete.
    @Test func slowWriterIsSignalledOnlyAfterClose() async throws {
        let box = InboxSandbox("slow")
        let (watcher, collector) = try await watchInbox(box)
        defer { watcher.stop() }
        let target = box.inbox + "/slow_1.cpkg"
        let writer = try start(
            "/bin/bash",
            [
                "-c", "exec 3>\"$1\"; for i in 1 2 3 4 5; do printf 'chunk-%d\\n' $i >&3; sleep 0.3; done; exec 3>&-",
                "bash", target,
            ])
        // Mid-way: the file exists and has grown, but nothing was signalled (IN_CREATE is not acted on).
        #expect(await waitUntil(10) { (fileSize(target) ?? 0) >= 16 })
        try await Task.sleep(for: .milliseconds(300))
        #expect(writer.isRunning)
        #expect(collector.files.isEmpty, "signalled while still being written: \(collector.signals)")
        #expect(await waitUntil(20) { !writer.isRunning })
        await expectExactly("slow_1.cpkg", size: 40, collector, "slow writer")
        let signalled = try #require(collector.entry(for: "slow_1.cpkg"))
        #expect(signalled.size == 40, "the signal came before the last chunk")
    }

    /// A file created and held open — as a copier does between create and first write — is not
    /// signalled (its IN_CREATE is not acted on), nor after a write; only its close is.
    @Test func createdButNotClosedIsNotSignalled() async throws {
        let box = InboxSandbox("create")
        let (watcher, collector) = try await watchInbox(box)
        defer { watcher.stop() }
        let fd = open(box.inbox + "/held.cpkg", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        try #require(fd >= 0)
        await settle(300)
        #expect(collector.files.isEmpty, "signalled on create: \(collector.signals)")
        #expect(Glibc.write(fd, "partial", 7) == 7)
        await settle(300)
        #expect(collector.files.isEmpty, "signalled an open file: \(collector.signals)")
        close(fd)
        #expect(await collector.waitFor(10) { $0.files == ["held.cpkg"] }, "\(collector.signals)")
        #expect(collector.entries.last?.size == 7)
    }

    @Test func temporaryNamesAndNonPackagesAreIgnored() async throws {
        let box = InboxSandbox("ignore")
        let (watcher, collector) = try await watchInbox(box)
        defer { watcher.stop() }
        for name in [
            ".virus-defs_1.cpkg.Xa81Qz", ".ansible_tmp8c2k1jvirus-defs_1.cpkg", "virus-defs_1.cpkg.partial",
            "virus-defs_1.tmp", "virus-defs_1.cpkg~", ".virus-defs_1.cpkg.swp", "README.txt", "virus-defs_1.cpkg.part",
        ] {
            box.write(name)
        }
        // A directory with a package's name, created and moved in: not a file.
        try FileManager.default.createDirectory(atPath: box.src + "/dir.cpkg", withIntermediateDirectories: false)
        try FileManager.default.moveItem(atPath: box.src + "/dir.cpkg", toPath: box.inbox + "/dir.cpkg")
        // A dot-name renamed to a dot-name (a copier's second step) is still nothing.
        try FileManager.default.moveItem(
            atPath: box.inbox + "/.virus-defs_1.cpkg.Xa81Qz", toPath: box.inbox + "/.virus-defs_1.cpkg")
        box.write("good_1.cpkg")
        _ = await collector.waitForFile("good_1.cpkg")
        await settle()
        #expect(collector.files == ["good_1.cpkg"], "\(collector.signals)")
    }

    /// A thousand packages written by a shell loop as fast as it can: every one is reported, by
    /// its own signal or by a rescan listing if the kernel queue overflowed.
    @Test func burstOfAThousand() async throws {
        let box = InboxSandbox("burst")
        let (watcher, collector) = try await watchInbox(box)
        defer { watcher.stop() }
        let script = "cd \"$1\" && for i in $(seq 1 1000); do printf 'p%d' $i > \"burst_$i.cpkg\"; done"
        #expect(try await run("/bin/bash", ["-c", script, "bash", box.inbox]) == 0)
        let expected = Set((1...1000).map { "burst_\($0).cpkg" })
        let all = await collector.waitFor(30) { expected.isSubset(of: $0.seen) }
        #expect(all, "missing \(expected.subtracting(collector.seen).count) names")
        #expect(collector.seen.isSubset(of: expected))
    }

    /// More events than the kernel queues while the consumer is not reading: the kernel drops
    /// them and says so, the watcher turns that into a rescan, and the listing finds them all.
    @Test(.enabled(if: queuedEventsLimit() <= 65536, "fs.inotify.max_queued_events too large to overflow quickly"))
    func overflowBecomesRescan() async throws {
        let box = InboxSandbox("overflow")
        let watcher = try InboxWatcher(directory: box.inbox)
        defer { watcher.stop() }
        // Take the start-up rescan by hand, so its listing (of an empty inbox) cannot account
        // for the files; then write while nobody reads.
        #expect(
            watcher.nextSignal(deadlineNanos: ConditionLock.monotonicNanos() + 10_000_000_000)
                == .signal(.rescan("start-up")))
        let count = queuedEventsLimit() + 4096
        for i in 1...count { box.write("o_\(i).cpkg") }
        let collector = Collector(watcher, directory: box.inbox)
        let expected = Set((1...count).map { "o_\($0).cpkg" })
        #expect(
            await collector.waitFor(60) { $0.rescans.contains { $0.contains("IN_Q_OVERFLOW") } },
            "rescans: \(collector.rescans)")
        #expect(
            await collector.waitFor(60) { expected.isSubset(of: $0.seen) },
            "missing \(expected.subtracting(collector.seen).count)")
        // Fewer individual signals than files: the rest came from the listing.
        #expect(collector.files.count < count)
    }

    @Test func inboxDeletedAndRecreated() async throws {
        let box = InboxSandbox("recreate")
        let (watcher, collector) = try await watchInbox(box)
        defer { watcher.stop() }
        try FileManager.default.removeItem(atPath: box.inbox)
        await settle(200)
        #expect(watcher.failure == nil)
        try FileManager.default.createDirectory(atPath: box.inbox, withIntermediateDirectories: false)
        #expect(
            await collector.waitFor(10) { $0.rescans.contains("inbox directory reappeared") }, "\(collector.signals)")
        box.write("after_1.cpkg")
        #expect(await collector.waitForFile("after_1.cpkg") != nil)
    }

    /// The inbox renamed away and a new one renamed in (what `mv inbox inbox.old` then an atomic
    /// swap does): the old directory is no longer watched, the new one is.
    @Test func inboxMovedAwayAndReplaced() async throws {
        let box = InboxSandbox("moved")
        let (watcher, collector) = try await watchInbox(box)
        defer { watcher.stop() }
        try FileManager.default.moveItem(atPath: box.inbox, toPath: box.root + "/inbox.old")
        await settle(200)
        box.write("stale_1.cpkg", in: box.root + "/inbox.old")
        try FileManager.default.createDirectory(atPath: box.root + "/inbox.new", withIntermediateDirectories: false)
        box.write("waiting_1.cpkg", in: box.root + "/inbox.new")
        try FileManager.default.moveItem(atPath: box.root + "/inbox.new", toPath: box.inbox)
        #expect(
            await collector.waitFor(10) { $0.rescans.contains("inbox directory reappeared") }, "\(collector.signals)")
        #expect(collector.seen.contains("waiting_1.cpkg"))  // found by the rescan listing
        box.write("fresh_1.cpkg")
        #expect(await collector.waitForFile("fresh_1.cpkg") != nil)
        #expect(!collector.files.contains("stale_1.cpkg"))
    }

    /// With the parent gone too there is nothing left to wait on: the stream ends with a reason.
    @Test func parentGoneEndsTheStreamWithAFailure() async throws {
        let box = InboxSandbox("parent")
        let parent = box.root + "/deep"
        try FileManager.default.createDirectory(atPath: parent + "/inbox", withIntermediateDirectories: true)
        let watcher = try InboxWatcher(directory: parent + "/inbox")
        defer { watcher.stop() }
        let collector = Collector(watcher, directory: parent + "/inbox")
        #expect(await collector.waitFor(10) { !$0.rescans.isEmpty })
        try FileManager.default.removeItem(atPath: parent)
        #expect(await collector.waitFor(10) { $0.finished }, "stream did not end")
        let failure = try #require(watcher.failure)
        #expect(failure.code == .daemon)
        #expect(failure.message.contains("inbox directory is gone"), "\(failure)")
        #expect(await waitUntil(5) { !watcher.isRunning })
    }

    @Test func missingInboxIsAnError() throws {
        let error = #expect(throws: CourierError.self) {
            _ = try InboxWatcher(directory: "/nonexistent/courier-\(UUID())/inbox")
        }
        #expect(error?.code == .daemon)
        #expect(error?.message.contains("does not exist") == true)
    }

    /// stop() ends a stream whose consumer is parked waiting for an event, promptly, and the
    /// reader thread is gone when stop() returns.
    @Test func stopEndsTheStreamAndTheReaderThread() async throws {
        let box = InboxSandbox("stop")
        let (watcher, collector) = try await watchInbox(box)
        await settle(100)  // the consumer is now parked in nextSignal(), the reader in poll()
        #expect(watcher.isRunning)
        let began = ContinuousClock.now
        watcher.stop()
        #expect(!watcher.isRunning, "reader thread still running after stop()")
        #expect(await collector.waitFor(5) { $0.finished }, "stream did not end")
        #expect(ContinuousClock.now - began < .seconds(2))
        #expect(watcher.failure == nil)
        watcher.stop()  // idempotent
        // After stop the inbox can change freely; nothing more is delivered.
        box.write("late_1.cpkg")
        await settle(100)
        #expect(collector.files.isEmpty)
    }

    /// Idle costs nothing: over a second and a half with nothing arriving, the reader thread is
    /// not scheduled once (no voluntary or involuntary context switch, no CPU tick) — it sleeps in
    /// poll() with no timeout.
    @Test func idleReaderIsNeverWoken() async throws {
        let box = InboxSandbox("idle")
        let (watcher, _) = try await watchInbox(box)
        defer { watcher.stop() }
        let tid = try #require(watcher.readerThreadID)
        #expect(threadStatus(tid, "Name") == "courier-inotify")
        await settle(200)
        let before = try #require(threadCounters(tid))
        try await Task.sleep(for: .milliseconds(1500))
        let after = try #require(threadCounters(tid))
        #expect(after == before, "reader woke while idle: \(before) -> \(after)")
        // And it still works after the quiet period.
        box.write("wake_1.cpkg")
        let woke = await waitUntil(5) { (threadCounters(tid)?.switches ?? 0) > before.switches }
        #expect(woke, "reader did not wake for a new file")
    }

    /// A timed wait with nothing arriving returns `.timeout` at its deadline, not before and not
    /// much later, and leaves the watcher working; a cancelled consumer leaves it working too.
    @Test func timedWaitReturnsAtTheDeadline() async throws {
        let box = InboxSandbox("deadline")
        let watcher = try InboxWatcher(directory: box.inbox)
        defer { watcher.stop() }
        #expect(
            watcher.nextSignal(deadlineNanos: ConditionLock.monotonicNanos() + 5_000_000_000)
                == .signal(.rescan("start-up")))
        let began = ConditionLock.monotonicNanos()
        #expect(watcher.nextSignal(deadlineNanos: began + 300_000_000) == .timeout)
        let waited = Double(ConditionLock.monotonicNanos() - began) / 1e9
        #expect(waited >= 0.29 && waited < 2, "waited \(waited) s for a 0.3 s deadline")
        #expect(watcher.nextSignal(deadlineNanos: 0) == .timeout)  // a past deadline: no wait at all
        let collector = Collector(watcher, directory: box.inbox)
        collector.cancel()
        #expect(await collector.waitFor(5) { $0.finished })
        #expect(watcher.isRunning)
        box.write("after_1.cpkg")
        // Its creation first (IN_CREATE: taken only when no writer holds it), then its close.
        #expect(
            watcher.nextSignal(deadlineNanos: ConditionLock.monotonicNanos() + 5_000_000_000)
                == .signal(.created("after_1.cpkg")))
        #expect(
            watcher.nextSignal(deadlineNanos: ConditionLock.monotonicNanos() + 5_000_000_000)
                == .signal(.file("after_1.cpkg")))
    }

    @Test func inotifyEndsOnStop() async throws {
        let inotify = try Inotify()
        let box = InboxSandbox("raw")
        try inotify.addWatch(box.inbox, mask: InotifyMask.closeWrite)
        box.write("a.cpkg")
        guard case .event(let first) = inotify.nextEvent(deadlineNanos: ConditionLock.monotonicNanos() + 5_000_000_000)
        else {
            Issue.record("no event for a.cpkg")
            return
        }
        #expect(first.name == "a.cpkg")
        #expect(first.has(InotifyMask.closeWrite))
        inotify.stop()
        #expect(!inotify.isReaderRunning)
        #expect(inotify.nextEvent(deadlineNanos: nil) == .ended)
        #expect(throws: CourierError.self) { try inotify.addWatch(box.inbox, mask: InotifyMask.closeWrite) }
    }

    /// Dropping the last reference stops the reader thread (deinit) instead of leaking it.
    @Test func deinitStopsTheReader() async throws {
        let box = InboxSandbox("deinit")
        var inotify: Inotify? = try Inotify()
        try inotify!.addWatch(box.inbox, mask: InotifyMask.closeWrite)
        let tid = try #require(inotify!.readerThreadID)
        #expect(threadStatus(tid, "Name") == "courier-inotify")
        inotify = nil
        #expect(
            await waitUntil(5) { !FileManager.default.fileExists(atPath: "/proc/self/task/\(tid)") },
            "reader thread \(tid) still exists after the last reference went")
    }
}

/// fs.inotify.max_queued_events on this machine (16384 by default).
func queuedEventsLimit() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/sys/fs/inotify/max_queued_events", encoding: .utf8),
        let v = Int(s.trimmingCharacters(in: .whitespacesAndNewlines))
    else { return 16384 }
    return v
}

/// A thread-safe list of strings.
final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.withLock { items.append(s) } }
    var all: [String] { lock.withLock { items } }
}

/// A line of /proc/self/task/<tid>/status, e.g. "Name" or "voluntary_ctxt_switches".
func threadStatus(_ tid: Int32, _ key: String) -> String? {
    guard let text = try? String(contentsOfFile: "/proc/self/task/\(tid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
        return line.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces)
    }
    return nil
}

/// Context switches and CPU ticks (utime + stime) of one thread of this process.
struct ThreadCounters: Equatable {
    var switches: Int
    var ticks: Int
}

func threadCounters(_ tid: Int32) -> ThreadCounters? {
    guard let v = threadStatus(tid, "voluntary_ctxt_switches").flatMap({ Int($0) }),
        let n = threadStatus(tid, "nonvoluntary_ctxt_switches").flatMap({ Int($0) }),
        let stat = try? String(contentsOfFile: "/proc/self/task/\(tid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let u = Int(fields[11]), let s = Int(fields[12]) else { return nil }
    return ThreadCounters(switches: v + n, ticks: u + s)
}
