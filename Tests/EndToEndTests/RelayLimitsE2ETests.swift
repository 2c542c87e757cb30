import Foundation
import Testing

/// relay.toml's `max_tree_bytes` is what the relay verifies packages under (#17.6: no silent
/// default): a real stager's outbox, a real nginx, the built `courier-pull mirror`.
@Suite(.serialized, .enabled(if: Nginx.available, "nginx is not installed")) struct RelayLimitsE2ETests {
    /// The fixture's tree is 212 970 bytes: refused under "100K" (exit 10, nothing visible, the
    /// reason in the JSON report), mirrored under "1M" by the same relay on its next pass.
    @Test func theRelayVerifiesUnderItsConfiguredTreeLimit() throws {
        let w = try PullWorld()
        try w.stage("20261120001")
        let nginx = try Nginx(root: w.outbox, dir: w.t.sub("nginx"))
        defer { nginx.stop() }
        let small = w.relay("relay", upstream: [nginx.url], extra: "max_tree_bytes = \"100K\"")
        let r = try Programs.run("courier-pull", ["mirror", "--config", small, "--json"])
        #expect(r.status == 10, "\(r.status) \(r.stderr)")
        let json = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        let error = typeLines(json).first?["error"] as? String ?? ""
        #expect(error.contains("the tree is 212970 bytes, more than the limit of 102400"), "\(r.stdout)")
        #expect(PullWorld.visiblePackages(w.t.sub("relay/mirror")).isEmpty)

        let large = w.relay("relay", upstream: [nginx.url], extra: "max_tree_bytes = \"1M\"")
        let again = try Programs.run("courier-pull", ["mirror", "--config", large, "--json"])
        #expect(again.status == 0, "\(again.status) \(again.stderr)")
        #expect(
            PullWorld.visiblePackages(w.t.sub("relay/mirror"))
                == ["virus-defs/20261120001/virus-defs_20261120001.cpkg"])
    }
}
