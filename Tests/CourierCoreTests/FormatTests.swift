import CourierCore
import Testing

@Suite struct FormatTests {
    @Test func typeNames() throws {
        for ok in ["virus-defs", "ips-rules", "yara.community", "a", "0day_feed"] { try Names.validateType(ok) }
        for bad in ["", "Virus", "-x", ".x", "a/b", "a b", String(repeating: "a", count: 65), "ü"] {
            #expect(throws: CourierError.self) { try Names.validateType(bad) }
        }
    }

    @Test func paths() {
        #expect(Names.pathProblem("a/b/c.cvd") == nil)
        #expect(Names.pathProblem("") == "empty path")
        #expect(Names.pathProblem("/etc/passwd") == "absolute path")
        #expect(Names.pathProblem("a/../b") == "'..' component in path")
        #expect(Names.pathProblem("./a") == "'.' component in path")
        #expect(Names.pathProblem("a//b") == "empty path component ('//')")
        #expect(Names.pathProblem("a/") == "path ends with '/'")
        #expect(Names.pathProblem("a\u{1}b") == "control character in path")
        #expect(Names.pathProblem("a\\b") == "backslash in path")
        #expect(Names.pathProblem(String(repeating: "x", count: 256)) == "path component longer than 255 bytes")
        #expect(
            Names.pathProblem(Array(repeating: "abcdefgh", count: 200).joined(separator: "/"))
                == "path longer than 1024 bytes")
    }

    @Test func revisions() {
        #expect(Names.parseRevision("20261121001") == 20_261_121_001)
        #expect(Names.parseRevision("1") == 1)
        #expect(Names.parseRevision("007") == nil)
        #expect(Names.parseRevision("-1") == nil)
        #expect(Names.parseRevision("12a") == nil)
        #expect(Names.parseRevision("99999999999999999999") == nil)  // over 2^64
        #expect(Names.defaultRevision(unixTime: 1_795_305_600, sequence: 17) == 20_261_122_017)
    }

    @Test func packageFileNames() {
        #expect(Names.fullPackageName(type: "virus-defs", revision: 5) == "virus-defs_5.cpkg")
        #expect(
            Names.parsePackageFileName("virus-defs_20261121001.cpkg")
                == .init(type: "virus-defs", revision: 20_261_121_001, base: nil))
        #expect(Names.parsePackageFileName("ips_rules_7_from_6.cpkg") == .init(type: "ips_rules", revision: 7, base: 6))
        #expect(Names.parsePackageFileName(".virus-defs_1.cpkg.XyZ12") == nil)
        #expect(Names.parsePackageFileName(".virus-defs_1.cpkg") == nil)
        #expect(Names.parsePackageFileName("virus-defs_1.cpkg.partial") == nil)
        #expect(Names.parsePackageFileName("README.txt") == nil)
        #expect(Names.parsePackageFileName("Bad_1.cpkg") == nil)
    }

    @Test func rfc3339RoundTrips() {
        for t: Int64 in [0, 1, 951_782_400, 1_790_000_000, 4_102_444_800, -86_400] {
            #expect(RFC3339.parse(RFC3339.format(t)) == t)
        }
        #expect(RFC3339.format(1_790_000_000) == "2026-09-21T14:13:20Z")
        #expect(RFC3339.parse("2026-02-30T00:00:00Z") == nil)
        #expect(RFC3339.parse("2026-09-21T14:13:20+01:00") == nil)
        #expect(RFC3339.parse("2026-09-21 14:13:20Z") == nil)
    }

    @Test func durations() {
        #expect(DurationParser.seconds("90") == 90)
        #expect(DurationParser.seconds("15m") == 900)
        #expect(DurationParser.seconds("1h30m") == 5400)
        #expect(DurationParser.seconds("30d") == 2_592_000)
        #expect(DurationParser.seconds("5x") == nil)
        #expect(DurationParser.seconds("h") == nil)
        #expect(DurationParser.seconds("") == nil)
    }

    func manifest(
        _ files: [FileEntry], kind: Manifest.Kind = .full, base: UInt64? = nil,
        changed: [String]? = nil, removed: [String]? = nil
    ) -> Manifest {
        Manifest(
            type: "t", revision: 10, kind: kind, base: base, created: testNow, expires: testNow + 100,
            provenance: [:], files: files, changed: changed, removed: removed)
    }

    @Test func manifestRules() throws {
        let a = entry("a", bytes("A"))
        let b = entry("b/c", bytes("B"))
        try manifest([a, b]).validate()
        try manifest([a, b], kind: .delta, base: 9, changed: ["a"], removed: ["z"]).validate()

        var m = manifest([a])
        m.format = 2
        expectCourierError(.malformed, "format 2 is for deltas only") { try m.validate() }
        m = manifest([a])
        m.format = 3
        expectCourierError(
            .malformed, "format 3 is newer than this Courier understands (formats 1 to 2); upgrade Courier"
        ) {
            try m.validate()
        }
        m = manifest([a])
        m.revision = 0
        expectCourierError(.malformed, "revision must be a positive") { try m.validate() }
        m = manifest([a])
        m.expires = m.created
        expectCourierError(.malformed, "expires is not after created") { try m.validate() }
        m = manifest([a])
        m.created = "yesterday"
        expectCourierError(.malformed, "created 'yesterday'") { try m.validate() }
        m = manifest([a])
        m.files = [b, a]
        expectCourierError(.malformed, "not sorted") { try m.validate() }
        m = manifest([a])
        m.files = [a, a]
        expectCourierError(.malformed, "listed twice") { try m.validate() }
        m = manifest([a])
        m.files[0].mode = "4755"
        expectCourierError(.malformed, "no setuid") { try m.validate() }
        m = manifest([a])
        m.files[0].sha256 = String(repeating: "A", count: 64)
        expectCourierError(.malformed, "lowercase hex") { try m.validate() }
        m = manifest([entry("x", bytes("1")), entry("x/y", bytes("2"))])
        expectCourierError(.malformed, "listed as a file and as the directory") { try m.validate() }
        m = manifest([entry("../x", bytes("1"))])
        expectCourierError(.malformed, "'..' component") { try m.validate() }
        m = manifest([a], kind: .delta, base: 10, changed: [], removed: [])
        expectCourierError(.malformed, "is not below revision") { try m.validate() }
        m = manifest([a], kind: .delta, base: 9, changed: ["q"], removed: [])
        expectCourierError(.malformed, "changed path 'q' is not among files") { try m.validate() }
        m = manifest([a], kind: .delta, base: 9, changed: [], removed: ["a"])
        expectCourierError(.malformed, "also among files") { try m.validate() }
        m = manifest([a])
        m.base = 3
        expectCourierError(.malformed, "a full package has no base") { try m.validate() }
        expectCourierError(.limit, "more than the limit") { try manifest([a, b]).validate(maxFiles: 1) }
        expectCourierError(.malformed, "not valid JSON") { _ = try Manifest.decode(bytes("{\"format\":1}")) }
    }

    @Test func manifestEncodingRoundTrips() throws {
        let m = manifest([entry("a", bytes("A")), entry("b", bytes("B"), mode: 0o755)])
        let d = try Manifest.decode(m.encoded())
        #expect(d == m)
        #expect(d.files[1].permissions == 0o755)
    }

    @Test func exitCodesAreDocumentedAndDistinct() {
        #expect(ExitStatus.for(.partial) == .partial && ExitStatus.partial.rawValue == 16)
        #expect(ExitStatus.for(.network).rawValue == 18)
        #expect(ExitStatus.for(.proxy).rawValue == 19)
        #expect(ExitStatus.for(.download).rawValue == 9)
        #expect(ExitStatus.for(.locked).rawValue == 17)
        #expect(Set(ExitStatus.allCases.map(\.rawValue)).count == ExitStatus.allCases.count)
    }
}

@Suite struct StrictJSONTests {
    @Test func acceptsWhatCourierWrites() throws {
        try StrictJSON.check(bytes(#"{"a":1,"b":[true,false,"x\"y\u0041"],"c":{"d":0},"e":[]}"#), what: "t")
        try StrictJSON.check(bytes(" {\n \"a\" : 12 }\n"), what: "t")
    }

    @Test(arguments: [
        (#"{"revision":1,"revision":9}"#, "duplicate key \"revision\""),
        (#"{"files":[],"\u0066iles":[]}"#, "duplicate key \"files\""),
        (#"{"a":{"x\/y":1,"x/y":2}}"#, "duplicate key \"x/y\""),
        ("\u{FEFF}{\"a\":1}", "byte-order mark"),
        (#"{"a":9.0}"#, "not a plain integer"),
        (#"{"a":9e0}"#, "not a plain integer"),
        (#"{"a":-1}"#, "negative number"),
        (#"{"a":01}"#, "leading zero"),
        (#"{"base":null}"#, "null"),
        (#"{"a":1} x"#, "trailing bytes"),
        (#"{"a":1"#, "unexpected end"),
        (#"["a"]"#, "not a JSON object"),
        (#"{"a":tru}"#, "invalid literal"),
    ])
    func refuses(input: String, reason: String) {
        expectCourierError(.malformed, reason) { try StrictJSON.check(bytes(input), what: "t") }
    }

    @Test func aSignedManifestWithADuplicateKeyIsRefused() throws {
        let key = SigningKey()
        let w = Workspace("dup")
        let m = Manifest(
            type: "t", revision: 1, kind: .full, created: testNow, expires: testNow + 100, provenance: [:],
            files: [entry("a", bytes("a"))])
        var mb = m.encoded()
        mb.removeLast()  // "}"
        mb += bytes(#","revision":9}"#)
        try craftPackage(at: w.path("p.cpkg"), manifest: m, key: key, manifestBytes: mb) {
            try $0.writeFile(path: "payload/a", bytes: bytes("a"))
        }
        expectCourierError(.malformed, "duplicate key \"revision\"") {
            _ = try PackageVerifier.verify(path: w.path("p.cpkg"), options: verifyOptions([key.publicKey]))
        }
    }
}
