import CourierCore
import Testing

@testable import CourierTUF

@Suite struct CanonicalJSONTests {
    /// Expected bytes produced by securesystemslib's `encode_canonical` for the same value:
    /// code-point key order (U+FFFF before U+10000, which UTF-16 order would reverse; KELVIN SIGN
    /// after ASCII), only `\` and `"` escaped, control characters raw.
    @Test func matchesSecuresystemslibVector() throws {
        let input =
            #"{"b":1,"a":[true,false,null,-5,0],"c":{"\u00e9":"\"\\","e":"tab\there\nnl\u0001"},"B":{},"\uffff":1,"\ud800\udc00":2,"\u212a":3,"L":4}"#
        let expected: [UInt8] =
            bytes(#"{"B":{},"L":4,"a":[true,false,null,-5,0],"b":1,"c":{"e":"tab"#) + [0x09] + bytes("here") + [0x0a]
            + bytes("nl") + [0x01] + bytes(#"",""#) + [0xc3, 0xa9] + bytes(#"":"\"\\"},""#) + [0xe2, 0x84, 0xaa]
            + bytes(#"":3,""#)
            + [0xef, 0xbf, 0xbf] + bytes(#"":1,""#) + [0xf0, 0x90, 0x80, 0x80] + bytes(#"":2}"#)
        let v = try JSONValue.parse(bytes(input), limits: .init())
        let got = v.canonicalBytes
        #expect(got.count == expected.count)
        // Compared as text so that a failure prints readably.
        #expect(String(decoding: got, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
        #expect(got.elementsEqual(expected))
    }

    @Test func nestedAndEmpty() throws {
        let v = try JSONValue.parse(
            bytes(#" { "z" : [ [ ], { } , "" ] , "y" : { "b" : { "d" : 1 , "c" : 2 } } } "#), limits: .init())
        #expect(String(decoding: v.canonicalBytes, as: UTF8.self) == #"{"y":{"b":{"c":2,"d":1}},"z":[[],{},""]}"#)
    }

    @Test func escapesRoundTrip() throws {
        // "\/" and "\u0041" are read as "/" and "A"; canonical output writes them raw.
        let v = try JSONValue.parse(bytes(#"["\/\u0041\b\f\r", "q\"b\\"]"#), limits: .init())
        #expect(v.canonicalBytes == bytes("[\"/A\u{08}\u{0c}\r\",\"q\\\"b\\\\\"]"))
    }

    @Test func integersAtTheEdges() throws {
        let v = try JSONValue.parse(bytes("[-9223372036854775808, 9223372036854775807, -0]"), limits: .init())
        #expect(String(decoding: v.canonicalBytes, as: UTF8.self) == "[-9223372036854775808,9223372036854775807,0]")
        expectCourierError(.malformed) { _ = try JSONValue.parse(bytes("9223372036854775808"), limits: .init()) }
        expectCourierError(.malformed) { _ = try JSONValue.parse(bytes("-9223372036854775809"), limits: .init()) }
    }
}

@Suite struct JSONParserTests {
    @Test(arguments: [
        #"{"a":1,"a":2}"#,  // duplicate key
        "{\"\u{212A}\":1,\"K\":2}",  // Kelvin sign vs K: Swift's String == would merge them; refused as duplicates
        "1.5", "1e3", "01", "-", "+1", "NaN", "Infinity",
        #"{"a":1,}"#, "[1,]", "[1 2]", #"{"a" 1}"#, "tru", "nul",
        "\u{FEFF}{}",  // BOM
        "{} x",  // trailing data
        #""\ud800""#, #""\udc00x""#, #""\ud800\u0041""#,  // lone surrogates
        "\"a\u{01}b\"",  // raw control character
        #""\x""#, #""\u12""#, "\"abc",
    ])
    func refuses(_ input: String) {
        expectCourierError(.malformed) { _ = try JSONValue.parse(bytes(input), limits: .init()) }
    }

    @Test func refusesInvalidUTF8() {
        expectCourierError(.malformed) { _ = try JSONValue.parse([0x22, 0xff, 0x22], limits: .init()) }
        // A CESU surrogate.
        expectCourierError(.malformed) { _ = try JSONValue.parse([0x22, 0xed, 0xa0, 0x80, 0x22], limits: .init()) }
    }

    @Test func boundsDepthAndSize() throws {
        let deep = String(repeating: "[", count: 70) + String(repeating: "]", count: 70)
        expectCourierError(.limit) { _ = try JSONValue.parse(bytes(deep), limits: .init()) }
        _ = try JSONValue.parse(
            bytes(String(repeating: "[", count: 60) + String(repeating: "]", count: 60)), limits: .init())
        expectCourierError(.limit) { _ = try JSONValue.parse(bytes("[1,2,3]"), limits: .init(maxBytes: 4)) }
    }

    @Test func fieldLookupComparesBytes() throws {
        // "\u212Aeys" (KELVIN SIGN) is == "Keys" for Swift Strings, but is another key in JSON.
        let v = try JSONValue.parse(bytes("{\"\u{212A}ey\":1}"), limits: .init())
        #expect(v[field: "Key"] == nil)
        #expect(v[field: "\u{212A}ey"] == .int(1))
    }

    @Test func keepsExactKeyBytes() throws {
        // NFD "é" stays NFD through parse and canonical encoding (no normalisation).
        let v = try JSONValue.parse(bytes("{\"e\u{0301}\":1}"), limits: .init())
        #expect(v.canonicalBytes == [0x7b, 0x22, 0x65, 0xcc, 0x81, 0x22, 0x3a, 0x31, 0x7d])
    }
}

@Suite struct TUFTimeTests {
    @Test func parsesAsStrptimeDoes() {
        #expect(TUFTime.parse("1970-01-01T00:00:00Z") == 0)
        #expect(TUFTime.parse("2030-01-01T00:00:00Z") == 1_893_456_000)
        #expect(TUFTime.parse("2030-1-1T0:0:0Z") == 1_893_456_000)  // strptime takes one digit
        #expect(TUFTime.parse("2024-02-29T23:59:59Z") == 1_709_251_199)
        #expect(TUFTime.parse("2023-02-29T00:00:00Z") == nil)
        #expect(TUFTime.parse("2030-01-01T00:00:60Z") == nil)
        #expect(TUFTime.parse("2030-01-01T00:00:00+00:00") == nil)
        #expect(TUFTime.parse("2030-01-01T00:00:00.5Z") == nil)
        #expect(TUFTime.parse("0000-01-01T00:00:00Z") == nil)
        #expect(TUFTime.parse("2030-01-01 00:00:00Z") == nil)
    }
}

@Suite struct CanonicalJSONVectorTests {
    /// 300 random documents written by Python's json.dumps and their securesystemslib canonical
    /// form (Fixtures/tuf/canonical_vectors.json, from make_canonical_vectors.py).
    @Test func matchesSecuresystemslibOnRandomDocuments() throws {
        let all = try JSONValue.parse(try fixture("canonical_vectors.json"), limits: .init()).arrayValue!
        #expect(all.count == 300)
        var mismatches = 0
        for (n, v) in all.enumerated() {
            let input = Hex.decode(v[field: "input"]!.stringValue!)!
            let want = Hex.decode(v[field: "canonical"]!.stringValue!)!
            let got = try JSONValue.parse(input, limits: .init()).canonicalBytes
            if got != want {
                mismatches += 1
                Issue.record("vector \(n): got \(String(decoding: got, as: UTF8.self).debugDescription)")
            }
        }
        #expect(mismatches == 0)
    }
}
