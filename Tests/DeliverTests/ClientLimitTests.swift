import CourierConfig
import CourierCore
import Foundation
import Testing

@testable import CourierDeliver

/// Push checks each inbox's packages against the limits its client was configured with
/// (policy.toml's max_tree_bytes/delta_window), not only against the defaults (issue #17.6).
@Suite struct ClientLimitTests {
    /// A tree of about 240 KB: refused for the group whose clients take 100K, delivered to the
    /// group without a limit; nothing of it lands in the small inbox.
    @Test func pushRefusesForOneGroupWhatItsClientsWouldRefuse() throws {
        let f = Fleet("limits")
        try f.publish("virus-defs", 1, extra: 200_000)
        let small = f.inbox("small-1")
        let big = f.inbox("big-1")
        let pol = try f.policy(
            """
            [groups.small]
            inboxes = ["clients/small-*/inbox"]
            types = { virus-defs = "latest" }
            max_tree_bytes = "100K"
            [groups.big]
            inboxes = ["clients/big-*/inbox"]
            types = { virus-defs = "latest" }
            """)
        let targets = try pol.targets(onlyTypes: nil)
        #expect(targets.first { $0.group == "small" }?.limits.maxTotalBytes == 100 << 10)
        #expect(targets.first { $0.group == "big" }?.limits == Limits())
        var p = try f.pusher(targets, types: [])
        p.jobs = 2
        let s = p.run()
        #expect(f.names(big) == ["virus-defs_1.cpkg"])
        #expect(f.names(small).isEmpty)
        #expect(s.failed == 1)
        let refused = try #require(s.outcomes.first { $0.inbox == small })
        #expect(refused.state == .failed)
        #expect(refused.decision?.code == "limit")
        let why = refused.error ?? ""
        #expect(why.contains("virus-defs_1.cpkg"), "\(why)")
        #expect(why.contains("max_tree_bytes 102400"), "\(why)")
        #expect(why.contains("more than the limit of 102400"), "\(why)")
        #expect(why.contains("group small"), "\(why)")
        // The same package passes the default limits: only the group's limit refused it.
        #expect(s.outcomes.first { $0.inbox == big }?.state == .copied)
    }

    /// The dry run says the same, and a delta of a tree over the limit is refused too (the full
    /// package makes the same tree, so it is no way out).
    @Test func aDeltaOverTheTreeLimitIsRefusedAndTheDryRunSaysSo() throws {
        let f = Fleet("limitsdelta")
        try f.publish("virus-defs", 1, extra: 200_000)
        // Revision 2: the same big file (so the delta is small and worth sending), one changed.
        try FileManager.default.copyItem(atPath: f.tree("virus-defs", 1), toPath: f.tree("virus-defs", 2))
        try "revision 2\n".write(toFile: f.tree("virus-defs", 2) + "/db0.txt", atomically: false, encoding: .utf8)
        _ = try Outbox(root: f.outbox).publish(
            type: "virus-defs", revision: 2, tree: f.tree("virus-defs", 2),
            files: try TreeScanner.scan(f.tree("virus-defs", 2)),
            bases: [(revision: 1, files: try TreeScanner.scan(f.tree("virus-defs", 1)))],
            options: PackageBuilder.Options(type: "virus-defs", revision: 2, keys: [f.key], limits: Limits()))
        let a = f.inbox("a")
        try f.writeStatus(a, installed: ["virus-defs": 1])
        var targets = f.targets([a])
        targets[0].limits.maxTotalBytes = 150_000
        var p = try f.pusher(targets, types: ["virus-defs"])
        p.dryRun = true
        let s = p.run()
        #expect(s.failed == 1)
        #expect(s.outcomes.first?.decision?.code == "limit")
        let why = s.outcomes.first?.error ?? ""
        #expect(why.contains("virus-defs_2_from_1.cpkg"), "\(why)")
        #expect(why.contains("more than the limit of 150000"), "\(why)")
        #expect(f.names(a).isEmpty)
        // Under a limit the tree fits, the delta goes.
        targets[0].limits.maxTotalBytes = 8 << 20
        p = try f.pusher(targets, types: ["virus-defs"])
        let ok = p.run()
        #expect(ok.failed == 0)
        #expect(f.names(a) == ["virus-defs_2_from_1.cpkg"], "\(ok.outcomes.map { $0.decision?.reason ?? "" })")
    }

    /// A delta whose in-file patch needs more memory than the client's delta_window is swapped
    /// for the full package (which needs none), with code `delta-refused`; under a window that
    /// admits the patch, the delta goes.
    @Test func aDeltaOverTheWindowIsSwappedForTheFullPackage() throws {
        let f = Fleet("limitswindow")
        try f.publish("virus-defs", 1, extra: 3 << 20)
        // Revision 2: the 3 MiB file with a few bytes changed, so the delta carries a patch of it
        // against the base (memory: the base and the result, more than a 1 MiB window).
        try FileManager.default.copyItem(atPath: f.tree("virus-defs", 1), toPath: f.tree("virus-defs", 2))
        let big = f.tree("virus-defs", 2) + "/big.bin"
        let h = try #require(FileHandle(forUpdatingAtPath: big))
        try h.seek(toOffset: 1 << 20)
        h.write(Data("changed in revision 2".utf8))
        try h.close()
        _ = try Outbox(root: f.outbox).publish(
            type: "virus-defs", revision: 2, tree: f.tree("virus-defs", 2),
            files: try TreeScanner.scan(f.tree("virus-defs", 2)),
            bases: [(revision: 1, files: try TreeScanner.scan(f.tree("virus-defs", 1)))],
            options: PackageBuilder.Options(type: "virus-defs", revision: 2, keys: [f.key], limits: Limits()))
        let delta = f.outbox + "/virus-defs/2/virus-defs_2_from_1.cpkg"
        #expect(FileManager.default.fileExists(atPath: delta), "the stager built no delta to refuse")
        let a = f.inbox("a")
        try f.writeStatus(a, installed: ["virus-defs": 1])
        var targets = f.targets([a])
        targets[0].limits.maxDeltaWindow = 1 << 20
        var p = try f.pusher(targets, types: ["virus-defs"])
        let s = p.run()
        #expect(s.failed == 0)
        let d = try #require(s.outcomes.first?.decision)
        #expect(d.code == "delta-refused", "\(d.reason)")
        #expect(
            d.reason.contains("virus-defs_2_from_1.cpkg") && d.reason.contains("delta_window 1048576"), "\(d.reason)")
        #expect(f.names(a) == ["virus-defs_2.cpkg"])
        // A window that admits the patch: the delta goes to another client at revision 1.
        let b = f.inbox("b")
        try f.writeStatus(b, installed: ["virus-defs": 1])
        targets = f.targets([b])
        targets[0].limits.maxDeltaWindow = 64 << 20
        p = try f.pusher(targets, types: ["virus-defs"])
        #expect(p.run().failed == 0)
        #expect(f.names(b) == ["virus-defs_2_from_1.cpkg"])
    }

    @Test func limitsAtTheTopApplyToEveryGroupAndAGroupOverridesThem() throws {
        let f = Fleet("limitsparse")
        let pol = try f.policy(
            """
            max_tree_bytes = "1G"
            delta_window = "64M"
            [groups.a]
            inboxes = ["/srv/a"]
            types = { virus-defs = "latest" }
            [groups.b]
            inboxes = ["/srv/b"]
            types = { virus-defs = "latest" }
            delta_window = "2M"
            """)
        let a = try pol.group(named: "a").limits
        let b = try pol.group(named: "b").limits
        #expect(a.maxTotalBytes == 1 << 30 && a.maxDeltaWindow == 64 << 20)
        #expect(b.maxTotalBytes == 1 << 30 && b.maxDeltaWindow == 2 << 20)
        #expect(a.maxEntries == Limits().maxEntries)
    }

    @Test(arguments: [
        ("max_tree_bytes = \"lots\"", ":5:", "'groups.a.max_tree_bytes' must be a size"),
        ("delta_window = \"64K\"", ":5:", "'groups.a.delta_window' must be at least 1 MiB"),
        ("max_tree_byte = \"1G\"", ":5:", "'groups.a.max_tree_byte' is not a known key"),
    ])
    func badLimitsNameFileLineAndKey(line: String, at: String, says: String) throws {
        let f = Fleet("limitsbad")
        let path = f.root + "/policy.toml"
        let text = """
            [groups.a]
            inboxes = ["/srv/a"]
            types = { virus-defs = "latest" }

            \(line)
            """
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        let e = #expect(throws: CourierError.self) { try Policy.load(path) }
        #expect(e?.code == .config)
        #expect(e?.message.hasPrefix(path + at) == true, "\(e?.message ?? "")")
        #expect(e?.message.contains(says) == true, "\(e?.message ?? "")")
    }

    @Test func aTopLevelLimitErrorNamesItsLine() throws {
        let f = Fleet("limitsbadtop")
        let path = f.root + "/policy.toml"
        let text = """
            status_path = "{inbox}/../state/status.json"
            delta_window = 5
            [groups.a]
            inboxes = ["/srv/a"]
            types = { v = "latest" }
            """
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        let e = #expect(throws: CourierError.self) { try Policy.load(path) }
        #expect(e?.message.hasPrefix(path + ":2: 'delta_window' must be at least 1 MiB") == true, "\(e?.message ?? "")")
    }
}
