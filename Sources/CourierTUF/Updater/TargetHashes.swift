import CourierCore
import Crypto

/// Length and hash checks of an artifact against its `TargetFile`, as python-tuf's
/// `TargetFile.verify_length_and_hashes`: the length first, then every listed hash (all must
/// match, not just one); an algorithm we cannot compute is a failure, never a skip — otherwise a
/// repository could list only an exotic hash and have nothing checked.
public enum TargetHashes {
    /// The algorithms we compute, by their TUF names.
    public static let supported: Set<String> = ["sha256", "sha384", "sha512"]

    /// Lower-case hex digest of `bytes` with `algorithm`, or nil when unsupported.
    public static func digest(_ algorithm: String, of bytes: [UInt8]) -> String? {
        switch algorithm {
        case "sha256": return hex(SHA256.hash(data: bytes))
        case "sha384": return hex(SHA384.hash(data: bytes))
        case "sha512": return hex(SHA512.hash(data: bytes))
        default: return nil
        }
    }

    /// Throws `.integrity` when `bytes` is not the artifact `length`/`hashes` describe.
    /// `name` is the target path, for the message (escaped here).
    public static func verify(_ bytes: [UInt8], length: Int, hashes: [String: String], name: String) throws {
        guard bytes.count == length else {
            throw CourierError(.integrity, "target \(Escape.quoted(name)): length \(bytes.count), metadata says \(length)")
        }
        guard !hashes.isEmpty else {
            throw CourierError(.malformed, "target \(Escape.quoted(name)): no hashes in its metadata")
        }
        for (algorithm, expected) in hashes.sorted(by: { $0.key < $1.key }) {
            guard let got = digest(algorithm, of: bytes) else {
                throw CourierError(.integrity, "target \(Escape.quoted(name)): unsupported hash algorithm \(Escape.quoted(algorithm))")
            }
            guard got == expected else {
                throw CourierError(.integrity, "target \(Escape.quoted(name)): \(algorithm) is \(got), metadata says \(Escape.text(expected))")
            }
        }
    }

    private static func hex<D: Sequence>(_ d: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef")
        var s = ""
        for b in d { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 0x0f)]) }
        return s
    }
}
