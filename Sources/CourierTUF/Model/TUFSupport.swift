import CourierCore
import Crypto

/// `expires` as python-tuf reads it: `datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")` in UTC.
///
/// strptime is more lenient than RFC 3339: month, day, hour, minute and second may have one
/// digit ("2030-1-2T3:4:5Z"), and the day may have a leading space. Metadata written that way
/// parses in python-tuf, so it parses here too; anything else (offsets, fractions, year 0,
/// Feb 30, second 60) is refused as it is there.
public enum TUFTime {
    public static func parse(_ s: String) -> Int64? {
        let b = Array(s.utf8)
        var i = 0
        func digits(_ minN: Int, _ maxN: Int, allowSpace: Bool = false) -> Int64? {
            if allowSpace, i < b.count, b[i] == 0x20 {
                // %d's " [1-9]" alternative.
                guard i + 1 < b.count, (0x31...0x39).contains(b[i + 1]) else { return nil }
                i += 2
                return Int64(b[i - 1] - 0x30)
            }
            var v: Int64 = 0
            var n = 0
            while n < maxN, i < b.count, (0x30...0x39).contains(b[i]) {
                v = v * 10 + Int64(b[i] - 0x30)
                i += 1
                n += 1
            }
            return n >= minN ? v : nil
        }
        func lit(_ c: UInt8) -> Bool {
            if i < b.count, b[i] == c {
                i += 1
                return true
            }
            return false
        }
        guard let y = digits(4, 4), lit(0x2d), let mo = digits(1, 2), lit(0x2d), let d = digits(1, 2, allowSpace: true),
            lit(0x54), let h = digits(1, 2), lit(0x3a), let mi = digits(1, 2), lit(0x3a), let se = digits(1, 2),
            lit(0x5a), i == b.count
        else { return nil }
        guard y >= 1, (1...12).contains(mo), d >= 1, h < 24, mi < 60, se < 60 else { return nil }
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        let dim: [Int64] = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard d <= dim[Int(mo - 1)] else { return nil }
        return RFC3339.days(fromCivil: y, mo, d) * 86400 + h * 3600 + mi * 60 + se
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`, for messages.
    public static func format(_ t: Int64) -> String { RFC3339.format(t) }
}

/// Length and hash checks of metadata and target files (python-tuf `BaseFile`).
public enum TUFHash {
    /// Hex digest of `data` with a hash named as in TUF metadata, nil when not supported.
    /// python-tuf passes the name to `hashlib.new`; we support the ones repositories use
    /// (sha256, sha384, sha512, sha1, md5, blake2b-256, blake2b). An unsupported name is a
    /// mismatch, as python-tuf treats a name hashlib does not know.
    public static func hexDigest(_ data: [UInt8], algorithm: String) -> String? {
        switch Array(algorithm.utf8) {
        case Array("sha256".utf8): return Hex.encode(SHA256.hash(data: data))
        case Array("sha384".utf8): return Hex.encode(SHA384.hash(data: data))
        case Array("sha512".utf8): return Hex.encode(SHA512.hash(data: data))
        case Array("sha1".utf8): return Hex.encode(Insecure.SHA1.hash(data: data))
        case Array("md5".utf8): return Hex.encode(Insecure.MD5.hash(data: data))
        case Array("blake2b-256".utf8): return Hex.encode(BLAKE2b.hash(data, outputLength: 32))
        case Array("blake2b".utf8): return Hex.encode(BLAKE2b.hash(data, outputLength: 64))
        default: return nil
        }
    }

    static func verifyLength(_ data: [UInt8], _ expected: Int64, what: String) throws {
        guard Int64(data.count) == expected else {
            throw CourierError(
                .signature, "\(what): observed length \(data.count) does not match expected length \(expected)")
        }
    }

    static func verify(_ data: [UInt8], _ hashes: [String: String], what: String) throws {
        // Sorted so that the error names the same algorithm every run.
        for algo in hashes.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let expected = hashes[algo]!
            guard let observed = hexDigest(data, algorithm: algo) else {
                throw CourierError(.signature, "\(what): unsupported hash algorithm \(Escape.quoted(algo))")
            }
            // Exact string comparison, as python-tuf compares `hexdigest()` (lower case).
            guard observed.utf8.elementsEqual(expected.utf8) else {
                throw CourierError(
                    .signature,
                    "\(what): observed \(Escape.quoted(algo)) hash \(observed) does not match expected hash \(Escape.quoted(expected))"
                )
            }
        }
    }
}
