import CourierCore

/// A JSON value as TUF metadata uses it, with a strict parser and securesystemslib's canonical
/// encoder.
///
/// Why a value tree and not `Codable`: a TUF signature covers the canonical JSON of the *whole*
/// `signed` object, including fields this client does not know. Keeping every field as parsed and
/// re-encoding it canonically gives exactly the bytes the repository signed (python-tuf does the
/// same through `unrecognized_fields`).
///
/// Floats are refused: canonical JSON (OLPC / securesystemslib `encode_canonical`) has no floats,
/// so python-tuf refuses such metadata when it re-encodes `signed`; refusing at parse is the same
/// decision, made earlier.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case string(String)
    case array([JSONValue])
    /// Keys are kept as their exact bytes (Swift stores a String's UTF-8 as given). Two keys that
    /// Swift's `String ==` would call equal (Unicode canonical equivalence) are refused as
    /// duplicates by the parser, so a dictionary lookup can never find the "wrong" key; lookups
    /// that matter go through ``subscript(field:)``, which also compares bytes.
    case object([String: JSONValue])

    /// Bounds of the parser: metadata is small; these stop a hostile file from exhausting the
    /// stack (nesting) or memory before any signature is checked.
    public struct Limits: Sendable {
        public var maxBytes: Int
        public var maxDepth: Int
        public init(maxBytes: Int = 64 << 20, maxDepth: Int = 64) {
            self.maxBytes = maxBytes
            self.maxDepth = maxDepth
        }
    }

    /// The member of an object whose key has exactly the bytes of `name`, else nil (also nil for
    /// a non-object). Byte comparison, because `String ==` treats e.g. U+212A KELVIN SIGN as `K`.
    public subscript(field name: String) -> JSONValue? {
        guard case .object(let o) = self, let i = o.index(forKey: name),
            o[i].key.utf8.elementsEqual(name.utf8)
        else { return nil }
        return o[i].value
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    public var intValue: Int64? {
        if case .int(let v) = self { return v }
        return nil
    }
    public var boolValue: Bool? {
        if case .bool(let v) = self { return v }
        return nil
    }
    public var arrayValue: [JSONValue]? {
        if case .array(let v) = self { return v }
        return nil
    }
    public var objectValue: [String: JSONValue]? {
        if case .object(let v) = self { return v }
        return nil
    }

    // MARK: Parsing

    /// Parses `bytes` as one JSON value: UTF-8 validated, no BOM, RFC 8259 grammar, integers only
    /// (within Int64), duplicate keys refused, nesting and size bounded. `what` names the document
    /// in error messages. `limits` has no default (#17.6): the caller passes its configured bounds
    /// (`UpdaterConfig.parseLimits`), or `Limits()` with a word why where nothing configures them.
    public static func parse(_ bytes: [UInt8], what: String = "JSON", limits: Limits) throws -> JSONValue {
        guard bytes.count <= limits.maxBytes else {
            throw CourierError(.limit, "\(what): \(bytes.count) bytes, more than the limit of \(limits.maxBytes)")
        }
        // Python decodes the whole file as UTF-8 first (`raw_data.decode("utf-8")`); so do we.
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw CourierError(.malformed, "\(what): not valid UTF-8")
        }
        var p = Parser(b: bytes, what: what, maxDepth: limits.maxDepth)
        p.ws()
        let v = try p.value(depth: 0)
        p.ws()
        guard p.i == bytes.count else { throw p.fail("trailing data") }
        return v
    }

    struct Parser {
        let b: [UInt8]
        let what: String
        let maxDepth: Int
        var i = 0

        init(b: [UInt8], what: String, maxDepth: Int) {
            self.b = b
            self.what = what
            self.maxDepth = maxDepth
        }

        func fail(_ why: String) -> CourierError { CourierError(.malformed, "\(what): \(why) at byte \(i)") }

        mutating func ws() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0a || b[i] == 0x0d || b[i] == 0x09 { i += 1 }
        }

        mutating func literal(_ s: String, _ v: JSONValue) throws -> JSONValue {
            let lit = Array(s.utf8)
            guard i + lit.count <= b.count else { throw fail("unexpected end") }
            for k in 0..<lit.count where b[i + k] != lit[k] { throw fail("unexpected character") }
            i += lit.count
            return v
        }

        mutating func value(depth: Int) throws -> JSONValue {
            guard depth <= maxDepth else {
                throw CourierError(.limit, "\(what): nested deeper than \(maxDepth) at byte \(i)")
            }
            guard i < b.count else { throw fail("unexpected end") }
            switch b[i] {
            case 0x7b: return try object(depth: depth)
            case 0x5b: return try array(depth: depth)
            case 0x22: return .string(try string())
            case 0x74: return try literal("true", .bool(true))
            case 0x66: return try literal("false", .bool(false))
            case 0x6e: return try literal("null", .null)
            case 0x2d, 0x30...0x39: return .int(try number())
            default: throw fail("unexpected character")
            }
        }

        mutating func object(depth: Int) throws -> JSONValue {
            i += 1
            var o: [String: JSONValue] = [:]
            ws()
            if i < b.count, b[i] == 0x7d {
                i += 1
                return .object(o)
            }
            while true {
                ws()
                guard i < b.count, b[i] == 0x22 else { throw fail("expected a key") }
                let keyAt = i
                let k = try string()
                ws()
                guard i < b.count, b[i] == 0x3a else { throw fail("expected ':'") }
                i += 1
                ws()
                let v = try value(depth: depth + 1)
                // Refused, not "last wins" (Python) or "first wins" (Foundation): two readers of
                // one signed file must never see different content.
                if o.updateValue(v, forKey: k) != nil {
                    throw CourierError(.malformed, "\(what): duplicate key \(Escape.quoted(k)) at byte \(keyAt)")
                }
                ws()
                guard i < b.count else { throw fail("unexpected end") }
                if b[i] == 0x2c {
                    i += 1
                    continue
                }
                if b[i] == 0x7d {
                    i += 1
                    return .object(o)
                }
                throw fail("expected ',' or '}'")
            }
        }

        mutating func array(depth: Int) throws -> JSONValue {
            i += 1
            var a: [JSONValue] = []
            ws()
            if i < b.count, b[i] == 0x5d {
                i += 1
                return .array(a)
            }
            while true {
                ws()
                a.append(try value(depth: depth + 1))
                ws()
                guard i < b.count else { throw fail("unexpected end") }
                if b[i] == 0x2c {
                    i += 1
                    continue
                }
                if b[i] == 0x5d {
                    i += 1
                    return .array(a)
                }
                throw fail("expected ',' or ']'")
            }
        }

        mutating func number() throws -> Int64 {
            let start = i
            var neg = false
            if b[i] == 0x2d {
                neg = true
                i += 1
            }
            guard i < b.count, (0x30...0x39).contains(b[i]) else { throw fail("bad number") }
            if b[i] == 0x30 {
                i += 1
            } else {
                while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }
            }
            if i < b.count, b[i] == 0x2e || b[i] == 0x65 || b[i] == 0x45 {
                throw fail("a non-integer number (canonical JSON has integers only)")
            }
            // Accumulate negatively so that Int64.min parses.
            var v: Int64 = 0
            for k in (neg ? start + 1 : start)..<i {
                let d = Int64(b[k] - 0x30)
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.subtractingReportingOverflow(d)
                guard !o1, !o2 else { throw CourierError(.malformed, "\(what): integer out of range at byte \(start)") }
                v = s
            }
            if neg { return v }
            guard v != Int64.min else {
                throw CourierError(.malformed, "\(what): integer out of range at byte \(start)")
            }
            return -v
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= b.count else { throw fail("short \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]
                guard let n = Hex.digitValue(c) else { throw fail("bad \\u escape") }
                let d = UInt32(n)
                v = v << 4 | d
                i += 1
            }
            return v
        }

        mutating func string() throws -> String {
            i += 1
            // Fast path: no escape before the closing quote (most metadata strings).
            var j = i
            while j < b.count, b[j] != 0x22, b[j] != 0x5c, b[j] >= 0x20 { j += 1 }
            if j < b.count, b[j] == 0x22 {
                defer { i = j + 1 }
                return String(decoding: b[i..<j], as: UTF8.self)
            }
            var out: [UInt8] = Array(b[i..<j])
            i = j
            while true {
                guard i < b.count else { throw fail("unterminated string") }
                let c = b[i]
                if c == 0x22 {
                    i += 1
                    break
                }
                if c < 0x20 { throw fail("control character in string") }
                if c != 0x5c {
                    out.append(c)
                    i += 1
                    continue
                }
                i += 1
                guard i < b.count else { throw fail("unterminated string") }
                let e = b[i]
                i += 1
                switch e {
                case 0x22: out.append(0x22)
                case 0x5c: out.append(0x5c)
                case 0x2f: out.append(0x2f)
                case 0x62: out.append(0x08)
                case 0x66: out.append(0x0c)
                case 0x6e: out.append(0x0a)
                case 0x72: out.append(0x0d)
                case 0x74: out.append(0x09)
                case 0x75:
                    var u = try hex4()
                    if (0xD800...0xDBFF).contains(u) {
                        // A lone surrogate parses in Python but cannot be encoded back to UTF-8,
                        // so python-tuf refuses the file when it re-encodes `signed`.
                        guard i + 6 <= b.count, b[i] == 0x5c, b[i + 1] == 0x75 else { throw fail("lone surrogate") }
                        i += 2
                        let lo = try hex4()
                        guard (0xDC00...0xDFFF).contains(lo) else { throw fail("lone surrogate") }
                        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(u) {
                        throw fail("lone surrogate")
                    }
                    guard let s = Unicode.Scalar(u) else { throw fail("bad \\u escape") }
                    out.append(contentsOf: Array(String(Character(s)).utf8))
                default: throw fail("bad escape")
                }
            }
            // The bytes were validated as UTF-8 and escapes produce whole scalars.
            return String(decoding: out, as: UTF8.self)
        }
    }

    // MARK: Canonical JSON

    /// securesystemslib's `encode_canonical` (OLPC canonical JSON as TUF uses it), as UTF-8:
    /// no whitespace; object keys sorted by Unicode code point (Python's `sorted` on `str`);
    /// strings raw UTF-8 with only `\` and `"` escaped (control characters are written as they
    /// are); integers in decimal. These are the bytes a TUF signature covers.
    public var canonicalBytes: [UInt8] {
        var out: [UInt8] = []
        appendCanonical(to: &out)
        return out
    }

    public func appendCanonical(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: Array("null".utf8))
        case .bool(let v): out.append(contentsOf: Array((v ? "true" : "false").utf8))
        case .int(let v): out.append(contentsOf: Array(String(v).utf8))
        case .string(let s): Self.appendCanonicalString(s, to: &out)
        case .array(let a):
            out.append(0x5b)
            for (n, v) in a.enumerated() {
                if n > 0 { out.append(0x2c) }
                v.appendCanonical(to: &out)
            }
            out.append(0x5d)
        case .object(let o):
            out.append(0x7b)
            // Keys in code-point order: UTF-8 byte order is code-point order, and unlike Swift's
            // `String <` it does not normalise. Sorting the entries (not the keys, then looking
            // each up) avoids hashing every key again, the slow part on large files.
            let entries = o.sorted { a, b in a.key.utf8.lexicographicallyPrecedes(b.key.utf8) }
            for (n, e) in entries.enumerated() {
                if n > 0 { out.append(0x2c) }
                Self.appendCanonicalString(e.key, to: &out)
                out.append(0x3a)
                e.value.appendCanonical(to: &out)
            }
            out.append(0x7d)
        }
    }

    static func appendCanonicalString(_ s: String, to out: inout [UInt8]) {
        out.append(0x22)
        if s.utf8.contains(where: { $0 == 0x5c || $0 == 0x22 }) {
            for c in s.utf8 {
                if c == 0x5c || c == 0x22 { out.append(0x5c) }
                out.append(c)
            }
        } else {
            out.append(contentsOf: s.utf8)
        }
        out.append(0x22)
    }
}
