import CourierCore
import Testing

/// The diagnose archive's redaction, as a table: what goes in, what support sees. Each secret
/// is a distinct string so that a miss names itself.
@Suite struct RedactorTests {
    static let configCases: [(String, String)] = [
        ("proxy_password = \"S1\"", "proxy_password = \"<redacted>\""),
        ("password='S2' # note", "password='<redacted>' # note"),
        ("http.proxy_password = \"S3\"", "http.proxy_password = \"<redacted>\""),
        ("\"client_secret\" = \"S4\"", "\"client_secret\" = \"<redacted>\""),
        (
            "headers = { Authorization = \"Bearer S5\", Accept = \"*/*\" }",
            "headers = { Authorization = \"<redacted>\", Accept = \"*/*\" }"
        ),
        ("Authorization = \"Basic S6\"", "Authorization = \"<redacted>\""),
        ("proxy = \"http://u:S7@proxy:3128\"", "proxy = \"http://<redacted>@proxy:3128\""),
        ("url = \"https://S8@example.org/x\"", "url = \"https://<redacted>@example.org/x\""),
        ("url = \"https://mirror/x?access_token=S9&v=1\"", "url = \"https://mirror/x?access_token=<redacted>&v=1\""),
        (
            "apply_command = \"curl -H 'Authorization: Bearer S10' http://h/\"",
            "apply_command = \"curl -H 'Authorization: <redacted>' http://h/\""
        ),
        ("test_command = [\"tool\", \"--token=S11\"]", "test_command = [\"tool\", \"--token=<redacted>\"]"),
        ("api_key = 12345", "api_key = <redacted>"),
        // Tab-aligned files: the redactor sees the tab itself (diagnose redacts before it escapes).
        ("proxy_password\t= \"S13\"", "proxy_password\t= \"<redacted>\""),
        ("password =\t\"S14\"", "password =\t\"<redacted>\""),
        // JSON inside a JSON string (a reason quoting a command's output).
        (
            "\"reason\": \"exited 1: {\\\"password\\\":\\\"S15\\\"}\"",
            "\"reason\": \"exited 1: {\\\"password\\\":<redacted>}\""
        ),
        ("# token = \"S12\"", "# token = \"<redacted>\""),
        // Paths to secrets are kept: support needs to know where they are.
        ("ca_file = \"/etc/ssl/ca.pem\"", "ca_file = \"/etc/ssl/ca.pem\""),
        ("key = \"/etc/courier/stage.key\"", "key = \"/etc/courier/stage.key\""),
        ("vendor_key = \"vendor.pub\"", "vendor_key = \"vendor.pub\""),
        ("proxy_user = \"squid\"", "proxy_user = \"squid\""),
        ("inbox = \"/var/lib/courier/inbox\"", "inbox = \"/var/lib/courier/inbox\""),
    ]

    @Test(arguments: configCases) func configLine(_ c: (String, String)) {
        let r = Redactor.config(c.0)
        #expect(r.text == c.1)
        #expect(r.count == (c.0 == c.1 ? 0 : 1))
    }

    @Test func multiLineSecretsKeepTheirLines() {
        let text = """
            [source]
            password = \"\"\"
            S20
            S21\"\"\"
            tokens = [
              "S22",
              "S23",
            ]
            after = "kept"
            """
        let r = Redactor.config(text)
        for s in ["S20", "S21", "S22", "S23"] { #expect(!r.text.contains(s), "\(s) in \(r.text)") }
        #expect(
            r.text.split(separator: "\n", omittingEmptySubsequences: false).count
                == text.split(separator: "\n", omittingEmptySubsequences: false).count)
        #expect(r.text.hasSuffix("after = \"kept\""))
    }

    @Test func privateKeysAreCutFromAnyText() {
        let text = """
            -----BEGIN OPENSSH PRIVATE KEY-----
            S30line1
            S31line2
            -----END OPENSSH PRIVATE KEY-----
            courier-ed25519-secret-v1 S32base64seed=
            ok line
            """
        let r = Redactor.text(text)
        for s in ["S30", "S31", "S32"] { #expect(!r.text.contains(s)) }
        #expect(r.text.contains("-----BEGIN OPENSSH PRIVATE KEY-----"))
        #expect(r.text.contains("-----END OPENSSH PRIVATE KEY-----"))
        #expect(r.text.hasSuffix("ok line"))
        #expect(r.count == 3)
    }

    /// A key written on one line (a TOML or JSON string with `\n` escapes): the line goes, and
    /// the lines after it stay (no "inside a key" state left open).
    @Test func aPrivateKeyOnOneLineIsCutWhole() {
        let text = "key = \"-----BEGIN PRIVATE KEY-----\\nS33body\\n-----END PRIVATE KEY-----\"\nafter = \"visible\""
        let r = Redactor.config(text)
        #expect(!r.text.contains("S33"), "\(r.text)")
        #expect(r.text.hasSuffix("after = \"visible\""), "\(r.text)")
        #expect(r.count == 1)
    }

    @Test func logLinesLoseCredentialsButKeepTheirShape() {
        let line =
            "2026-11-29T10:00:00Z courier-stage[1] warning: via http://squid:S40@10.0.0.1:3128: 407 password=S41 X-Auth-Token: S42"
        let r = Redactor.text(line)
        for s in ["S40", "S41", "S42"] { #expect(!r.text.contains(s), "\(r.text)") }
        #expect(
            r.text.hasPrefix("2026-11-29T10:00:00Z courier-stage[1] warning: via http://<redacted>@10.0.0.1:3128: 407"))
        // Already redacted text stays as it is (a second pass changes nothing).
        let again = Redactor.text(r.text)
        #expect(again.text == r.text && again.count == 0)
    }
}
