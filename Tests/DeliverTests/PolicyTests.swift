import CourierConfig
import CourierCore
import Foundation
import Testing

@testable import CourierDeliver

@Suite struct PolicyTests {
    /// A pilot group on latest and a production group pinned to the previous revision: each
    /// client gets its group's revision, as a delta where it holds the base.
    @Test func groupsWithAPinnedRevision() throws {
        let f = Fleet("policy")
        try f.publish("virus-defs", 1)
        try f.publish("virus-defs", 2, bases: [1])
        try f.publish("ips-rules", 5)
        let pilot = f.inbox("pilot-1")
        let prod1 = f.inbox("prod-1")
        let prod2 = f.inbox("prod-2")
        try f.writeStatus(pilot, installed: ["virus-defs": 1])
        try f.writeStatus(prod2, installed: ["virus-defs": 1])
        let pol = try f.policy(
            """
            [groups.pilot]
            inboxes = ["clients/pilot-*/inbox"]
            types = { virus-defs = "latest", ips-rules = "latest" }
            [groups.production]
            inboxes = ["clients/prod-*/inbox"]
            types = { virus-defs = 1 }
            """)
        var p = try f.pusher(try pol.targets(onlyTypes: nil), types: [])
        p.jobs = 2
        let s = p.run()
        #expect(s.failed == 0)
        #expect(f.names(pilot) == ["ips-rules_5.cpkg", "virus-defs_2_from_1.cpkg"])
        #expect(f.names(prod1) == ["virus-defs_1.cpkg"])
        #expect(f.names(prod2).isEmpty)
        #expect(s.outcomes.first { $0.inbox == prod2 }?.decision?.code == "up-to-date")
        #expect(Set(s.outcomes.compactMap(\.group)) == ["pilot", "production"])
    }

    @Test func anInboxInTwoGroupsIsRefused() throws {
        let f = Fleet("twogroups")
        _ = f.inbox("x-1")
        let pol = try f.policy(
            """
            [groups.a]
            inboxes = ["clients/x-*/inbox"]
            types = { virus-defs = "latest" }
            [groups.b]
            inboxes = ["clients/x-1/inbox"]
            types = { virus-defs = 3 }
            """)
        #expect { try pol.targets(onlyTypes: nil) } throws: { e in
            "\(e)".contains("is in groups a and b")
        }
    }

    @Test func badPoliciesNameFileAndKey() throws {
        let f = Fleet("badpolicy")
        let cases: [(String, String)] = [
            (
                "[groups.a]\ninboxes = [\"x\"]\ntypes = { virus-defs = \"newest\" }\n",
                "'groups.a.types.virus-defs' must be \"latest\" or a revision number"
            ),
            (
                "[groups.a]\ninboxes = []\ntypes = { virus-defs = \"latest\" }\n",
                "'groups.a.inboxes' must list at least one"
            ),
            (
                "[groups.a]\ninboxes = [\"x\"]\nflavour = 1\ntypes = { v = \"latest\" }\n",
                "'groups.a.flavour' is not a known key"
            ),
            (
                "status_path = \"relative/status.json\"\n[groups.a]\ninboxes = [\"x\"]\ntypes = { v = \"latest\" }\n",
                "'status_path' must contain {inbox}"
            ),
            ("# nothing\n", "has no [groups.NAME] table"),
        ]
        for (text, want) in cases {
            #expect { try f.policy(text) } throws: { e in
                let s = "\(e)"
                return s.contains(f.root + "/policy.toml") && s.contains(want)
            }
        }
    }

    @Test func patternMatchingNothingIsAProblemTarget() throws {
        let f = Fleet("nomatch")
        let pol = try f.policy("[groups.a]\ninboxes = [\"clients/none-*/inbox\"]\ntypes = { v = \"latest\" }\n")
        let t = try pol.targets(onlyTypes: nil)
        #expect(t.count == 1 && t[0].problem?.contains("no inbox matches") == true)
    }
}
