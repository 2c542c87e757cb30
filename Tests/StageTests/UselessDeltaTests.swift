import CourierCore
import CourierStage
import Foundation
import Testing

/// Issue #12.6: a delta that saves (almost) nothing is not published, and push never picks a
/// delta that is not smaller than the full package.
@Suite struct UselessDeltaTests {
    /// Incompressible bytes, so package sizes follow content sizes.
    static func noise(_ count: Int, seed: UInt64) -> Data {
        var x = seed | 1
        var d = Data(count: count)
        for i in 0..<count {
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            d[i] = UInt8(truncatingIfNeeded: x)
        }
        return d
    }

    @Test func aDeltaNoSmallerThanNinetyPercentIsSkippedAndLogged() async throws {
        let w = StageWorkspace()
        // rules: one file, replaced completely each revision: a delta would carry all of it.
        // sigs: a large file that stays, and a small one that changes: a real delta.
        func publish(_ rev: Int) throws {
            try FileManager.default.createDirectory(
                atPath: w.path("up/rules/\(rev)"), withIntermediateDirectories: true)
            try Self.noise(64 << 10, seed: UInt64(rev)).write(
                to: URL(fileURLWithPath: w.path("up/rules/\(rev)/all.rules")))
            try FileManager.default.createDirectory(atPath: w.path("up/sigs/\(rev)"), withIntermediateDirectories: true)
            try Self.noise(256 << 10, seed: 99).write(to: URL(fileURLWithPath: w.path("up/sigs/\(rev)/main.cvd")))
            w.write("up/sigs/\(rev)/daily.cld", "daily \(rev)\n")
        }
        let cfg = try w.config(
            """
            [types.rules]
            source = "dir"
            path = "up/rules"
            [types.sigs]
            source = "dir"
            path = "up/sigs"
            """)
        try publish(1)
        _ = try await run(cfg)
        try publish(2)
        let r = try await run(cfg)
        let rules = try #require(r.types.first { $0.type == "rules" })
        let sigs = try #require(r.types.first { $0.type == "sigs" })
        #expect(rules.status == .published && rules.deltas.isEmpty)
        #expect(rules.skippedDeltas.map(\.base) == [1])
        #expect(Double(rules.skippedDeltas[0].bytes) >= 0.9 * Double(rules.fullBytes ?? 0))
        #expect(!FileManager.default.fileExists(atPath: w.path("outbox/rules/2/rules_2_from_1.cpkg")))
        #expect(r.summary().contains("1 delta skipped"), "\(r.summary())")
        #expect(sigs.deltas.map(\.base) == [1] && sigs.skippedDeltas.isEmpty)
        #expect(FileManager.default.fileExists(atPath: w.path("outbox/sigs/2/sigs_2_from_1.cpkg")))
        // The index lists only what was published.
        let idx = try Outbox(root: w.path("outbox")).readIndex()
        #expect(idx.types["rules"]?.revisions.last?.packages.count == 1)
    }
}
