/// BLAKE2b (RFC 7693), unkeyed, for minisign's pre-hashed signatures (`ED`: Ed25519 over the
/// BLAKE2b-512 of the file). Written here because no library Courier links has it (swift-crypto
/// offers SHA-2 and SHA-3 only); checked against Python's hashlib and the RFC's test vector.
/// Streaming: a file of any size is hashed in fixed memory.
public struct BLAKE2b {
    static let iv: [UInt64] = [
        0x6a09_e667_f3bc_c908, 0xbb67_ae85_84ca_a73b, 0x3c6e_f372_fe94_f82b, 0xa54f_f53a_5f1d_36f1,
        0x510e_527f_ade6_82d1, 0x9b05_688c_2b3e_6c1f, 0x1f83_d9ab_fb41_bd6b, 0x5be0_cd19_137e_2179,
    ]
    static let sigma: [[Int]] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
        [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
        [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
        [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
        [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
        [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
        [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
        [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
        [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    ]

    private var h: [UInt64]
    private var counterLow: UInt64 = 0
    private var counterHigh: UInt64 = 0
    private var buffer = [UInt8](repeating: 0, count: 128)
    private var buffered = 0
    public let outputLength: Int

    /// `outputLength` in bytes, 1 to 64 (minisign uses 64).
    public init(outputLength: Int = 64) {
        precondition(outputLength >= 1 && outputLength <= 64)
        self.outputLength = outputLength
        h = BLAKE2b.iv
        h[0] ^= 0x0101_0000 ^ UInt64(outputLength)
    }

    public mutating func update(_ data: UnsafeRawBufferPointer) {
        var i = 0
        while i < data.count {
            // The last block is compressed with the final flag, so a full buffer waits for more.
            if buffered == 128 {
                addToCounter(128)
                compress(last: false)
                buffered = 0
            }
            let n = min(128 - buffered, data.count - i)
            for k in 0..<n { buffer[buffered + k] = data[i + k] }
            buffered += n
            i += n
        }
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func finalize() -> [UInt8] {
        addToCounter(UInt64(buffered))
        for k in buffered..<128 { buffer[k] = 0 }
        compress(last: true)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for w in h { for b in 0..<8 { out.append(UInt8(truncatingIfNeeded: w >> (8 * UInt64(b)))) } }
        return Array(out.prefix(outputLength))
    }

    public static func hash(_ bytes: [UInt8], outputLength: Int = 64) -> [UInt8] {
        var b = BLAKE2b(outputLength: outputLength)
        b.update(bytes)
        return b.finalize()
    }

    private mutating func addToCounter(_ n: UInt64) {
        let (low, overflow) = counterLow.addingReportingOverflow(n)
        counterLow = low
        if overflow { counterHigh &+= 1 }
    }

    private mutating func compress(last: Bool) {
        var m = [UInt64](repeating: 0, count: 16)
        for i in 0..<16 {
            var w: UInt64 = 0
            for b in 0..<8 { w |= UInt64(buffer[i * 8 + b]) << (8 * UInt64(b)) }
            m[i] = w
        }
        var v = h + BLAKE2b.iv
        v[12] ^= counterLow
        v[13] ^= counterHigh
        if last { v[14] = ~v[14] }
        @inline(__always) func g(_ a: Int, _ b: Int, _ c: Int, _ d: Int, _ x: UInt64, _ y: UInt64) {
            v[a] = v[a] &+ v[b] &+ x
            v[d] = (v[d] ^ v[a]).rotatedRight(32)
            v[c] = v[c] &+ v[d]
            v[b] = (v[b] ^ v[c]).rotatedRight(24)
            v[a] = v[a] &+ v[b] &+ y
            v[d] = (v[d] ^ v[a]).rotatedRight(16)
            v[c] = v[c] &+ v[d]
            v[b] = (v[b] ^ v[c]).rotatedRight(63)
        }
        for round in 0..<12 {
            let s = BLAKE2b.sigma[round % 10]
            g(0, 4, 8, 12, m[s[0]], m[s[1]])
            g(1, 5, 9, 13, m[s[2]], m[s[3]])
            g(2, 6, 10, 14, m[s[4]], m[s[5]])
            g(3, 7, 11, 15, m[s[6]], m[s[7]])
            g(0, 5, 10, 15, m[s[8]], m[s[9]])
            g(1, 6, 11, 12, m[s[10]], m[s[11]])
            g(2, 7, 8, 13, m[s[12]], m[s[13]])
            g(3, 4, 9, 14, m[s[14]], m[s[15]])
        }
        for i in 0..<8 { h[i] ^= v[i] ^ v[i + 8] }
    }
}

extension UInt64 {
    @inline(__always) fileprivate func rotatedRight(_ n: UInt64) -> UInt64 { (self >> n) | (self << (64 - n)) }
}
