import CourierCore
import CourierDeliver
import CourierTestSupport
import Logging
import Testing

@testable import CourierPull

/// The pure parts of courier-pull: its two configuration files, and the catalog built from a
/// mirror's index.json (untrusted text from the network, whose paths become URLs and file names).
@Suite struct PullConfigTests {
    @Test func pullConfigResolvesPathsAndParsesRates() throws {
        let c = try PullConfig.parse(
            """
            inboxd_config = "inboxd.toml"
            mirrors = ["http://relay.example/courier/", "https://stage.example"]
            bwlimit = "2M"
            splay = "20m"
            types = ["virus-defs"]
            [http]
            proxy = "http://proxy.example:3128"
            proxy_password = "s3cret"
            retry_for = "2m"
            """, path: "/etc/courier/pull.toml")
        #expect(c.inboxdConfig == "/etc/courier/inboxd.toml")
        #expect(c.mirrors == ["http://relay.example/courier", "https://stage.example"])
        #expect(c.bwlimit == 2 << 20)
        #expect(c.splay == 1200)
        #expect(c.http.retryFor == 120)
        let p = try c.http.policy(stateDir: "/tmp/x", throttle: nil, program: "courier-pull")
        #expect(p.proxy?.password == "s3cret")
        #expect(!"\(p.proxy!)".contains("s3cret"), "the proxy's description must not show its password")
        // No user_agent: the program's name and Courier's version (#17.5: one version string).
        #expect(p.userAgent == "courier-pull/\(CourierVersion.string)")
    }

    @Test(arguments: [
        ("mirrors = [\"http://a\"]\n", "needs 'inboxd_config'"),
        ("inboxd_config = \"i.toml\"\n", "'mirrors' needs at least one URL"),
        ("inboxd_config = \"i.toml\"\nmirrors = [\"ftp://a\"]\n", "not an http:// or https:// URL"),
        ("inboxd_config = \"i.toml\"\nmirrors = [\"http://a\"]\nbwlimit = \"fast\"\n", "'bwlimit'"),
        ("inboxd_config = \"i.toml\"\nmirrors = [\"http://a\"]\nbwlimit = \"0\"\n", "'bwlimit'"),
        (
            "inboxd_config = \"i.toml\"\nmirrors = [\"http://a\"]\nmirror = [\"http://a\"]\n",
            "'mirror' is not a known key"
        ),
        (
            "inboxd_config = \"i.toml\"\nmirrors = [\"http://a\"]\n[http]\nca_mode = \"replace\"\n",
            "needs ca_file or ca_dir"
        ),
        ("inboxd_config = \"i.toml\"\nmirrors = [\"http://a\"]\ntypes = [\"../x\"]\n", "'types'"),
    ])
    func badPullConfigsNameFileLineAndKey(text: String, needle: String) {
        let e = expectCourierError(.config, needle) { _ = try PullConfig.parse(text, path: "/etc/courier/pull.toml") }
        #expect(e?.message.hasPrefix("/etc/courier/pull.toml") == true, "\(String(describing: e))")
    }

    @Test func relayConfigDefaults() throws {
        let c = try RelayConfig.parse(
            "root = \"mirror\"\nupstream = [\"http://stage\"]\ntrust = \"k.pub\"\n", path: "/srv/relay/relay.toml")
        #expect(c.root == "/srv/relay/mirror")
        #expect(c.trust == "/srv/relay/k.pub")
        #expect(c.revisions == 3)
        #expect(c.types.isEmpty)
        #expect(throws: CourierError.self) {
            try RelayConfig.parse("root = \"m\"\nupstream = [\"http://s\"]\n", path: "r.toml")
        }
        #expect(throws: CourierError.self) {
            try RelayConfig.parse(
                "root = \"m\"\nupstream = [\"http://s\"]\ntrust = \"k\"\nrevisions = 0\n", path: "r.toml")
        }
    }
}

@Suite struct IndexCatalogTests {
    /// One package entry as index.json writes it.
    static func pkg(_ file: String, _ kind: String, base: UInt64? = nil, size: Int64) -> String {
        "{\"file\":\"\(file)\",\"kind\":\"\(kind)\",\(base.map { "\"base\":\($0)," } ?? "")\"size\":\(size),\"sha256\":\"\(String(repeating: "0", count: 64))\"}"
    }

    /// An index with 20261120001 (a full package) and `revision` with `packages`, decoded as pull
    /// decodes what a mirror sends.
    static func index(_ packages: [String], revision: UInt64 = 20_261_121_001, latest: UInt64? = 20_261_121_001)
        -> OutboxIndex
    {
        let text = """
            {"format":1,"generated":"2026-11-29T00:00:00Z","types":{"virus-defs":{\(latest.map { "\"latest\":\($0)," } ?? "")"revisions":[
            {"revision":20261120001,"created":"x","files":1,"bytes":1,"packages":[\(pkg("virus-defs/20261120001/virus-defs_20261120001.cpkg", "full", size: 1000))]},
            {"revision":\(revision),"created":"x","files":1,"bytes":1,"packages":[\(packages.joined(separator: ","))]}]}}}
            """
        return try! OutboxIndex.decode(Array(text.utf8), path: "index.json")
    }

    @Test func fullAndSmallDeltaAreOffered() {
        let c = Catalog(
            index: Self.index([
                Self.pkg("virus-defs/20261121001/virus-defs_20261121001.cpkg", "full", size: 1000),
                Self.pkg(
                    "virus-defs/20261121001/virus-defs_20261121001_from_20261120001.cpkg", "delta",
                    base: 20_261_120_001, size: 100),
            ]))
        let e = c.types["virus-defs"]!
        #expect(e.latest == 20_261_121_001)
        #expect(e.revisions[20_261_121_001]?.full == "virus-defs/20261121001/virus-defs_20261121001.cpkg")
        #expect(
            e.revisions[20_261_121_001]?.deltas[20_261_120_001]
                == "virus-defs/20261121001/virus-defs_20261121001_from_20261120001.cpkg")
        // The decision push and select make, from this catalog.
        var st = ClientStatus.TypeStatus()
        st.installed = 20_261_120_001
        let d = Planner.decide(type: "virus-defs", want: .latest, catalog: c, status: st, statusNote: nil, waiting: [])
        #expect(
            d.action == .delta && d.package == "virus-defs/20261121001/virus-defs_20261121001_from_20261120001.cpkg")
    }

    /// Paths that leave the type's directory, names of another type or revision, a delta no
    /// smaller than its full package, a latest that is not listed: all ignored.
    @Test func hostileOrUselessEntriesAreIgnored() {
        let c = Catalog(
            index: Self.index([
                Self.pkg("virus-defs/20261121001/../../../etc/virus-defs_20261121001.cpkg", "full", size: 1000),
                Self.pkg(
                    "virus-defs/20261121001/virus-defs_20261121001_from_20261120001.cpkg", "delta",
                    base: 20_261_120_001, size: 100),
            ]))
        #expect(
            c.types["virus-defs"]?.revisions[20_261_121_001] == nil,
            "a revision without a sane full package is not offered")
        #expect(c.types["virus-defs"]?.latest == 20_261_120_001)

        let d = Catalog(
            index: Self.index(
                [
                    Self.pkg("virus-defs/20261121001/virus-defs_20261121001.cpkg", "full", size: 1000),
                    Self.pkg(
                        "virus-defs/20261121001/other_20261121001_from_20261120001.cpkg", "delta", base: 20_261_120_001,
                        size: 10),
                    Self.pkg(
                        "virus-defs/20261121001/virus-defs_20261121001_from_20261119001.cpkg", "delta",
                        base: 20_261_120_001, size: 10),
                    Self.pkg(
                        "virus-defs/20261121001/virus-defs_20261121001_from_20261120001.cpkg", "delta",
                        base: 20_261_120_001, size: 1000),
                ], latest: 20_991_231_001))
        let r = d.types["virus-defs"]!.revisions[20_261_121_001]!
        #expect(r.deltas.isEmpty, "\(r.deltas)")
        #expect(
            d.types["virus-defs"]!.latest == 20_261_121_001,
            "a latest the index does not list falls back to the newest listed")
        #expect(
            Catalog.packages(of: Self.index([Self.pkg("/etc/passwd", "full", size: 1)])).keys.sorted()
                == ["virus-defs/20261120001/virus-defs_20261120001.cpkg"])
    }
}

@Suite struct IndexTypeNameTests {
    /// Type keys of a mirror's index that are no type names (a path, `..`) are never used:
    /// they would become directories under the relay's root and parts of URLs.
    @Test func typeKeysThatAreNoNamesAreSkipped() throws {
        let entry = "{\"revisions\":[]}"
        let text =
            "{\"format\":1,\"generated\":\"x\",\"types\":{\"..\":\(entry),\"a/b\":\(entry),\"virus-defs\":\(entry),\"Bad\\u001b[31m\":\(entry)}}"
        let index = try OutboxIndex.decode(Array(text.utf8), path: "index.json")
        #expect(index.types.count == 4)
        #expect(MirrorClient.indexTypes(index, logger: Logger(label: "test")) == ["virus-defs"])
    }
}
