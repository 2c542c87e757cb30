/// A strict structural check of JSON bytes, run on the manifest before it is decoded.
///
/// JSON decoders disagree on inputs that RFC 8259 leaves open — duplicate keys (Foundation keeps
/// the first, Python the last), a byte-order mark, `9.0` where an integer is meant, `null` where a
/// field should be absent. Two readers of one signed manifest must never see different content,
/// so Courier refuses all of these (docs/FORMAT.md §3): a pure, allocation-light scanner.
///
/// It also counts the elements of every array and refuses (`.limit`) as soon as one holds more
/// than `maxArrayElements`: the scan is cheap, decoding is not (a FileEntry per element), so a
/// bound on the number of files must bite here, before the decoder runs (issue #11.6).
public enum StrictJSON {
    /// A string's raw bytes (between the quotes) unescaped, as a decoder reads them.
    static func unescaped(_ raw: ArraySlice<UInt8>, what: String) throws -> ArraySlice<UInt8> {
        var p = CompactFileList.Parser(b: [0x22] + raw + [0x22])
        do { return try p.string() } catch let e as CourierError {
            throw CourierError(.malformed, "\(what): key: \(e.message)")
        }
    }

    public static func check(_ b: [UInt8], what: String, maxArrayElements: Int = Int.max) throws {
        var i = 0
        func fail(_ why: String) -> CourierError {
            CourierError(.malformed, "\(what): \(why) at byte \(i)")
        }
        func ws() { while i < b.count, b[i] == 0x20 || b[i] == 0x0a || b[i] == 0x0d || b[i] == 0x09 { i += 1 } }
        func string() throws -> ArraySlice<UInt8> {
            guard i < b.count, b[i] == 0x22 else { throw fail("expected a string") }
            i += 1
            let start = i
            while i < b.count {
                let c = b[i]
                if c == 0x22 {
                    let s = b[start..<i]
                    i += 1
                    return s
                }
                if c < 0x20 { throw fail("control character in a string") }
                if c == 0x5c {
                    i += 1
                    guard i < b.count else { break }
                    if b[i] == 0x75 { i += 4 }
                }
                i += 1
            }
            throw fail("unterminated string")
        }
        func value(depth: Int) throws {
            guard depth < 64 else { throw fail("nested too deeply") }
            ws()
            guard i < b.count else { throw fail("unexpected end") }
            switch b[i] {
            case 0x7b:  // {
                i += 1
                ws()
                // Most objects have a handful of keys: a scan beats hashing them (100,000 file
                // objects in a big manifest); past 16 keys, a set.
                var keys: [ArraySlice<UInt8>] = []
                var keySet: Set<ArraySlice<UInt8>>? = nil
                if i < b.count, b[i] == 0x7d {
                    i += 1
                    return
                }
                while true {
                    ws()
                    // Compared unescaped: "\u0066iles" is the key "files" to every decoder, so
                    // it must be a duplicate of "files" here too.
                    let raw = try string()
                    let k = raw.contains(0x5c) ? try StrictJSON.unescaped(raw, what: what) : raw
                    let repeated: Bool
                    if keySet != nil {
                        repeated = !keySet!.insert(k).inserted
                    } else {
                        repeated = keys.contains(k)
                        keys.append(k)
                        if keys.count == 16 { keySet = Set(keys) }
                    }
                    if repeated { throw fail("duplicate key \"\(Escape.bytes(k))\"") }
                    ws()
                    guard i < b.count, b[i] == 0x3a else { throw fail("expected ':'") }
                    i += 1
                    try value(depth: depth + 1)
                    ws()
                    guard i < b.count else { throw fail("unexpected end") }
                    if b[i] == 0x2c {
                        i += 1
                        continue
                    }
                    if b[i] == 0x7d {
                        i += 1
                        return
                    }
                    throw fail("expected ',' or '}'")
                }
            case 0x5b:  // [
                i += 1
                ws()
                if i < b.count, b[i] == 0x5d {
                    i += 1
                    return
                }
                var elements = 0
                while true {
                    elements += 1
                    if elements > maxArrayElements {
                        throw CourierError(
                            .limit, "\(what): an array has more than \(maxArrayElements) elements at byte \(i)")
                    }
                    try value(depth: depth + 1)
                    ws()
                    guard i < b.count else { throw fail("unexpected end") }
                    if b[i] == 0x2c {
                        i += 1
                        continue
                    }
                    if b[i] == 0x5d {
                        i += 1
                        return
                    }
                    throw fail("expected ',' or ']'")
                }
            case 0x22:
                _ = try string()
            case 0x2d, 0x30...0x39:
                if b[i] == 0x2d { throw fail("negative number") }
                let start = i
                while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
                if i < b.count, b[i] == 0x2e || b[i] == 0x65 || b[i] == 0x45 {
                    throw fail("number that is not a plain integer")
                }
                if i - start > 1 && b[start] == 0x30 { throw fail("number with a leading zero") }
            case 0x74:  // true
                guard b[i...].starts(with: [0x74, 0x72, 0x75, 0x65]) else { throw fail("invalid literal") }
                i += 4
            case 0x66:  // false
                guard b[i...].starts(with: [0x66, 0x61, 0x6c, 0x73, 0x65]) else { throw fail("invalid literal") }
                i += 5
            case 0x6e:
                throw fail("null (leave the key out instead)")
            default:
                throw fail("unexpected character")
            }
        }
        if b.starts(with: [0xef, 0xbb, 0xbf]) { throw fail("byte-order mark") }
        ws()
        guard i < b.count, b[i] == 0x7b else { throw fail("not a JSON object") }
        try value(depth: 0)
        ws()
        if i != b.count { throw fail("trailing bytes after the object") }
    }
}
