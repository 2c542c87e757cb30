@preconcurrency import Glibc

/// A manifest's `files` (FORMAT §3.2): a random-access collection of `FileEntry`, sorted by path
/// bytes once validated.
///
/// Two storages behind one type. A manifest built in memory (the stager, tests) holds the
/// entries it was given. A manifest *decoded* from bytes holds a `CompactFileList`: the paths in
/// one arena, digests as bytes — ≈ 75 bytes per file where an array of `FileEntry` costs ≈ 250,
/// so a 100,000-file package verifies in bounded memory (issue #13.2). Reading an element of the
/// compact storage builds a `FileEntry`; the hot paths (payload lookup, validation) use the
/// byte-level operations below instead. Writing an element turns the storage into entries.
public struct FileList: RandomAccessCollection, MutableCollection, ExpressibleByArrayLiteral, Sendable, Hashable,
    Codable
{
    enum Storage: Sendable {
        case entries([FileEntry])
        case table(CompactFileList)
    }
    private var storage: Storage

    public init() { storage = .entries([]) }
    public init<S: Sequence>(_ entries: S) where S.Element == FileEntry { storage = .entries(Array(entries)) }
    public init(arrayLiteral elements: FileEntry...) { storage = .entries(elements) }
    public init(table: CompactFileList) { storage = .table(table) }

    public var startIndex: Int { 0 }
    public var endIndex: Int {
        switch storage {
        case .entries(let a): return a.count
        case .table(let t): return t.count
        }
    }

    public subscript(i: Int) -> FileEntry {
        get {
            switch storage {
            case .entries(let a): return a[i]
            case .table(let t): return t.entry(i)
            }
        }
        set {
            var a: [FileEntry]
            switch storage {
            case .entries(let e): a = e
            case .table(let t): a = (0..<t.count).map(t.entry)
            }
            storage = .entries([])  // drop our reference so that `a` is unique and set in place
            a[i] = newValue
            storage = .entries(a)
        }
    }

    /// Whether the list came from manifest bytes (sorted, unique, digests and modes well-formed:
    /// the parser has checked them) rather than from entries given in memory.
    public var isCompact: Bool { if case .table = storage { return true } else { return false } }

    /// Byte-wise three-way comparison of file `i`'s path with `b`.
    public func comparePath(_ i: Int, _ b: UnsafeRawBufferPointer) -> Int {
        switch storage {
        case .entries(let a): return FileList.compare(a[i].path, b)
        case .table(let t): return t.comparePath(i, b)
        }
    }

    /// Whether file `i`'s SHA-256 is the 32 bytes `d`.
    public func digestEquals(_ i: Int, _ d: UnsafeRawBufferPointer) -> Bool {
        switch storage {
        case .entries(let a): return FileList.digest(d, equalsHex: a[i].sha256)
        case .table(let t): return t.digestEquals(i, d)
        }
    }

    /// File `i`'s size, without building the entry.
    public func size(_ i: Int) -> UInt64 {
        switch storage {
        case .entries(let a): return a[i].size
        case .table(let t): return t.size(i)
        }
    }

    /// File `i`'s permission bits (nil for an entry given in memory with a malformed mode).
    public func permissions(_ i: Int) -> UInt32? {
        switch storage {
        case .entries(let a): return a[i].permissions
        case .table(let t): return t.mode(i)
        }
    }

    /// The sum of the sizes (wrapping, as the manifest's own arithmetic is checked elsewhere).
    public var totalSize: UInt64 {
        switch storage {
        case .entries(let a): return a.reduce(0) { $0 &+ $1.size }
        case .table(let t): return t.totalBytes
        }
    }

    /// File `i`'s path as a String (exact: the table holds valid UTF-8 only).
    public func pathString(_ i: Int) -> String {
        switch storage {
        case .entries(let a): return a[i].path
        case .table(let t): return String(decoding: t.path(i), as: UTF8.self)
        }
    }

    /// File `i`'s path bytes.
    public func pathBytes(_ i: Int) -> [UInt8] {
        switch storage {
        case .entries(let a): return Array(a[i].path.utf8)
        case .table(let t): return Array(t.path(i))
        }
    }

    /// The first index whose path is not below `b` in byte order (the list must be sorted).
    public func lowerBound(_ b: UnsafeRawBufferPointer) -> Int {
        var lo = 0
        var hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if comparePath(mid, b) < 0 { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The index of the file with exactly these path bytes (the list must be sorted).
    public func index(ofPath b: UnsafeRawBufferPointer) -> Int? {
        let i = lowerBound(b)
        return i < count && comparePath(i, b) == 0 ? i : nil
    }

    public func index(ofPath s: String) -> Int? {
        Array(s.utf8).withUnsafeBytes { index(ofPath: $0) }
    }

    public static func == (a: FileList, b: FileList) -> Bool { a.elementsEqual(b) }
    public func hash(into h: inout Hasher) {
        h.combine(count)
        for f in self { h.combine(f) }
    }

    public init(from decoder: Decoder) throws { storage = .entries(try [FileEntry](from: decoder)) }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.unkeyedContainer()
        for f in self { try c.encode(f) }
    }

    /// Byte-wise three-way comparison of a path with bytes (the manifest's order, FORMAT §3.2).
    static func compare(_ s: String, _ b: UnsafeRawBufferPointer) -> Int {
        var s = s
        return s.withUTF8 { compare(UnsafeRawBufferPointer($0), b) }
    }

    /// Byte-wise three-way comparison: negative, zero or positive as `a` sorts before, with or after `b`.
    static func compare(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let n = Swift.min(a.count, b.count)
        if n > 0 {
            let c = memcmp(a.baseAddress!, b.baseAddress!, n)
            if c != 0 { return Int(c) }
        }
        return a.count - b.count
    }

    /// Whether 32 digest bytes are what a manifest's 64 lowercase hex digits say.
    static func digest(_ d: UnsafeRawBufferPointer, equalsHex hex: String) -> Bool {
        let h = hex.utf8
        guard h.count == 2 * d.count else { return false }
        func nibble(_ c: UInt8) -> UInt8? { Hex.digitValue(c, lowercaseOnly: true) }
        var i = h.startIndex
        for byte in d {
            let hiC = h[i]
            i = h.index(after: i)
            let loC = h[i]
            i = h.index(after: i)
            guard let hi = nibble(hiC), let lo = nibble(loC), hi << 4 | lo == byte else { return false }
        }
        return true
    }
}
