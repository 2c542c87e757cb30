@preconcurrency import Glibc

/// A manifest's `files` list read straight from the manifest bytes into a compact table: every
/// path's bytes in one arena, the 32 digest bytes inline, size and mode — about 46 bytes per file
/// plus its path, where `[FileEntry]` from JSONDecoder costs about 250 (three heap strings and the
/// decoder's own map of the whole document on the way). Lookups are by path bytes.
///
/// Measured on a 100,000-file package (issue #13): JSONDecoder's `[FileEntry]` was ≈ 25 MiB of
/// the heap and half of verify's time; this table is ≈ 7.5 MiB. It is the storage of a decoded
/// manifest's `files` (`FileList`). It expects bytes that `StrictJSON.check` has passed (no
/// duplicate keys, no nulls, integers only) and checks the `files` rules of FORMAT §3.2 it can
/// see alone: types, 64 lowercase hex digits, four octal digits 0000–0777, paths valid UTF-8 and
/// sorted by their bytes without repeats. Path rules beyond that (`Names.pathProblem`, a file
/// that is also a directory) are `Manifest.validate`'s.
public struct CompactFileList: Sendable {
    public private(set) var count = 0
    private var arena: [UInt8] = []
    private var ends: [UInt32] = []
    private var digests: [UInt8] = []
    private var sizes: [UInt64] = []
    private var modes: [UInt16] = []

    public func path(_ i: Int) -> ArraySlice<UInt8> { arena[(i == 0 ? 0 : Int(ends[i - 1]))..<Int(ends[i])] }
    public func size(_ i: Int) -> UInt64 { sizes[i] }
    public func mode(_ i: Int) -> UInt32 { UInt32(modes[i]) }
    public func digest(_ i: Int) -> ArraySlice<UInt8> { digests[(i * 32)..<(i * 32 + 32)] }
    public var totalBytes: UInt64 { sizes.reduce(0, &+) }  // wrapping, like the manifest's other sums

    /// The file as a `FileEntry` (three new strings: for callers off the hot paths).
    public func entry(_ i: Int) -> FileEntry {
        FileEntry(
            path: String(decoding: path(i), as: UTF8.self), size: sizes[i], sha256: Hex.encode(digest(i)), mode: mode(i)
        )
    }

    /// Byte-wise three-way comparison of file `i`'s path with `b` (the manifest's order).
    public func comparePath(_ i: Int, _ b: UnsafeRawBufferPointer) -> Int {
        let start = i == 0 ? 0 : Int(ends[i - 1])
        let end = Int(ends[i])
        return arena.withUnsafeBytes { FileList.compare(UnsafeRawBufferPointer(rebasing: $0[start..<end]), b) }
    }

    /// Whether file `i`'s SHA-256 is these 32 bytes.
    public func digestEquals(_ i: Int, _ d: UnsafeRawBufferPointer) -> Bool {
        d.count == 32 && digests.withUnsafeBytes { memcmp($0.baseAddress! + i * 32, d.baseAddress!, 32) == 0 }
    }

    /// Parses the top-level `files` array of manifest bytes.
    public static func parse(_ bytes: [UInt8], maxFiles: Int = Int.max) throws -> CompactFileList {
        guard let r = try filesRange(bytes) else { throw Parser(b: bytes).fail("no files array") }
        return try parse(bytes, filesAt: r, maxFiles: maxFiles)
    }

    /// Where the top-level `files` value lies in the bytes, if there is one: one pass that copies
    /// nothing (the manifest decoder reads everything else from the bytes with this range cut out).
    public static func filesRange(_ bytes: [UInt8]) throws -> Range<Int>? {
        var p = Parser(b: bytes)
        var files: Range<Int>? = nil
        try p.object { key, p in
            guard key.elementsEqual("files".utf8) else { return false }
            p.ws()
            let start = p.i
            try p.skip(depth: 1)
            files = start..<p.i
            return true
        }
        return files
    }

    /// Parses the `files` array that lies at `range` of the manifest bytes. `releasing`: the
    /// caller owns `bytes`, will not read them again, and lets the pages behind the parser go
    /// (`madvise(MADV_DONTNEED)`: private anonymous pages read back as zeros, never as
    /// another's data), so that the list and its JSON are not resident together.
    public static func parse(
        _ bytes: [UInt8], filesAt range: Range<Int>, maxFiles: Int = Int.max,
        releasing: Bool = false
    ) throws -> CompactFileList {
        var p = Parser(b: bytes)
        p.i = range.lowerBound
        var out = CompactFileList()
        // An element takes at least ~100 bytes of JSON (a 64-digit sha256 and four keys), so this
        // bounds the count from above; capacity never written is never resident.
        let most = min(range.count / 90 + 1, maxFiles)
        out.ends.reserveCapacity(most)
        out.sizes.reserveCapacity(most)
        out.modes.reserveCapacity(most)
        out.digests.reserveCapacity(most * 32)
        out.arena.reserveCapacity(range.count / 3)
        var released = 0
        try p.array { p in
            if out.count >= maxFiles {
                throw CourierError(.limit, "manifest lists more than the limit of \(maxFiles) files")
            }
            try out.appendFile(&p)
            if releasing && p.i - released >= 1 << 20 {
                released = CompactFileList.release(bytes, upTo: p.i, from: released)
            }
        }
        return out
    }

    /// Gives back the whole pages of `bytes[from..<upTo]`; returns where the next release starts.
    private static func release(_ bytes: [UInt8], upTo end: Int, from start: Int) -> Int {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        return bytes.withUnsafeBytes { raw -> Int in
            let base = Int(bitPattern: raw.baseAddress!)
            let lo = (base + start + page - 1) / page * page
            let hi = (base + end) / page * page
            if hi > lo { Sys.releasePages(UnsafeRawPointer(bitPattern: lo)!, count: hi - lo) }
            return max(start, hi - base)
        }
    }

    private mutating func appendFile(_ p: inout Parser) throws {
        // Slices of the manifest bytes where no escape needs undoing: no allocation per field.
        var path: ArraySlice<UInt8>? = nil
        var size: UInt64? = nil
        var mode: UInt16? = nil
        var digest: (UInt64, UInt64, UInt64, UInt64)? = nil
        try p.object { key, p in
            if key.elementsEqual("path".utf8) {
                path = try p.string()
            } else if key.elementsEqual("size".utf8) {
                size = try p.integer()
            } else if key.elementsEqual("sha256".utf8) {
                guard let d = CompactFileList.hexDigest(try p.string()) else {
                    throw p.fail("sha256 must be 64 lowercase hex digits")
                }
                digest = d
            } else if key.elementsEqual("mode".utf8) {
                let s = try p.string()
                guard s.count == 4, s.first == 0x30, s.dropFirst().allSatisfy({ $0 >= 0x30 && $0 <= 0x37 }) else {
                    throw p.fail("mode must be four octal digits 0000-0777")
                }
                mode = s.dropFirst().reduce(0) { $0 << 3 | UInt16($1 - 0x30) }
            } else {
                return false
            }
            return true
        }
        guard let path, let size, let digest, let mode else { throw p.fail("a file needs path, size, sha256 and mode") }
        if path.contains(where: { $0 >= 0x80 }), String(validating: path, as: UTF8.self) == nil {
            throw p.fail("path is not valid UTF-8")
        }
        if count > 0 {
            let prev = self.path(count - 1)
            guard prev.lexicographicallyPrecedes(path) else {
                throw p.fail(
                    prev.elementsEqual(path)
                        ? "file \(Escape.quotedBytes(path)) listed twice"
                        : "files are not sorted by path (at \(Escape.quotedBytes(path)))")
            }
        }
        arena += path
        guard arena.count <= Int(UInt32.max) else { throw p.fail("paths too long") }
        ends.append(UInt32(arena.count))
        withUnsafeBytes(of: digest) { digests.append(contentsOf: $0) }
        sizes.append(size)
        modes.append(mode)
        count += 1
    }

    /// 64 lowercase hex digits as 32 bytes (in memory order), or nil.
    static func hexDigest(_ s: ArraySlice<UInt8>) -> (UInt64, UInt64, UInt64, UInt64)? {
        guard s.count == 64 else { return nil }
        var out: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let ok = withUnsafeMutableBytes(of: &out) { raw -> Bool in
            var i = s.startIndex
            for k in 0..<32 {
                let h = s[i]
                let l = s[i + 1]
                guard let hv = Hex.digitValue(h, lowercaseOnly: true), let lv = Hex.digitValue(l, lowercaseOnly: true)
                else { return false }
                raw[k] = hv << 4 | lv
                i += 2
            }
            return true
        }
        return ok ? out : nil
    }

    /// A reader of strict JSON (see `StrictJSON`) that skips what it is not asked for.
    struct Parser {
        let b: [UInt8]
        var i = 0

        func fail(_ why: String) -> CourierError { CourierError(.malformed, "manifest: \(why) at byte \(i)") }

        mutating func ws() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0a || b[i] == 0x0d || b[i] == 0x09 { i += 1 }
        }

        mutating func expect(_ c: UInt8) throws {
            ws()
            guard i < b.count, b[i] == c else { throw fail("expected '\(Character(Unicode.Scalar(c)))'") }
            i += 1
        }

        /// `{ key: value, … }`: `member(key, &self)` reads the value and returns true, or returns
        /// false to have it skipped.
        mutating func object(_ member: (ArraySlice<UInt8>, inout Parser) throws -> Bool) throws {
            try expect(0x7b)
            ws()
            if i < b.count, b[i] == 0x7d {
                i += 1
                return
            }
            while true {
                ws()
                let key = try string()
                try expect(0x3a)
                ws()
                if try !member(key[...], &self) { try skip(depth: 0) }
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
        }

        mutating func array(_ element: (inout Parser) throws -> Void) throws {
            try expect(0x5b)
            ws()
            if i < b.count, b[i] == 0x5d {
                i += 1
                return
            }
            while true {
                try element(&self)
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
        }

        /// A string's bytes, unescaped (`\uXXXX` with surrogate pairs to UTF-8): a slice of the
        /// input when there is nothing to unescape.
        mutating func string() throws -> ArraySlice<UInt8> {
            ws()
            guard i < b.count, b[i] == 0x22 else { throw fail("expected a string") }
            i += 1
            var out: [UInt8] = []
            var escaped = false
            var start = i
            while i < b.count {
                let c = b[i]
                if c == 0x22 {
                    if !escaped {
                        let s = b[start..<i]
                        i += 1
                        return s
                    }
                    out += b[start..<i]
                    i += 1
                    return out[...]
                }
                if c == 0x5c {
                    escaped = true
                    out += b[start..<i]
                    i += 1
                    guard i < b.count else { break }
                    let e = b[i]
                    i += 1
                    switch e {
                    case 0x22, 0x5c, 0x2f: out.append(e)
                    case 0x62: out.append(0x08)
                    case 0x66: out.append(0x0c)
                    case 0x6e: out.append(0x0a)
                    case 0x72: out.append(0x0d)
                    case 0x74: out.append(0x09)
                    case 0x75:
                        var u = try hex4()
                        if u >= 0xD800 && u < 0xDC00 {
                            guard i + 1 < b.count, b[i] == 0x5c, b[i + 1] == 0x75 else { throw fail("lone surrogate") }
                            i += 2
                            let lo = try hex4()
                            guard lo >= 0xDC00 && lo < 0xE000 else { throw fail("lone surrogate") }
                            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                        } else if u >= 0xDC00 && u < 0xE000 {
                            throw fail("lone surrogate")
                        }
                        out += Array(String(Character(Unicode.Scalar(u)!)).utf8)
                    default: throw fail("bad escape")
                    }
                    start = i
                    continue
                }
                if c < 0x20 { throw fail("control character in a string") }
                i += 1
            }
            throw fail("unterminated string")
        }

        /// Steps over a string without unescaping it (StrictJSON has checked its escapes).
        mutating func skipString() throws {
            ws()
            guard i < b.count, b[i] == 0x22 else { throw fail("expected a string") }
            i += 1
            while i < b.count {
                let c = b[i]
                if c == 0x22 {
                    i += 1
                    return
                }
                if c == 0x5c {
                    i += 2
                    continue
                }
                if c < 0x20 { throw fail("control character in a string") }
                i += 1
            }
            throw fail("unterminated string")
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= b.count else { throw fail("bad \\u escape") }
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

        mutating func integer() throws -> UInt64 {
            ws()
            let start = i
            var v: UInt64 = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(UInt64(b[i] - 0x30))
                if o1 || o2 { throw fail("integer too large") }
                v = a
                i += 1
            }
            guard i > start else { throw fail("expected an integer") }
            return v
        }

        /// Skips one value of any kind.
        mutating func skip(depth: Int) throws {
            guard depth < 64 else { throw fail("nested too deeply") }
            ws()
            guard i < b.count else { throw fail("unexpected end") }
            switch b[i] {
            case 0x7b:
                try object { _, p in
                    try p.skip(depth: depth + 1)
                    return true
                }
            case 0x5b: try array { p in try p.skip(depth: depth + 1) }
            case 0x22: try skipString()
            case 0x74:
                guard b[i...].starts(with: "true".utf8) else { throw fail("bad literal") }
                i += 4
            case 0x66:
                guard b[i...].starts(with: "false".utf8) else { throw fail("bad literal") }
                i += 5
            default: _ = try integer()
            }
        }
    }
}
