import CourierConfig
import CourierCore
import CourierStage
import Testing

@Suite struct ConfigTests {
    let p = "/etc/courier/stage.toml"

    @Test func fullConfigParses() throws {
        let c = try StageConfig.parse(
            """
            outbox = "/srv/outbox"
            key = "stage.key"
            state_dir = "/var/lib/courier-stage"
            package_lifetime = "14d"
            compression = "gzip"
            max_cycles = 2

            [http]
            proxy = "http://proxy.example:3128"
            proxy_user = "stager"
            proxy_password = "s3cret"
            connect_timeout = "5s"
            read_timeout = 20
            retry_for = "10m"
            max_bytes = "512M"

            [types.virus-defs]
            source = "dir"
            path = "/srv/upstream/virus-defs"
            keep_revisions = 7
            deltas = 2

            [types.ips-rules]
            source = "url"
            url = "https://rules.example/suricata/emerging.rules.tar.gz"
            checksum_url = "https://rules.example/suricata/emerging.rules.tar.gz.md5"

            [types.snapshot]
            source = "dir"
            layout = "snapshot"
            path = "import"
            """, path: p)
        #expect(c.outbox == "/srv/outbox")
        #expect(c.keys == ["/etc/courier/stage.key"])
        #expect(c.lifetime == 14 * 86400)
        #expect(c.compression == .gzip)
        #expect(c.http.retryFor == 600 && c.http.readTimeout == 20 && c.http.maxBytes == 512 << 20)
        #expect(c.types.map(\.name) == ["ips-rules", "snapshot", "virus-defs"])
        let vd = c.types[2]
        #expect(vd.keepRevisions == 7 && vd.deltas == 2)
        #expect(vd.source == .dirRevisions(path: "/srv/upstream/virus-defs"))
        #expect(c.types[1].source == .dirSnapshot(path: "/etc/courier/import"))
        guard case .url(let u) = c.types[0].source else {
            Issue.record("not a url source")
            return
        }
        #expect(u.unpack && u.fileName == "emerging.rules.tar.gz" && u.checksumURL != nil)
        #expect(c.types[0].keepRevisions == 5 && c.types[0].deltas == 3)
    }

    let base = "outbox = \"/o\"\nkey = \"/k\"\n"

    @Test(arguments: [
        (
            "outbox = \"/o\"\nkey = \"/k\"\nretention = 3\n[types.a]\nsource = \"dir\"\npath = \"/x\"\n",
            "stage.toml:3: 'retention' is not a known key"
        ),
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[types.a]\nsource = \"dir\"\npath = \"/x\"\nkeep = 3\n",
            "stage.toml:6: 'types.a.keep' is not a known key"
        ),
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[types.a]\nsource = \"ftp\"\n",
            "stage.toml:4: 'types.a.source' must be 'dir', 'url' or 'tuf'"
        ),
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[types.a]\nsource = \"dir\"\npath = \"/x\"\nkeep_revisions = 0\n",
            "stage.toml:6: 'types.a.keep_revisions' must be an integer from 1 to 1000"
        ),
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[http]\nretry_for = \"soon\"\n[types.a]\nsource = \"dir\"\npath = \"/x\"\n",
            "stage.toml:4: 'http.retry_for' must be a duration"
        ),
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[types.Bad]\nsource = \"dir\"\npath = \"/x\"\n",
            "stage.toml:3: 'types.Bad' content type 'Bad'"
        ),
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[types.a]\nsource = \"url\"\nurl = \"ftp://x\"\n",
            "stage.toml:5: 'types.a.url' must start with http"
        ),
        ("outbox = \"/o\"\nkey = \"/k\"\n[types.a]\nsource = \"dir\"\n", "'types.a.source' a dir source needs 'path'"),
        ("outbox = \"/o\"\nkey = \"/k\"\n", "declares no content type"),
        ("key = \"/k\"\n[types.a]\nsource = \"dir\"\npath = \"/x\"\n", "needs 'outbox'"),
        ("outbox = \"/o\"\nkey = \"/k\"\n[types.a\nsource = \"dir\"\n", "stage.toml:3:"),
        // A header starting with a character no key may start with aborted toml++ (make fuzz).
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[\u{e9}types.a]\nsource = \"dir\"\n",
            "stage.toml:3: Error while parsing key: expected bare key starting character"
        ),
        ("outbox = \"/o\"\nkey = \"/k\"\n[[\u{fffd}]]\n", "stage.toml:3:"),
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[types.a]\nsource = \"url\"\nurl = \"http://x/y\"\nsignature_url = \"http://x/y.sig\"\n",
            "signature_url and vendor_key go together"
        ),
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[types.a]\nsource = \"tuf\"\ntargets_url = \"https://v/t\"\ntrusted_root = \"/r.json\"\ntargets = [\"a\"]\n",
            "a tuf source needs 'metadata_url'"
        ),
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[types.a]\nsource = \"tuf\"\nmetadata_url = \"https://v.example/metadata\"\ntargets_url = \"https://v.example/targets\"\ntargets = [\"a\"]\n",
            "needs 'trusted_root'"
        ),
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[types.a]\nsource = \"tuf\"\nmetadata_url = \"https://v.example/metadata\"\ntargets_url = \"https://v.example/targets\"\ntrusted_root = \"/r.json\"\n",
            "give 'targets' (a list of target paths) or 'target_pattern', one of the two"
        ),
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[types.a]\nsource = \"tuf\"\nmetadata_url = \"https://v.example/metadata\"\ntargets_url = \"https://v.example/targets\"\ntrusted_root = \"/r.json\"\ntargets = [\"a\"]\ntarget_pattern = \"*\"\n",
            "one of the two"
        ),
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[types.a]\nsource = \"tuf\"\nmetadata_url = \"https://v.example/metadata\"\ntargets_url = \"https://v.example/targets\"\ntrusted_root = \"/r.json\"\ntargets = [\"../etc/passwd\"]\n",
            "'types.a.targets' '../etc/passwd': '..' component in path"
        ),
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[types.a]\nsource = \"tuf\"\nmetadata_url = \"https://v.example/metadata\"\ntargets_url = \"https://v.example/targets\"\ntrusted_root = \"/r.json\"\ntargets = [\"a\"]\nurl = \"https://x/y\"\n",
            "'types.a.url' does not apply to a tuf source"
        ),
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[types.a]\nsource = \"tuf\"\nmetadata_url = \"ftp://v/m\"\ntargets_url = \"https://v/t\"\ntrusted_root = \"/r.json\"\ntargets = [\"a\"]\n",
            "'types.a.metadata_url' must be an http:// or https:// URL"
        ),
        (
            "outbox = \"/o\"\nkey = \"/k\"\n[types.a]\nsource = \"dir\"\npath = \"/x\"\ntrusted_root = \"/r.json\"\n",
            "'types.a.trusted_root' applies to tuf sources only"
        ),
    ])
    func badConfigsNameFileLineAndKey(text: String, reason: String) {
        expectCourierError(.config, reason) { _ = try StageConfig.parse(text, path: "/etc/courier/stage.toml") }
    }

    @Test func tufSourceParses() throws {
        let c = try StageConfig.parse(
            """
            outbox = "/o"
            key = "/k"
            [types.ids-rules]
            source = "tuf"
            metadata_url = "https://updates.vendor.example/metadata"
            targets_url = "https://updates.vendor.example/targets/"
            trusted_root = "vendor-root.json"
            target_pattern = "rules/*"
            revision_key = "revision"
            max_rate = "1M"
            """, path: p)
        guard case .tuf(let s) = c.types[0].source else {
            Issue.record("not a tuf source")
            return
        }
        #expect(s.metadataURL == "https://updates.vendor.example/metadata/")
        #expect(s.targetsURL == "https://updates.vendor.example/targets/")
        #expect(s.trustedRoot == "/etc/courier/vendor-root.json")
        #expect(s.targetPattern == "rules/*" && s.targets.isEmpty && s.revisionKey == "revision")
        #expect(s.transfer.maxRate == 1 << 20)
    }

    @Test func missingFileIsAConfigError() {
        expectCourierError(.config, "/nowhere/stage.toml: cannot read") {
            _ = try StageConfig.load("/nowhere/stage.toml")
        }
    }

    /// stage.toml's limits (issue #17.6): max_tree_bytes and delta_window over the defaults, bad
    /// values naming file, line and key.
    @Test func limitsParse() throws {
        let base = "outbox = \"/o\"\nkey = \"/k\"\n[types.a]\nsource = \"dir\"\npath = \"/x\"\n"
        let c = try StageConfig.parse("max_tree_bytes = \"2G\"\n" + base, path: "/etc/courier/stage.toml")
        #expect(c.limits.maxTotalBytes == 2 << 30)
        #expect(c.limits.maxDeltaWindow == Limits().maxDeltaWindow)
        #expect(try StageConfig.parse(base, path: "/s.toml").limits == Limits())
        expectCourierError(.config, "/s.toml:1: 'max_tree_bytes' must be a size") {
            _ = try StageConfig.parse("max_tree_bytes = \"big\"\n" + base, path: "/s.toml")
        }
        expectCourierError(.config, "/s.toml:1: 'delta_window' must be at least 1 MiB") {
            _ = try StageConfig.parse("delta_window = \"1K\"\n" + base, path: "/s.toml")
        }
    }

    @Test func sizes() {
        #expect(SizeParser.bytes("2G") == 2 << 30)
        #expect(SizeParser.bytes("500MiB") == 500 << 20)
        #expect(SizeParser.bytes("123") == 123)
        #expect(SizeParser.bytes("x") == nil)
        #expect(SizeParser.bytes("-1") == nil)
    }
}
