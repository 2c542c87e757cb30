/// Follows the header blocks of a tar stream as its bytes go by, to learn what libarchive does
/// not say: the raw type flag of each entry.
///
/// libarchive maps every type flag it does not know ('Z', GNU 'S' sparse, 'M', 'N', …) to a
/// regular file, as POSIX suggests for extractors — but a package reader must refuse what
/// FORMAT §2 does not allow, so a 'Z' entry must not pass as a file. The walker is fed the
/// decompressed stream on its way into libarchive (`ArchiveReader`'s read callback), keeps no
/// data (headers only, and a pax header's records, ≤ 1 MiB as in libarchive), and records for
/// each entry the offset of its first header block and, if the entry breaks the rules, why.
/// `ArchiveReader` matches each header libarchive returns with the record at the same offset
/// (`archive_read_header_position`), so if the two ever disagree on where headers are, the
/// package is refused rather than trusted. Pure: tests feed it bytes.
public struct TarHeaderWalker: Sendable {
    public struct Record: Sendable, Equatable {
        /// Offset in the uncompressed stream of the entry's first header block (an 'x', 'g' or
        /// 'L' header, or the entry's own header).
        public var start: Int64
        /// The entry's own type flag.
        public var typeFlag: UInt8
        /// Why the entry is refused, or nil.
        public var problem: String?
        /// The entry's name exactly as the archive stores it: the pax `path` record, else the GNU
        /// long name, else the ustar prefix and name. libarchive normalises UTF-8 names from pax
        /// headers to NFC, which would make `e\u{301}` and `\u{E9}` one name (FORMAT §8).
        public var rawName: [UInt8] = []
    }

    enum State: Sendable {
        case header
        /// Skipping entry data and padding.
        case skip(Int64)
        /// Collecting an extension header's data ('x', 'g', 'L'), then skipping its padding.
        case ext(flag: UInt8, left: Int64, padding: Int64)
        /// After the end-of-archive block: what follows must be zero bytes (FORMAT §1).
        case end
        /// After an entry whose layout is not followed (refused, or refused by PackageReader).
        case done
    }

    /// Largest pax or long-name header libarchive reads ("Special header too large").
    static let maxExtension: Int64 = 1 << 20

    private var state = State.header
    private var block: [UInt8] = []
    private var extData: [UInt8] = []
    private var offset: Int64 = 0
    private var entryStart: Int64? = nil
    private var paxSize: Int64? = nil
    private var paxPath: [UInt8]? = nil
    private var longName: [UInt8]? = nil
    private var pending: [Record] = []
    private var pendingHead = 0
    /// The first problem seen, for when libarchive fails before returning the entry.
    public private(set) var firstProblem: String? = nil
    /// Whether the end-of-archive block was seen.
    public var sawEnd: Bool { if case .end = state { return true } else { return false } }
    /// Offset of the first non-zero byte after the end-of-archive block, if any.
    public private(set) var trailingDataAt: Int64? = nil

    public init() {}

    /// Feeds the next bytes of the uncompressed stream.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        var i = 0
        let n = bytes.count
        while i < n {
            switch state {
            case .done:
                return
            case .end:
                if trailingDataAt == nil,
                    let k = UnsafeRawBufferPointer(rebasing: bytes[i..<n]).firstIndex(where: { $0 != 0 })
                {
                    trailingDataAt = offset + Int64(k - i)
                }
                offset += Int64(n - i)
                return
            case .skip(let left):
                let take = Int(min(Int64(n - i), left))
                i += take
                offset += Int64(take)
                state = left - Int64(take) == 0 ? .header : .skip(left - Int64(take))
            case .ext(let flag, let left, let padding):
                let take = Int(min(Int64(n - i), left))
                extData.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<(i + take)]))
                i += take
                offset += Int64(take)
                if left - Int64(take) > 0 {
                    state = .ext(flag: flag, left: left - Int64(take), padding: padding)
                    continue
                }
                finishExtension(flag)
                if case .done = state { continue }
                state = padding > 0 ? .skip(padding) : .header
            case .header:
                let take = min(n - i, 512 - block.count)
                block.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<(i + take)]))
                i += take
                offset += Int64(take)
                if block.count == 512 {
                    header(block, at: offset - 512)
                    block.removeAll(keepingCapacity: true)
                }
            }
        }
    }

    /// The record of the entry whose first header is at `start`; earlier records are dropped.
    /// Nil when the walker saw no entry there (it and libarchive disagree: refuse).
    public mutating func take(at start: Int64) -> Record? {
        while pendingHead < pending.count {
            let r = pending[pendingHead]
            pendingHead += 1
            if pendingHead > 64 {
                pending.removeFirst(pendingHead)
                pendingHead = 0
            }
            if r.start == start { return r }
            if r.start > start { return nil }
        }
        return nil
    }

    private mutating func record(_ flag: UInt8, _ problem: String?, name: [UInt8] = []) {
        pending.append(Record(start: entryStart ?? offset, typeFlag: flag, problem: problem, rawName: name))
        if firstProblem == nil { firstProblem = problem }
        entryStart = nil
        paxSize = nil
        paxPath = nil
        longName = nil
    }

    /// The name libarchive would build, before any charset conversion.
    private func name(of h: [UInt8]) -> [UInt8] {
        if let p = paxPath { return p }
        if let l = longName { return l }
        let name = Array(h[0..<100].prefix(while: { $0 != 0 }))
        let prefix = Array(h[345..<500].prefix(while: { $0 != 0 }))
        guard h[257..<263].elementsEqual(Array("ustar\0".utf8)), !prefix.isEmpty else { return name }
        return prefix + (prefix.last == 0x2f ? [] : [0x2f]) + name
    }

    private mutating func refuse(_ flag: UInt8, _ why: String) {
        record(flag, why)
        state = .done
    }

    static func describe(_ flag: UInt8) -> String {
        flag >= 0x21 && flag < 0x7f ? "'\(Character(Unicode.Scalar(flag)))'" : "0x" + String(flag, radix: 16)
    }

    private mutating func header(_ h: [UInt8], at start: Int64) {
        if h.allSatisfy({ $0 == 0 }) {
            state = .end
            return
        }  // end of archive: only zero bytes may follow
        if entryStart == nil { entryStart = start }
        let flag = h[156]
        guard let size = TarHeaderWalker.size(h) else {
            return refuse(flag, "tar header with a size field that is not a non-negative number")
        }
        switch flag {
        case 0x78, 0x67, 0x4c:  // 'x' pax, 'g' pax global, 'L' GNU long name
            guard size <= TarHeaderWalker.maxExtension else {
                return refuse(flag, "tar \(TarHeaderWalker.describe(flag)) header larger than 1 MiB")
            }
            extData.removeAll(keepingCapacity: true)
            let padding = (512 - size % 512) % 512
            state = size > 0 ? .ext(flag: flag, left: size, padding: padding) : .header
            if size == 0 { finishExtension(flag) }
        case 0x30, 0x00, 0x37:  // '0', NUL, '7': regular file
            if isGNU(h), h[386..<495].contains(where: { $0 != 0 }) {
                // GNU sparse map, "isextended" and "realsize" fields: libarchive would read a
                // sparse file (extra header blocks, holes) under a regular type flag.
                return refuse(flag, "GNU sparse fields in a regular file's tar header")
            }
            let dataSize = paxSize ?? size
            record(flag, nil, name: name(of: h))
            let padded = (dataSize + 511) / 512 * 512
            state = padded > 0 ? .skip(padded) : .header
        case 0x31...0x36:
            // Links, devices, directories, FIFOs: libarchive reports them as what they are and
            // PackageReader refuses each with its own reason. Their data layout is not followed.
            record(flag, nil, name: name(of: h))
            state = .done
        default:
            refuse(
                flag,
                "tar entry type flag \(TarHeaderWalker.describe(flag)) is not allowed "
                    + "(only '0', NUL and '7' regular files, with pax 'x'/'g' and GNU 'L' headers)")
        }
    }

    private func isGNU(_ h: [UInt8]) -> Bool { h[257..<265].elementsEqual(Array("ustar  \0".utf8)) }

    private mutating func finishExtension(_ flag: UInt8) {
        if flag == 0x4c {
            longName = Array(extData.prefix(while: { $0 != 0 }))
            return
        }
        guard let records = TarHeaderWalker.paxRecords(extData) else {
            return refuse(flag, "malformed pax header records")
        }
        for (key, value) in records {
            if key.starts(with: Array("GNU.sparse.".utf8)) {
                return refuse(flag, "GNU sparse file (pax \(Escape.quotedBytes(key)))")
            }
            if flag == 0x67, ["path", "linkpath", "size", "hdrcharset"].contains(where: { key.elementsEqual($0.utf8) })
            {
                // libarchive ignores global headers; other readers apply them to what follows.
                return refuse(
                    flag, "pax global header sets \(Escape.quotedBytes(key)) (readers disagree on global headers)")
            }
            if flag == 0x78, key.elementsEqual("path".utf8) { paxPath = Array(value.prefix(while: { $0 != 0 })) }
            if flag == 0x78, key.elementsEqual("size".utf8) {
                guard !value.isEmpty, value.count <= 18, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                    let v = Int64(String(decoding: value, as: UTF8.self))
                else {
                    return refuse(flag, "pax size that is not a plain decimal")
                }
                paxSize = v
            }
        }
    }

    /// pax records "LEN KEY=VALUE\n"; nil when malformed.
    static func paxRecords(_ d: [UInt8]) -> [(ArraySlice<UInt8>, ArraySlice<UInt8>)]? {
        var out: [(ArraySlice<UInt8>, ArraySlice<UInt8>)] = []
        var i = 0
        while i < d.count {
            if d[i] == 0 { break }  // libarchive reads the records as a C string
            var len = 0
            var j = i
            while j < d.count, d[j] >= 0x30, d[j] <= 0x39, len < 1 << 21 {
                len = len * 10 + Int(d[j] - 0x30)
                j += 1
            }
            guard j < d.count, d[j] == 0x20, j > i, len > j - i, i + len <= d.count, d[i + len - 1] == 0x0a else {
                return nil
            }
            let rec = d[(j + 1)..<(i + len - 1)]
            guard let eq = rec.firstIndex(of: 0x3d), eq > rec.startIndex else { return nil }
            out.append((rec[rec.startIndex..<eq], rec[(eq + 1)...]))
            i += len
        }
        return out
    }

    /// The size field (octal, or base-256 when its first byte has the high bit), as libarchive
    /// reads it; nil for a negative base-256 value.
    static func size(_ h: [UInt8]) -> Int64? {
        let f = h[124..<136]
        if f.first! & 0x80 != 0 {
            if f.first! & 0x40 != 0 { return nil }  // negative
            var v: Int64 = Int64(f.first! & 0x3f)
            for b in f.dropFirst() {
                if v > (Int64.max >> 8) { return nil }
                v = v << 8 | Int64(b)
            }
            return v
        }
        var v: Int64 = 0
        var k = f.startIndex
        while k < f.endIndex, f[k] == 0x20 || f[k] == 0x09 { k += 1 }
        while k < f.endIndex, f[k] >= 0x30, f[k] <= 0x37 {
            if v > (Int64.max >> 3) { return nil }
            v = v << 3 | Int64(f[k] - 0x30)
            k += 1
        }
        return v
    }
}
