import CourierCore
import CourierInbox
import CourierTestSupport
import Testing

@Suite struct InboxConfigTests {
    @Test func fullConfigParses() throws {
        let c = try InboxConfig.parse(
            """
            inbox = "/var/lib/courier/inbox"
            state_dir = "/var/lib/courier/state"
            trust = "/etc/courier/trust"
            clock_skew = "10m"
            delta_wait = "15m"
            poll = 30
            max_tree_bytes = "2G"
            [types.virus-defs]
            keep = 4
            test_command = ["/usr/bin/clamscan", "--database=$COURIER_PATH", "/etc/hostname"]
            test_timeout = "2m"
            apply_command = "systemctl reload clamav-daemon"
            rollback_on_apply_failure = false
            hardlink_unchanged = true
            """, path: "/etc/courier/inboxd.toml")
        #expect(c.store == "/var/lib/courier/state/store" && c.quarantine == "/var/lib/courier/state/quarantine")
        #expect(c.clockSkew == 600 && c.deltaWait == 900 && c.poll == 30 && c.limits.maxTotalBytes == 2 << 30)
        let t = try #require(c.types["virus-defs"])
        #expect(t.keep == 4 && t.testTimeout == 120 && !t.rollbackOnApplyFailure && t.hardlinkUnchanged)
        #expect(t.testCommand == .argv(["/usr/bin/clamscan", "--database=$COURIER_PATH", "/etc/hostname"]))
        #expect(t.applyCommand == .shell("systemctl reload clamav-daemon"))
        #expect(c.typeConfig("ips-rules") == nil)
    }

    @Test(arguments: [
        ("inbox = \"/i\"\ntrust = \"/t\"\nwatch = true\n", "inboxd.toml:3: 'watch' is not a known key"),
        (
            "inbox = \"/i\"\ntrust = \"/t\"\n[types.a]\nkeep = -1\n",
            "inboxd.toml:4: 'types.a.keep' must be an integer from 0 to 100"
        ),
        (
            "inbox = \"/i\"\ntrust = \"/t\"\n[types.a]\napply_command = []\n",
            "inboxd.toml:4: 'types.a.apply_command' must be a command string or a non-empty list"
        ),
        (
            "inbox = \"/i\"\ntrust = \"/t\"\n[types.a]\nreload = \"x\"\n",
            "inboxd.toml:4: 'types.a.reload' is not a known key"
        ),
        ("inbox = \"/i\"\n", "needs 'trust'"),
        ("trust = \"/t\"\n", "needs 'inbox'"),
        ("inbox = \"/i\"\ntrust = \"/t\"\ndelta_wait = \"soon\"\n", "inboxd.toml:3: 'delta_wait' must be a duration"),
    ])
    func badConfigsNameFileLineAndKey(text: String, reason: String) {
        expectCourierError(.config, reason) { _ = try InboxConfig.parse(text, path: "/etc/courier/inboxd.toml") }
    }
}
