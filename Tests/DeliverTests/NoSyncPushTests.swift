import CourierCore
import Foundation
import Testing

@testable import CourierDeliver

/// `push --no-sync` (`Pusher.sync = false`): the same copies, verification and renames as the
/// durable default, without the two flushes; and the page-cache budget that decides, in that
/// mode, which copies go through the cache and which by direct I/O.
@Suite(.serialized) struct NoSyncPushTests {
    /// Every inbox gets its package, byte for byte, mode 0644, under its final name with no
    /// temporary left — and no file system was flushed. The durable default, on the same
    /// fleet, flushes the inboxes' file system twice (before and after the renames).
    @Test func copiesRenamedWithoutFlushing() throws {
        let f = Fleet("nosync")
        try f.publish("virus-defs", 1, extra: (3 << 20) + 77)
        let inboxes = (0..<5).map { f.inbox("c\($0)") }
        var p = try f.pusher(f.targets(inboxes), types: ["virus-defs"])
        p.sync = false
        let s = p.run()
        #expect(s.failed == 0 && s.copied == 5)
        #expect(s.flushes == 0)
        let want = f.bytes(f.fullPath("virus-defs", 1))
        for ib in inboxes {
            #expect(f.names(ib) == ["virus-defs_1.cpkg"], "\(ib)")
            #expect(f.bytes(ib + "/virus-defs_1.cpkg") == want, "\(ib)")
            let attrs = try FileManager.default.attributesOfItem(atPath: ib + "/virus-defs_1.cpkg")
            #expect((attrs[.posixPermissions] as! NSNumber).intValue == 0o644)
        }
        let other = f.inbox("durable")
        let d = try f.pusher(f.targets([other]), types: ["virus-defs"]).run()
        #expect(d.copied == 1 && d.flushes == 2)
        #expect(f.bytes(other + "/virus-defs_1.cpkg") == want)
    }

    /// A copy that fits the budget goes through the page cache and uses it up; one that does not
    /// goes by direct I/O (on a local disk file system); a direct copy with nothing left to
    /// start after it finishes in the cache. All byte for byte the package.
    @Test func budgetChoosesCacheOrDirectIO() throws {
        let f = Fleet("nosync-budget")
        try f.publish("virus-defs", 1, extra: (9 << 20) + 5)
        let pkg = f.fullPath("virus-defs", 1)
        let src = try PackageSource(path: pkg)
        let ib = f.inbox("a")
        func copy(_ name: String, _ budget: CacheBudget) throws -> String {
            let path = ib + "/" + name
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            #expect(fd >= 0, "open \(path)")
            defer { close(fd) }
            return try src.copy(into: fd, dst: path, cache: budget)
        }
        // No direct slot: the cache while the budget lasts, then direct I/O.
        let budget = CacheBudget(bytes: src.size + 10, copies: 2, directSlots: 0)
        let first = try copy("one", budget)
        #expect(["the page cache", "reflink"].contains(first), "\(first)")
        if first != "reflink" { #expect(budget.remaining == 10) }
        let second = try copy("two", budget)
        // One direct slot, a large budget, no copy after this one, verification done: the disk
        // first, then the cache.
        let free = CacheBudget(bytes: 1 << 40, copies: 1, directSlots: 1)
        free.verificationDone()
        let third = try copy("three", free)
        let type = capture(["stat", "-f", "-c", "%t", ib]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        if let t = Int64(type, radix: 16), PackageSource.directFileSystems.contains(t) {
            #expect(second == "direct I/O")
            #expect(third == "direct I/O, then the page cache")
        } else {
            print(
                "NoSyncPushTests: \(ib) is on file system type 0x\(type), not a local disk one: direct I/O not expected"
            )
        }
        for n in ["one", "two", "three"] { #expect(f.bytes(ib + "/" + n) == f.bytes(pkg), "\(n)") }
    }

    /// The routing itself: direct while a direct slot is free, else the cache while the budget
    /// lasts; a direct copy leaves the disk only once no copy waits to start, verification is
    /// done and its rest fits.
    @Test func routing() {
        let b = CacheBudget(bytes: 1000, copies: 3, directSlots: 1)
        b.begin()
        #expect(b.route(100) == .direct)
        b.begin()
        #expect(b.route(100) == .cache)
        #expect(b.route(5000) == .direct, "past the budget: direct, slot or not")
        b.finish()
        #expect(!b.leaveDisk(remaining: 50), "one copy still waits to start")
        b.begin()
        #expect(!b.leaveDisk(remaining: 50), "verification still runs")
        b.verificationDone()
        #expect(!b.leaveDisk(remaining: 2000), "the rest does not fit")
        #expect(b.leaveDisk(remaining: 50))
        #expect(b.remaining == 850)
        b.finish()
        #expect(b.route(10) == .direct, "the slot is free again")
    }

    /// The headroom under the kernel's free-run ceiling, from /proc/vmstat's page counts: three
    /// quarters of (halfway between the two thresholds, less what is dirty or being written).
    @Test func headroomFromVmstat() {
        let text =
            "nr_free_pages 100\nnr_dirty 1000\nnr_writeback 24\nnr_dirty_threshold 8000\nnr_dirty_background_threshold 4000\n"
        #expect(CacheBudget.headroom(vmstat: text, pageSize: 4096) == (6000 - 1024) * 3 / 4 * 4096)
        // Past the ceiling, or without the thresholds: nothing through the cache.
        #expect(
            CacheBudget.headroom(
                vmstat: "nr_dirty 9000\nnr_dirty_threshold 8000\nnr_dirty_background_threshold 4000\n", pageSize: 4096)
                == 0)
        #expect(CacheBudget.headroom(vmstat: "nr_dirty 1\n", pageSize: 4096) == 0)
        #expect(CacheBudget.fromKernel(vmstat: "/nonexistent/vmstat").remaining == 0)
        let b = CacheBudget(bytes: 100)
        let takes = [b.take(60), b.take(60), b.take(40)]
        #expect(takes == [true, false, true])
        #expect(b.remaining == 0)
    }
}
