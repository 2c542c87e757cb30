import CourierCore
import Crypto
@preconcurrency import Glibc

/// A target file's length and hashes checked by reading the file once, in 1 MiB blocks, with one
/// incremental hasher per algorithm the metadata lists: the same verdicts as the core's
/// `TargetFile.verifyLengthAndHashes` (length first, then every hash, an unknown algorithm a
/// mismatch, exact lower-case hex), without holding the artifact in memory.
struct StreamingHashes {
    private enum Hasher {
        case sha256(SHA256)
        case sha384(SHA384)
        case sha512(SHA512)
        case sha1(Insecure.SHA1)
        case md5(Insecure.MD5)
        case blake2b(BLAKE2b)

        init?(_ algorithm: String) {
            switch Array(algorithm.utf8) {
            case Array("sha256".utf8): self = .sha256(SHA256())
            case Array("sha384".utf8): self = .sha384(SHA384())
            case Array("sha512".utf8): self = .sha512(SHA512())
            case Array("sha1".utf8): self = .sha1(Insecure.SHA1())
            case Array("md5".utf8): self = .md5(Insecure.MD5())
            case Array("blake2b-256".utf8): self = .blake2b(BLAKE2b(outputLength: 32))
            case Array("blake2b".utf8): self = .blake2b(BLAKE2b(outputLength: 64))
            default: return nil
            }
        }

        mutating func update(_ p: UnsafeRawBufferPointer) {
            switch self {
            case .sha256(var h):
                h.update(bufferPointer: p)
                self = .sha256(h)
            case .sha384(var h):
                h.update(bufferPointer: p)
                self = .sha384(h)
            case .sha512(var h):
                h.update(bufferPointer: p)
                self = .sha512(h)
            case .sha1(var h):
                h.update(bufferPointer: p)
                self = .sha1(h)
            case .md5(var h):
                h.update(bufferPointer: p)
                self = .md5(h)
            case .blake2b(var h):
                h.update(p)
                self = .blake2b(h)
            }
        }

        func hex() -> String {
            switch self {
            case .sha256(let h): return Hex.encode(h.finalize())
            case .sha384(let h): return Hex.encode(h.finalize())
            case .sha512(let h): return Hex.encode(h.finalize())
            case .sha1(let h): return Hex.encode(h.finalize())
            case .md5(let h): return Hex.encode(h.finalize())
            case .blake2b(var h): return Hex.encode(h.finalize())
            }
        }
    }

    /// Throws `.signature` (the core's code for a length or hash mismatch) unless the file at
    /// `path` is `file`'s artifact; `.io` when it cannot be read.
    static func verify(path: String, _ file: TargetFile) throws {
        let what = "target \(Escape.quoted(file.path))"
        var hashers: [(algorithm: String, expected: String, hasher: Hasher)] = []
        for algorithm in file.hashes.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            guard let h = Hasher(algorithm) else {
                throw CourierError(.signature, "\(what): unsupported hash algorithm \(Escape.quoted(algorithm))")
            }
            hashers.append((algorithm, file.hashes[algorithm]!, h))
        }
        let fd = try OwnedFD.open(path, O_RDONLY)
        var total: Int64 = 0
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try buf.withUnsafeMutableBytes { try Sys.read(fd.raw, $0.baseAddress!, $0.count, display: path) }
            if n == 0 { break }
            total += Int64(n)
            // Longer than promised: no need to read (or hash) the rest.
            if total > file.length { break }
            buf.withUnsafeBytes { p in
                let chunk = UnsafeRawBufferPointer(rebasing: p[0..<n])
                for i in hashers.indices { hashers[i].hasher.update(chunk) }
            }
        }
        guard total == file.length else {
            throw CourierError(
                .signature,
                "\(what): observed length \(total > file.length ? "more than \(file.length)" : "\(total)") does not match expected length \(file.length)"
            )
        }
        for h in hashers {
            let observed = h.hasher.hex()
            guard observed.utf8.elementsEqual(h.expected.utf8) else {
                throw CourierError(
                    .signature,
                    "\(what): observed \(Escape.quoted(h.algorithm)) hash \(observed) does not match expected hash \(Escape.quoted(h.expected))"
                )
            }
        }
    }
}
