import CourierCore
import Crypto
import Testing

@testable import CourierTUF

/// A repository of targets roles: top-level targets plus named delegated roles, all listed in
/// snapshot; `search` runs TargetSearch with a loader that records what it loads.
struct SearchWorld {
    let repo = Repo()
    var files: [String: [UInt8]] = [:]
    var set: TrustedMetadataSet
    var loads: [String] = []

    /// `roles`: name → (signing key, targets payload bytes built with that key). `top` is targets.
    init(top: (files: [String: [UInt8]], delegations: JSONValue?), roles: [String: [UInt8]]) throws {
        let t = targetsFile(files: top.files, delegations: top.delegations, signers: repo.targetsKeys)
        files["targets"] = t
        for (k, v) in roles { files[k] = v }
        var meta: [String: (Int64, [UInt8]?)] = [:]
        for (k, v) in files { meta[k + ".json"] = (1, v) }
        let snap = repo.snapshot(meta: meta)
        set = try TrustedMetadataSet(rootBytes: repo.root(), referenceTime: T.now, limits: JSONValue.Limits())
        try set.updateTimestamp(repo.timestamp(snapshot: snap))
        try set.updateSnapshot(snap)
    }

    mutating func search(_ path: String, max: Int = 32) throws -> (TargetFile, role: String)? {
        let files = self.files
        var loads: [String] = []
        let r = try TargetSearch.findTarget(path, in: &set, maxDelegations: max) { role, delegator, set in
            loads.append(role)
            guard let b = files[role] else { throw CourierError(.download, "no \(role)") }
            if role == "targets" {
                try set.updateTargets(b)
            } else {
                try set.updateDelegatedTargets(b, role: role, delegator: delegator)
            }
        }
        self.loads += loads
        return r
    }
}

@Suite struct TargetSearchTests {
    let k = TestKey()

    func role(_ files: [String: String] = [:], _ delegations: JSONValue? = nil) -> [UInt8] {
        targetsFile(files: files.mapValues { bytes($0) }, delegations: delegations, signers: [k])
    }

    @Test func topLevelTargetIsFoundWithoutDelegations() throws {
        var w = try SearchWorld(top: (["a.txt": bytes("A")], nil), roles: [:])
        let r = try w.search("a.txt")
        #expect(r?.role == "targets")
        #expect(r?.0.length == 1)
        #expect(w.loads == ["targets"])
        #expect(try w.search("b.txt") == nil)
        #expect(w.loads == ["targets"])  // loaded once
    }

    @Test func preorderDepthFirstInListedOrder() throws {
        let top = delegationsJSON([("A", [k], false, ["*"], nil), ("B", [k], false, ["*"], nil)])
        let aDeleg = delegationsJSON([("C", [k], false, ["*"], nil)])
        var w = try SearchWorld(
            top: ([:], top),
            roles: [
                "A": role([:], aDeleg), "B": role(["x": "from B", "y": "B"]), "C": role(["x": "from C"]),
            ])
        let r = try w.search("x")
        #expect(r?.role == "C")  // A's child C comes before A's sibling B
        #expect(w.loads == ["targets", "A", "C"])
        #expect(try w.search("y")?.role == "B")
        #expect(w.loads == ["targets", "A", "C", "B"])
    }

    @Test func terminatingDelegationStopsTheSearch() throws {
        let top = delegationsJSON([("A", [k], true, ["*"], nil), ("B", [k], false, ["*"], nil)])
        var w = try SearchWorld(top: ([:], top), roles: ["A": role(), "B": role(["x": "B"])])
        #expect(try w.search("x") == nil)
        #expect(w.loads == ["targets", "A"])
        // A terminating role that does not match the path does not stop anything.
        let top2 = delegationsJSON([("A", [k], true, ["other/*"], nil), ("B", [k], false, ["*"], nil)])
        var w2 = try SearchWorld(top: ([:], top2), roles: ["A": role(), "B": role(["x": "B"])])
        #expect(try w2.search("x")?.role == "B")
        #expect(w2.loads == ["targets", "B"])
    }

    @Test func cyclesAreVisitedOnce() throws {
        let top = delegationsJSON([("A", [k], false, ["*"], nil)])
        let aToB = delegationsJSON([("B", [k], false, ["*"], nil)])
        let bToA = delegationsJSON([("A", [k], false, ["*"], nil)])
        var w = try SearchWorld(top: ([:], top), roles: ["A": role([:], aToB), "B": role([:], bToA)])
        #expect(try w.search("nothing") == nil)
        #expect(w.loads == ["targets", "A", "B"])
    }

    @Test func maxDelegationsBoundsTheWalk() throws {
        // targets → r1 → r2 → r3, target in r3: python-tuf visits at most max+1 roles.
        let top = delegationsJSON([("r1", [k], false, ["*"], nil)])
        let roles: [String: [UInt8]] = [
            "r1": role([:], delegationsJSON([("r2", [k], false, ["*"], nil)])),
            "r2": role([:], delegationsJSON([("r3", [k], false, ["*"], nil)])),
            "r3": role(["t": "deep"]),
        ]
        var w = try SearchWorld(top: ([:], top), roles: roles)
        #expect(try w.search("t", max: 2) == nil)
        #expect(w.loads == ["targets", "r1", "r2"])
        var w2 = try SearchWorld(top: ([:], top), roles: roles)
        #expect(try w2.search("t", max: 3)?.role == "r3")
    }

    @Test func pathPatternsMatchPerSegment() throws {
        let top = delegationsJSON([("A", [k], false, ["files/*.txt"], nil), ("B", [k], false, ["*/*/*"], nil)])
        var w = try SearchWorld(
            top: ([:], top),
            roles: [
                "A": role(["files/a.txt": "A", "files/sub/b.txt": "A"]), "B": role(["files/sub/b.txt": "B"]),
            ])
        #expect(try w.search("files/a.txt")?.role == "A")
        #expect(try w.search("files/sub/b.txt")?.role == "B")  // '*' does not cross '/'
        #expect(try w.search("other/a.txt") == nil)
        #expect(!w.loads.contains("X"))
    }

    @Test func pathHashPrefixes() throws {
        let h = Hex.encode(SHA256.hash(data: bytes("pkg/a.bin")))
        let other = h.first == "0" ? "1" : "0"
        let top = delegationsJSON([
            ("no", [k], false, nil, [other]), ("yes", [k], false, nil, [String(h.prefix(3)), "zz"]),
        ])
        var w = try SearchWorld(
            top: ([:], top), roles: ["no": role(["pkg/a.bin": "no"]), "yes": role(["pkg/a.bin": "yes"])])
        #expect(try w.search("pkg/a.bin")?.role == "yes")
        #expect(w.loads == ["targets", "yes"])
    }

    @Test func succinctHashBins() throws {
        // Bin of "files/a.txt" with bit_length 4 is "bin-8" (python-tuf get_role_for_target).
        let deleg = JSONValue.object([
            "keys": .object([k.keyid: k.json]),
            "succinct_roles": .object([
                "keyids": .array([.string(k.keyid)]), "threshold": .int(1),
                "bit_length": .int(4), "name_prefix": .string("bin"),
            ]),
        ])
        var w = try SearchWorld(top: ([:], deleg), roles: ["bin-8": role(["files/a.txt": "x"]), "bin-c": role()])
        #expect(try w.search("files/a.txt")?.role == "bin-8")
        #expect(try w.search("a") == nil)  // bin-c, which does not list it; bins are terminating
        #expect(w.loads == ["targets", "bin-8", "bin-c"])
    }

    @Test func loaderErrorsEndTheSearch() throws {
        let top = delegationsJSON([("missing", [k], false, ["*"], nil)])
        var w = try SearchWorld(top: ([:], top), roles: [:])
        expectCourierError(.download) { _ = try w.search("x") }
        var w2 = try SearchWorld(top: ([:], nil), roles: [:])
        expectCourierError(.tufOrder) { _ = try TargetSearch.findTarget("x", in: &w2.set) { _, _, _ in } }
        // The walk: a role asked for and not loaded is the caller's bug.
        var walk = TargetSearch.Walk("x")
        guard case .need(let role, let delegator) = try walk.next(in: w2.set) else {
            Issue.record("no need")
            return
        }
        #expect(role == "targets" && delegator == "root")
        expectCourierError(.tufOrder) { _ = try walk.next(in: w2.set) }
    }
}

@Suite struct PathMatchTests {
    /// (path, pattern, fnmatch.fnmatchcase result from CPython 3.11).
    static let vectors: [(String, String, Bool)] = [
        ("a.txt", "*.txt", true), ("a.TXT", "*.txt", false), ("abc", "a?c", true), ("ac", "a?c", false),
        ("a]", "[]]", false), ("b", "[!]]", true), ("]", "[!]]", false), ("x", "[z-a]", false), ("x", "[!z-a]", true),
        ("-", "[a-]", true), ("b", "[a-c]", true), ("d", "[a-c]", false), ("[", "[", true), ("[a", "[a", true),
        ("ab", "[!a]b", false), ("bb", "[!a]b", true), ("a*b", "a[*]b", true), ("axb", "a[*]b", false),
        ("", "*", true), ("", "", true), ("é", "?", true), ("abc", "*c*", true), ("abc", "a*b*c*d", false),
        ("x-y", "[w-z]-[x-z]", true), ("\\", "[\\]", true), ("a", "[\\a]", true), ("^", "[^]", true),
        ("!", "[!!]", false), ("!", "[!]", false),
    ]

    @Test func fnmatchVectors() {
        for (t, p, want) in Self.vectors {
            #expect(PathMatch.fnmatchcase(Array(t.unicodeScalars), Array(p.unicodeScalars)) == want, "\(t) ~ \(p)")
        }
    }

    @Test func segments() {
        #expect(PathMatch.matches("dir/a.txt", pattern: "dir/*.txt"))
        #expect(!PathMatch.matches("dir/a.txt", pattern: "*.txt"))
        #expect(!PathMatch.matches("dir/sub/a.txt", pattern: "dir/*"))
        #expect(PathMatch.matches("dir/sub/a.txt", pattern: "*/*/*"))
        #expect(!PathMatch.matches("/a", pattern: "a"))
        #expect(PathMatch.matches("/a", pattern: "/a"))
    }

    @Test func succinctBinNames() throws {
        // From python-tuf SuccinctRoles.get_role_for_target.
        let cases: [(String, Int64, String)] = [
            ("files/a.txt", 1, "bin-1"), ("files/a.txt", 4, "bin-8"), ("files/a.txt", 8, "bin-8f"),
            ("files/a.txt", 10, "bin-23f"), ("files/a.txt", 32, "bin-8fe64d21"), ("a", 10, "bin-32a"),
            ("bin/x/y.tar.gz", 10, "bin-36e"), ("bin/x/y.tar.gz", 32, "bin-db9a2ee1"),
        ]
        for (path, bits, want) in cases {
            let s = try SuccinctRoles(
                JSONValue.object([
                    "keyids": .array([]), "threshold": .int(1), "bit_length": .int(bits), "name_prefix": .string("bin"),
                ]))
            #expect(s.roleForTarget(path) == want)
            #expect(s.isDelegatedRole(want))
        }
        let s = try SuccinctRoles(
            JSONValue.object([
                "keyids": .array([]), "threshold": .int(1), "bit_length": .int(10), "name_prefix": .string("bin"),
            ]))
        #expect(!s.isDelegatedRole("bin-400"))  // 1024 bins: 0x000…0x3ff
        #expect(!s.isDelegatedRole("bin-3f"))  // suffix length 3
        #expect(!s.isDelegatedRole("bin-3fg"))
        #expect(!s.isDelegatedRole("bim-3ff"))
        #expect(s.isDelegatedRole("bin-3ff"))
    }
}
