import Foundation
import Testing

/// Usage errors of `courier-pull run`: refused with 64 before any mirror is asked.
@Suite struct PullUsageE2ETests {
    @Test func aTypeThisClientDoesNotPullIsAUsageError() throws {
        let w = try PullWorld()
        let conf = w.client("c1", mirrors: ["http://127.0.0.1:1"])
        let r = try Programs.run("courier-pull", ["run", "--config", conf, "--no-splay", "--type", "virus-defz"])
        #expect(r.status == 64, "\(r.status) \(r.stderr)")
        #expect(
            r.stderr.contains("'virus-defz': not a type this client pulls") && r.stderr.contains("virus-defs"),
            "\(r.stderr)")
        // A configured type passes this check (and then fails on the unreachable mirror, not 64).
        let ok = try Programs.run("courier-pull", ["run", "--config", conf, "--no-splay", "--type", "virus-defs"])
        #expect(ok.status != 64, "\(ok.status) \(ok.stderr)")
    }
}
