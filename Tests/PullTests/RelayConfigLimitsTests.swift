import CourierCore
import CourierTestSupport
import Testing

@testable import CourierPull

/// relay.toml's `max_tree_bytes` and `delta_window` (#17.6): the limits the relay verifies
/// packages under, named as in inboxd.toml; absent, courier-inboxd's defaults.
@Suite struct RelayConfigLimitsTests {
    static let base = "root = \"mirror\"\nupstream = [\"http://stage\"]\ntrust = \"k.pub\"\n"

    @Test func limitsAreReadOrTheDefaults() throws {
        #expect(try RelayConfig.parse(Self.base, path: "/srv/relay/relay.toml").limits == Limits())
        let c = try RelayConfig.parse(
            Self.base + "max_tree_bytes = \"20G\"\ndelta_window = \"1G\"\n", path: "/srv/relay/relay.toml")
        var want = Limits()
        want.maxTotalBytes = 20 << 30
        want.maxDeltaWindow = 1 << 30
        #expect(c.limits == want)
    }

    @Test(arguments: [
        ("max_tree_bytes = \"lots\"\n", "'max_tree_bytes'"),
        ("delta_window = \"512K\"\n", "'delta_window'"),
    ])
    func badLimitsNameFileAndKey(line: String, needle: String) {
        let e = expectCourierError(.config, needle) {
            _ = try RelayConfig.parse(Self.base + line, path: "/srv/relay/relay.toml")
        }
        #expect(e?.message.hasPrefix("/srv/relay/relay.toml") == true, "\(String(describing: e))")
    }
}
