import CourierCore
import CourierDeliver
import Foundation
import Testing

/// Issue #12.6: push never picks a delta that is not smaller than the full package (stagers
/// before 0.2 published such deltas).
@Suite struct UselessDeltaCatalogTests {
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

    @Test func pushNeverOffersADeltaThatIsNotSmallerThanTheFull() throws {
        let root = FileManager.default.temporaryDirectory.path + "/courier-useless-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = root + "/outbox/t/3"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Self.noise(1000, seed: 1).write(to: URL(fileURLWithPath: dir + "/t_3.cpkg"))
        try Self.noise(1000, seed: 2).write(to: URL(fileURLWithPath: dir + "/t_3_from_1.cpkg"))  // as large
        try Self.noise(999, seed: 3).write(to: URL(fileURLWithPath: dir + "/t_3_from_2.cpkg"))  // smaller
        let c = try Catalog.scan(root + "/outbox")
        let rev = try #require(c.types["t"]?.revisions[3])
        #expect(rev.deltas[1] == nil)
        #expect(rev.deltas[2] != nil)
        var st = ClientStatus.TypeStatus()
        st.installed = 1
        let d = Planner.decide(type: "t", want: .named(3), catalog: c, status: st, statusNote: nil, waiting: [])
        #expect(d.action == .full && d.code == "no-delta")
    }
}
