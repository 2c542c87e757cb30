import CourierCore
import Testing

/// Issue #11.1: untrusted strings never break a log line or reach a terminal raw.
@Suite struct EscapeTests {
    @Test func controlCharactersAndBackslashes() {
        #expect(Escape.text("plain/name.cvd") == "plain/name.cvd")
        #expect(Escape.text("a\nb") == "a\\nb")
        #expect(Escape.text("a\r\tb") == "a\\r\\tb")
        #expect(Escape.text("\u{1b}[31mred") == "\\x1b[31mred")
        #expect(Escape.text("del\u{7f}") == "del\\x7f")
        #expect(Escape.text("back\\slash") == "back\\\\slash")
        #expect(Escape.text("c1\u{9b}31m") == "c1\\u{9b}31m")
        #expect(Escape.text("rtl\u{202e}txt.exe") == "rtl\\u{202e}txt.exe")
        #expect(Escape.text("ls\u{2028}x") == "ls\\u{2028}x")
        #expect(Escape.text("café") == "café")
        #expect(Escape.quoted("x\ny") == "'x\\ny'")
    }

    @Test func invalidUTF8Bytes() {
        #expect(Escape.bytes(Array("ok".utf8)) == "ok")
        #expect(Escape.bytes([0x61, 0xff, 0x62]) == "a\\xffb")
        #expect(Escape.bytes([0xc3, 0xa9, 0xc3]) == "é\\xc3")  // truncated sequence
        #expect(Escape.bytes([0xc0, 0xaf]) == "\\xc0\\xaf")  // overlong '/'
        #expect(Escape.bytes([0xed, 0xa0, 0x80]) == "\\xed\\xa0\\x80")  // surrogate
        #expect(Escape.bytes([0x0a, 0x1b]) == "\\n\\x1b")
    }

    @Test func sinkPassKeepsBackslashes() {
        #expect(Escape.line("already \\n escaped\nforged") == "already \\n escaped\\nforged")
        #expect(Escape.lines("one\u{1b}\ntwo") == "one\\x1b\ntwo")
    }

    @Test func escapedTextHasNoControlCharacters() {
        var all = ""
        for v in 0..<0x2100 { if let u = Unicode.Scalar(v) { all.unicodeScalars.append(u) } }
        let e = Escape.text(all) + Escape.bytes((0...255).map { UInt8($0) })
        #expect(!e.unicodeScalars.contains { $0.value < 0x20 || ($0.value >= 0x7f && $0.value <= 0x9f) })
    }
}
