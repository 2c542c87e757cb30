import CourierCore
import Foundation
import Testing

/// The walker that reads raw tar type flags, fed bytes directly, in pieces of every size.
@Suite struct TarHeaderWalkerTests {
    /// A ustar header block with a valid checksum.
    static func header(_ name: String, flag: UInt8, size: Int, gnu: Bool = false) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        for (i, b) in name.utf8.prefix(100).enumerated() { h[i] = b }
        for (i, b) in Array(String(format: "%011o", size).utf8).enumerated() { h[124 + i] = b }
        h[156] = flag
        let magic = Array((gnu ? "ustar  \0" : "ustar\u{0}00").utf8)
        for (i, b) in magic.enumerated() { h[257 + i] = b }
        for i in 148..<156 { h[i] = 0x20 }
        let sum = h.reduce(0) { $0 + Int($1) }
        for (i, b) in (Array(String(format: "%06o", sum).utf8) + [0, 0x20]).enumerated() { h[148 + i] = b }
        return h
    }

    static func padded(_ d: [UInt8]) -> [UInt8] { d + [UInt8](repeating: 0, count: (512 - d.count % 512) % 512) }

    static func pax(_ records: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (k, v) in records {
            let body = " \(k)=\(v)\n"
            var len = body.utf8.count + 1
            while String(len).utf8.count + body.utf8.count != len { len += 1 }
            out += Array("\(len)\(body)".utf8)
        }
        return out
    }

    func walk(_ stream: [UInt8], piece: Int) -> TarHeaderWalker {
        var w = TarHeaderWalker()
        var i = 0
        while i < stream.count {
            let j = min(stream.count, i + piece)
            stream[i..<j].withUnsafeBytes { w.feed($0) }
            i = j
        }
        return w
    }

    @Test(arguments: [1, 7, 511, 512, 513, 4096])
    func followsPaxLongNamesAndData(piece: Int) {
        let data = [UInt8](repeating: 0x61, count: 700)
        let paxData = Self.pax([("path", "payload/" + String(repeating: "n", count: 150)), ("size", "700")])
        var s = Self.header("PaxHeader/x", flag: UInt8(ascii: "x"), size: paxData.count) + Self.padded(paxData)
        s += Self.header("payload/short", flag: UInt8(ascii: "0"), size: 0)  // size comes from pax
        s += Self.padded(data)
        let second = s.count
        let long = Array("payload/long-gnu-name".utf8)
        s += Self.header("././@LongLink", flag: UInt8(ascii: "L"), size: long.count, gnu: true) + Self.padded(long)
        s += Self.header("payload/trunc", flag: 0, size: 3, gnu: true) + Self.padded([1, 2, 3])
        let third = s.count
        s += Self.header("payload/z", flag: UInt8(ascii: "Z"), size: 0)
        s += [UInt8](repeating: 0, count: 1024) + Array("trailing garbage".utf8)
        var w = walk(s, piece: piece)
        #expect(w.take(at: 0)?.problem == nil)
        #expect(w.take(at: Int64(second))?.typeFlag == 0)
        let z = w.take(at: Int64(third))
        #expect(z?.problem?.contains("type flag 'Z' is not allowed") == true)
        #expect(w.firstProblem == z?.problem)
    }

    @Test func refusesSparseAndGlobalHeadersThatReadersDisagreeOn() {
        for records in [[("GNU.sparse.map", "0,1")], [("GNU.sparse.size", "5")]] {
            let d = Self.pax(records)
            var w = walk(Self.header("P", flag: UInt8(ascii: "x"), size: d.count) + Self.padded(d), piece: 100)
            #expect(w.take(at: 0)?.problem?.contains("GNU sparse") == true)
        }
        for key in ["path", "size", "linkpath", "hdrcharset"] {
            let d = Self.pax([(key, "1")])
            var w = walk(Self.header("G", flag: UInt8(ascii: "g"), size: d.count) + Self.padded(d), piece: 100)
            #expect(w.take(at: 0)?.problem?.contains("global header sets") == true)
        }
        var gnu = Self.header("payload/s", flag: UInt8(ascii: "0"), size: 0, gnu: true)
        gnu[482] = 1  // isextended
        var w = walk(gnu, piece: 512)
        #expect(w.take(at: 0)?.problem?.contains("GNU sparse fields") == true)
    }

    @Test func aRecordAtAnotherOffsetIsNotFound() {
        var w = walk(Self.header("payload/a", flag: UInt8(ascii: "0"), size: 1) + Self.padded([1]), piece: 512)
        #expect(w.take(at: 512) == nil)
    }
}
