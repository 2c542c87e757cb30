import CourierCore
import Foundation
import Testing

@testable import CourierDeliver

/// `push --bwlimit` and `--stagger` in the library: the stagger slots (a pure function), and a
/// capped copy that is byte for byte the package, paced by the run's one bucket.
@Suite(.serialized) struct ThinLinkPushTests {
    /// Evenly spaced inside the window, the same slot for the same inbox whatever the order of
    /// the list, not the alphabetical order, and no slot at or past the window's end.
    @Test func staggerSlotsAreEvenStableAndHashOrdered() {
        let inboxes = (0..<40).map { "/mnt/clients/host\(String(format: "%03d", $0))/inbox" }
        let o = Stagger.offsets(inboxes, window: 600)
        #expect(o.sorted() == (0..<40).map { 600 * Double($0) / 40 })
        #expect(o.allSatisfy { $0 >= 0 && $0 < 600 })
        let shuffled = inboxes.shuffled()
        let o2 = Stagger.offsets(shuffled, window: 600)
        for (i, ib) in shuffled.enumerated() { #expect(o2[i] == o[inboxes.firstIndex(of: ib)!], "\(ib)") }
        let byTime = inboxes.indices.sorted { o[$0] < o[$1] }.map { inboxes[$0] }
        #expect(byTime != inboxes, "hash order, not alphabetical")
        // FNV-1a 64's published test vectors: the hash is the same on every machine.
        #expect(Stagger.fnv1a("") == 0xcbf2_9ce4_8422_2325)
        #expect(Stagger.fnv1a("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(Stagger.fnv1a("foobar") == 0x8594_4171_f739_67e8)
        #expect(Stagger.offsets([], window: 5).isEmpty)
        #expect(Stagger.offsets(["/a", "/b"], window: 0) == [0, 0])
    }

    /// 3 inboxes × 3 MiB at 6 MiB/s through 3 jobs: about 1.5 s for the run (one cap, not one
    /// per copy: uncapped copies take milliseconds), every copy byte for byte the package, by
    /// capped writes. The first quarter second of the bucket is free, hence the lower bound.
    @Test func cappedCopiesShareOneBucket() throws {
        let f = Fleet("bwlimit")
        try f.publish("virus-defs", 1, extra: 3 << 20)
        let pkg = f.fullPath("virus-defs", 1)
        let size = Double(f.bytes(pkg)!.count)
        let inboxes = (0..<3).map { f.inbox("c\($0)") }
        var p = try f.pusher(f.targets(inboxes), types: ["virus-defs"])
        p.jobs = 3
        p.throttle = Throttle(bytesPerSecond: 6 << 20)
        // No syncfs: on this shared machine a flush waits for other writers' dirty pages (once
        // 2 s); the flushed path is timed in ThinLinkE2ETests.
        p.sync = false
        let t0 = Sys.monotonicSeconds()
        let s = p.run()
        let took = Sys.monotonicSeconds() - t0
        #expect(s.failed == 0 && s.copied == 3)
        let expected = 3 * size / Double(6 << 20)
        #expect(took >= expected - 0.3 && took <= expected * 1.3 + 0.3, "took \(took) s, expected \(expected) s")
        for o in s.outcomes { #expect(o.how == "writes capped by --bwlimit") }
        for ib in inboxes { #expect(f.bytes(ib + "/virus-defs_1.cpkg") == f.bytes(pkg), "\(ib)") }
    }

    /// Staggered over 2 s, 4 inboxes: each copy renamed at its own slot (0, 0.5, 1, 1.5 s), in
    /// the order of `Stagger.offsets`; with the flushes, two per inbox; a package that fails
    /// verification reaches no inbox.
    @Test func staggeredRenamesFollowTheSlots() throws {
        let f = Fleet("stagger")
        try f.publish("virus-defs", 1)
        let inboxes = (0..<4).map { f.inbox("c\($0)") }
        var p = try f.pusher(f.targets(inboxes), types: ["virus-defs"])
        p.stagger = 2
        p.jobs = 4
        // Timed without the flushes: on this shared machine a syncfs may wait seconds for
        // other writers. The flushed path is checked below.
        p.sync = false
        let seen = Locked([String: Double]())
        let stop = Locked(false)
        let t0 = Sys.monotonicSeconds()
        let watcher = Thread {
            while !stop.withLock({ $0 }) {
                for ib in inboxes where FileManager.default.fileExists(atPath: ib + "/virus-defs_1.cpkg") {
                    seen.withLock { if $0[ib] == nil { $0[ib] = Sys.monotonicSeconds() - t0 } }
                }
                usleep(10_000)
            }
        }
        watcher.start()
        let s = p.run()
        usleep(100_000)  // one more look for the last rename, made just before run returned
        stop.withLock { $0 = true }
        usleep(50_000)
        #expect(s.failed == 0 && s.copied == 4)
        #expect(s.flushes == 0)
        let slots = Stagger.offsets(inboxes, window: 2)
        let arrived = seen.withLock { $0 }
        for (i, ib) in inboxes.enumerated() {
            let at = arrived[ib] ?? -1
            #expect(at >= slots[i] - 0.05 && at <= slots[i] + 0.4, "\(ib): arrived at \(at) s, slot \(slots[i]) s")
        }

        // With the flushes: one syncfs before and one after each inbox's rename.
        for ib in inboxes { try FileManager.default.removeItem(atPath: ib + "/virus-defs_1.cpkg") }
        p.sync = true
        p.stagger = 0.2
        let flushed = p.run()
        #expect(flushed.copied == 4 && flushed.flushes == 8, "\(flushed.flushes) flushes")
        for ib in inboxes { #expect(f.names(ib) == ["virus-defs_1.cpkg"], "\(ib)") }

        // Tampered: verified before the first copy, so nothing is staged, nothing renamed.
        let g = Fleet("stagger-bad")
        try g.publish("virus-defs", 1)
        var b = [UInt8](g.bytes(g.fullPath("virus-defs", 1))!)
        b[b.count / 2] ^= 0x55
        try Data(b).write(to: URL(fileURLWithPath: g.fullPath("virus-defs", 1)))
        let bad = (0..<2).map { g.inbox("c\($0)") }
        var q = try g.pusher(g.targets(bad), types: ["virus-defs"])
        q.stagger = 1
        let r = q.run()
        #expect(r.failed == 2 && r.copied == 0)
        for ib in bad {
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: ib)) ?? ["?"]).isEmpty, "\(ib)")
        }
    }
    /// A slot can start up to the whole window after the plan: each inbox's client is decided
    /// again at its slot. Over 3 s, 3 inboxes (slots 0, 1, 2 s): once the run has started, the
    /// client of a later slot installs the revision and another gets the package by other means
    /// (it waits in its inbox): neither is sent a copy, and the new decision is what is reported.
    @Test func staggeredSlotDecidesAgainWithTheClientsStatusThen() throws {
        let f = Fleet("stagger-redecide")
        try f.publish("virus-defs", 1)
        let inboxes = (0..<3).map { f.inbox("c\($0)") }
        let slots = Stagger.offsets(inboxes, window: 3)
        let byTime = inboxes.indices.sorted { slots[$0] < slots[$1] }
        let (first, installs, gotIt) = (inboxes[byTime[0]], inboxes[byTime[1]], inboxes[byTime[2]])
        var p = try f.pusher(f.targets(inboxes), types: ["virus-defs"])
        p.stagger = 3
        p.jobs = 3
        p.sync = false
        let changer = Thread {
            usleep(400_000)  // after the plan (milliseconds), before the second slot (1 s)
            try! f.writeStatus(installs, installed: ["virus-defs": 1])
            FileManager.default.createFile(atPath: gotIt + "/virus-defs_1.cpkg", contents: Data("by hand".utf8))
        }
        changer.start()
        let s = p.run()
        #expect(s.copied == 1 && s.failed == 0)
        #expect(f.bytes(first + "/virus-defs_1.cpkg") == f.bytes(f.fullPath("virus-defs", 1)))
        #expect(f.names(installs).isEmpty, "a copy reached a client that had installed the revision")
        #expect(f.bytes(gotIt + "/virus-defs_1.cpkg") == Data("by hand".utf8))
        let by = Dictionary(uniqueKeysWithValues: s.outcomes.map { ($0.inbox, $0) })
        #expect(by[first]?.state == .copied && by[first]?.decision?.code == "no-status")
        #expect(
            by[installs]?.state == .skipped && by[installs]?.decision?.code == "up-to-date",
            "\(String(describing: by[installs]?.decision))")
        #expect(
            by[gotIt]?.state == .skipped && by[gotIt]?.decision?.code == "waiting",
            "\(String(describing: by[gotIt]?.decision))")
    }
    /// At its slot the client now needs another package (it installed revision 1 meanwhile: a
    /// delta, not the full package planned): not verified by this run, so nothing is copied and
    /// the line says why (`changed`).
    @Test func staggeredSlotNeedingAnotherPackageCopiesNothing() throws {
        let f = Fleet("stagger-changed")
        try f.publish("virus-defs", 1)
        try f.publish("virus-defs", 2, bases: [1])
        let inboxes = (0..<2).map { f.inbox("c\($0)") }
        let slots = Stagger.offsets(inboxes, window: 2)
        let later = inboxes[slots[0] < slots[1] ? 1 : 0]
        var p = try f.pusher(f.targets(inboxes), types: ["virus-defs"])
        p.stagger = 2
        p.jobs = 2
        p.sync = false
        let changer = Thread {
            usleep(400_000)
            try! f.writeStatus(later, installed: ["virus-defs": 1])
        }
        changer.start()
        let s = p.run()
        #expect(s.copied == 1 && s.failed == 0)
        #expect(f.names(later).isEmpty)
        let o = try #require(s.outcomes.first { $0.inbox == later })
        #expect(o.state == .skipped && o.decision?.code == "changed" && o.decision?.package == nil)
        #expect(o.decision?.reason.contains("virus-defs_2_from_1") == true, "\(o.decision?.reason ?? "")")
    }
}
