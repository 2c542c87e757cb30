import CourierCore
import Testing

/// Issue #17.5: one copy of each helper. Each rule of the copies they replace is checked here,
/// and where two copies differed, the case that made them differ.
@Suite struct SharedHelperTests {
    @Test func trimmingAnySetAtBothEnds() {
        #expect("  a b  ".trimming(" ") == "a b")
        #expect(" \t42\n".trimming(" \n\t") == "42")  // /proc values (InotifySys)
        #expect("\t x \t".trimming(" \t") == "x")  // header values (the fetcher's trimmedBlanks)
        #expect("\"key\"".trimming(" \t\"'") == "key")  // TOML key parts (TOMLLocator)
        #expect("x\r".trimming(" \t\r") == "x")
        #expect("   ".trimming(" ") == "")
        #expect("".trimming(" ") == "")
        #expect("a\tb".trimming(" ") == "a\tb")  // only the ends
        let sub = "[ab ]".dropFirst().dropLast()
        #expect(sub.trimming(" ") == "ab")  // Substring too (TrustStore's copy)
    }

    @Test func urlRedactionRemovesUserinfo() {
        #expect(URLRedaction.redact("http://u:p@h/x") == "http://***@h/x")
        #expect(URLRedaction.redact("https://token@mirror.example:8443/a") == "https://***@mirror.example:8443/a")
        #expect(URLRedaction.redact("https://mirror.example/a") == "https://mirror.example/a")
        #expect(URLRedaction.redact("http://u:p@h") == "http://***@h")
    }

    /// URLSource's copy took the *first* `@` and left `ss@` of the password `p@ss` in the log;
    /// the stricter rule (the fetcher's) takes the last one before the path.
    @Test func urlRedactionTakesTheLastAtOfTheAuthority() {
        #expect(URLRedaction.redact("https://u:p@ss@h/x") == "https://***@h/x")
        #expect(URLRedaction.redact("https://u:p@ss@h?q=1") == "https://***@h?q=1")
    }

    /// URLSource's copy redacted `?mail=a@b` as if it were userinfo, and left text without
    /// `://` as it was, password and all.
    @Test func urlRedactionOutsideTheAuthority() {
        #expect(URLRedaction.redact("https://h/p?mail=a@b") == "https://h/p?mail=a@b")
        #expect(URLRedaction.redact("https://h?mail=a@b") == "https://h?mail=a@b")
        #expect(URLRedaction.redact("https://h#frag@x") == "https://h#frag@x")
        #expect(URLRedaction.redact("u:secret@proxy:3128") == "***@proxy:3128")
        #expect(URLRedaction.redact("proxy:3128") == "proxy:3128")
        #expect(URLRedaction.redact("") == "")
    }

    /// The config's parser and `courier-stage fetch --max-bytes`'s were two; both sets of words.
    @Test func sizes() {
        #expect(SizeParser.bytes("1048576") == 1_048_576)
        #expect(SizeParser.bytes("512K") == 512 << 10)
        #expect(SizeParser.bytes("64m") == 64 << 20)
        #expect(SizeParser.bytes("2G") == 2 << 30)
        #expect(SizeParser.bytes("1T") == 1 << 40)
        #expect(SizeParser.bytes("500MiB") == 500 << 20)
        #expect(SizeParser.bytes("2GB") == 2 << 30)
        #expect(SizeParser.bytes("100B") == 100)
        #expect(SizeParser.bytes(" 5M ") == 5 << 20)
        for bad in ["", "x", "M", "0", "0M", "-1", "-1K", "1.5G", "2X", "9223372036854775807K", "1 G"] {
            #expect(SizeParser.bytes(bad) == nil, "\(bad)")
        }
        #expect(SizeParser.bytes("9223372036854775807") == Int64.max)
    }

    @Test func ages() {
        #expect(humanAge(0) == "0s")
        #expect(humanAge(59) == "59s")
        #expect(humanAge(60) == "1m")
        #expect(humanAge(3599) == "59m")
        #expect(humanAge(3600) == "1h")
        #expect(humanAge(3600 + 20 * 60) == "1h20m")
        #expect(humanAge(47 * 3600) == "1d23h")
        #expect(humanAge(2 * 86400) == "2d")
        #expect(humanAge(2 * 86400 + 5 * 3600 + 59) == "2d5h")
        #expect(humanAge(-30) == "-30s")
    }

    /// The stage metrics and the fleet report wrote the format each in its own way; the stage's
    /// copy did not escape label values at all.
    @Test func prometheusText() {
        var p = PrometheusText()
        p.gauge("courier_x", "An x.", "3")
        p.metric("courier_y", "Per client.", [([("client", "a\"b\\c\nd"), ("type", "t")], "1"), ([], "2")])
        p.metric("courier_empty", "None yet.", type: "counter", [])
        #expect(
            p.text == """
                # HELP courier_x An x.
                # TYPE courier_x gauge
                courier_x 3
                # HELP courier_y Per client.
                # TYPE courier_y gauge
                courier_y{client="a\\"b\\\\c\\nd",type="t"} 1
                courier_y 2
                # HELP courier_empty None yet.
                # TYPE courier_empty counter

                """)
        #expect(PrometheusText.escape("crlf\r\n") == "crlf\r\\n")
        #expect(PrometheusText.escape("café") == "café")
    }
}
