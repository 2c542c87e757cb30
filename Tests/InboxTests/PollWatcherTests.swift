import CourierCore
import Foundation
import Testing

@testable import CourierInbox

/// The `--poll` fallback: a name is reported once its size, mtime and inode held still across two
/// consecutive listings, and once per version of the file.
@Suite(.serialized) struct PollWatcherTests {
    typealias Obs = PollWatcher.Observation
    func obs(_ size: Int64, _ mtime: Int = 100, inode: UInt64 = 1) -> Obs {
        Obs(device: 1, inode: inode, size: size, mtimeSeconds: mtime, mtimeNanos: 0)
    }

    @Test func stabilityRule() {
        // First sight: nothing.
        var r = PollWatcher.stable(previous: [:], current: ["a.cpkg": obs(10)], reported: [:])
        #expect(r.report.isEmpty)
        // Grew: nothing.
        r = PollWatcher.stable(previous: ["a.cpkg": obs(10)], current: ["a.cpkg": obs(20, 101)], reported: r.reported)
        #expect(r.report.isEmpty)
        // Same twice: reported.
        r = PollWatcher.stable(
            previous: ["a.cpkg": obs(20, 101)], current: ["a.cpkg": obs(20, 101)], reported: r.reported)
        #expect(r.report == ["a.cpkg"])
        // Still the same: not again.
        r = PollWatcher.stable(
            previous: ["a.cpkg": obs(20, 101)], current: ["a.cpkg": obs(20, 101)], reported: r.reported)
        #expect(r.report.isEmpty)
        // Replaced by a rename with equal size and mtime (rsync -t): a new inode is a new file.
        r = PollWatcher.stable(
            previous: ["a.cpkg": obs(20, 101)], current: ["a.cpkg": obs(20, 101, inode: 2)], reported: r.reported)
        #expect(r.report.isEmpty)
        r = PollWatcher.stable(
            previous: ["a.cpkg": obs(20, 101, inode: 2)], current: ["a.cpkg": obs(20, 101, inode: 2)],
            reported: r.reported)
        #expect(r.report == ["a.cpkg"])
        // Gone: forgotten, so the same version coming back is reported again.
        r = PollWatcher.stable(previous: ["a.cpkg": obs(20, 101, inode: 2)], current: [:], reported: r.reported)
        #expect(r.reported.isEmpty)
    }

    /// A writer appending a chunk every 100 ms for about 1.5 s, polled every 500 ms: never
    /// reported while growing, reported once after it stopped, at its final size.
    @Test func reportsOnlyAfterTheFileStoppedGrowing() async throws {
        let box = InboxSandbox("poll-slow")
        let watcher = try PollWatcher(directory: box.inbox, period: .milliseconds(500))
        defer { watcher.stop() }
        let collector = Collector(watcher, directory: box.inbox)
        #expect(await collector.waitFor(5) { $0.rescans == ["start-up"] })
        let target = box.inbox + "/nfs_1.cpkg"
        let writer = try start(
            "/bin/bash",
            [
                "-c", "exec 3>\"$1\"; for i in $(seq 1 15); do printf 'chunk-%02d\\n' $i >&3; sleep 0.1; done",
                "bash", target,
            ])
        #expect(await waitUntil(20) { !writer.isRunning })
        let finishedWriting = ContinuousClock.now
        let finalSize = try #require(fileSize(target))
        #expect(finalSize == 15 * 9)
        let entry = try #require(await collector.waitForFile("nfs_1.cpkg", timeout: 10))
        #expect(entry.size == finalSize, "reported at size \(String(describing: entry.size)) of \(finalSize)")
        #expect(entry.at >= finishedWriting - .milliseconds(150), "reported before the writer's last chunk")
        try await Task.sleep(for: .milliseconds(1500))  // three more polls
        #expect(collector.files == ["nfs_1.cpkg"], "\(collector.signals)")
    }

    @Test func ignoresTemporaryNamesAndReportsRenamedInFiles() async throws {
        let box = InboxSandbox("poll-names")
        let watcher = try PollWatcher(directory: box.inbox, period: .milliseconds(100))
        defer { watcher.stop() }
        let collector = Collector(watcher, directory: box.inbox)
        box.write(".virus-defs_2.cpkg.Qw3rTy")
        box.write("virus-defs_2.cpkg.partial")
        box.write(".ansible_tmpxyzvirus-defs_2.cpkg")
        try FileManager.default.createDirectory(atPath: box.inbox + "/d.cpkg", withIntermediateDirectories: false)
        box.write("p.cpkg", in: box.src)
        #expect(try await run("/bin/mv", [box.src + "/p.cpkg", box.inbox + "/virus-defs_2.cpkg"]) == 0)
        #expect(await collector.waitForFile("virus-defs_2.cpkg", timeout: 10) != nil)
        try await Task.sleep(for: .milliseconds(400))
        #expect(collector.files == ["virus-defs_2.cpkg"], "\(collector.signals)")
    }

    /// A symbolic link and a FIFO in a polled inbox are reported (never followed, never opened:
    /// the daemon quarantines them) instead of being left pending for ever (issue #11, item 7).
    @Test func symlinksAndFifosAreReported() async throws {
        let box = InboxSandbox("poll-special")
        let watcher = try PollWatcher(directory: box.inbox, period: .milliseconds(100))
        defer { watcher.stop() }
        let collector = Collector(watcher, directory: box.inbox)
        box.write("target.cpkg", in: box.src)
        #expect(symlink(box.src + "/target.cpkg", box.inbox + "/link_1.cpkg") == 0)
        #expect(mkfifo(box.inbox + "/fifo_1.cpkg", 0o644) == 0)
        #expect(
            await collector.waitFor(10) { Set($0.files) == ["link_1.cpkg", "fifo_1.cpkg"] }, "\(collector.signals)")
    }

    /// Files already there at start: without the start-up rescan they come through the stability
    /// rule one period later.
    @Test func filesPresentAtStartWithoutRescan() async throws {
        let box = InboxSandbox("poll-present")
        box.write("old_1.cpkg")
        box.write("old_2.cpkg")
        let watcher = try PollWatcher(directory: box.inbox, period: .milliseconds(100), rescanAtStart: false)
        defer { watcher.stop() }
        let collector = Collector(watcher, directory: box.inbox)
        #expect(await collector.waitFor(10) { Set($0.files) == ["old_1.cpkg", "old_2.cpkg"] })
        #expect(collector.rescans.isEmpty)
    }

    @Test func stopEndsTheStreamAndTheThread() async throws {
        let box = InboxSandbox("poll-stop")
        // A long period: the thread is asleep when stop() comes and must be woken, not waited for.
        let watcher = try PollWatcher(directory: box.inbox, period: .seconds(3600))
        let collector = Collector(watcher, directory: box.inbox)
        #expect(await collector.waitFor(5) { !$0.rescans.isEmpty })
        #expect(watcher.isRunning)
        let began = ContinuousClock.now
        watcher.stop()
        #expect(await collector.waitFor(5) { $0.finished })
        #expect(await waitUntil(5) { !watcher.isRunning }, "polling thread still running")
        #expect(ContinuousClock.now - began < .seconds(2))
        watcher.stop()
    }

    @Test func badArguments() {
        #expect(throws: CourierError.self) {
            _ = try PollWatcher(directory: "/nonexistent/\(UUID())", period: .seconds(1))
        }
        #expect(throws: CourierError.self) { _ = try PollWatcher(directory: "/tmp", period: .milliseconds(1)) }
    }
}
