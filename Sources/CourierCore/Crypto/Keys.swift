@preconcurrency import Crypto
import FoundationEssentials
@preconcurrency import Glibc

/// Hex encoding used for hashes and key ids.
public enum Hex {
    static let digits: [UInt8] = Array("0123456789abcdef".utf8)
    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var out = [UInt8]()
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The SHA-256 of `bytes` in lowercase hex.
    public static func sha256(_ bytes: [UInt8]) -> String { encode(SHA256.hash(data: bytes)) }

    /// Whether `b` is one of 0-9, a-f (what `encode` writes).
    public static func isLowerDigit(_ b: UInt8) -> Bool { digitValue(b, lowercaseOnly: true) != nil }

    /// The value of one hex digit: 0-9, a-f, and A-F unless `lowercaseOnly`; nil for anything
    /// else. The one digit decoder of every hex parser (manifests, JSON escapes, TUF keys).
    @inlinable
    public static func digitValue(_ c: UInt8, lowercaseOnly: Bool = false) -> UInt8? {
        switch c {
        case 0x30...0x39: return c &- 0x30
        case 0x61...0x66: return c &- 0x57
        case 0x41...0x46: return lowercaseOnly ? nil : c &- 0x37
        default: return nil
        }
    }

    /// Hex (either case, as Python's `bytes.fromhex` takes it, without its whitespace leniency)
    /// to bytes; nil when not hex.
    public static func decode(_ s: String) -> [UInt8]? {
        let u = Array(s.utf8)
        guard u.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(u.count / 2)
        var i = 0
        while i < u.count {
            guard let h = digitValue(u[i]), let l = digitValue(u[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }
}

/// An Ed25519 public key of the organisation's staging server.
///
/// File format (`*.pub`, one line): `courier-ed25519-v1 <base64 of the 32 raw key bytes> [comment]`.
/// The key id is the first 8 bytes of SHA-256 over the raw key, in lowercase hex (16 digits).
public struct PublicKey: Sendable, Hashable {
    public static let tag = "courier-ed25519-v1"
    public let raw: [UInt8]
    public let comment: String

    public init(raw: [UInt8], comment: String = "") throws {
        guard raw.count == 32 else { throw CourierError(.key, "an Ed25519 public key has 32 bytes, not \(raw.count)") }
        self.raw = raw
        self.comment = comment
    }

    public var keyID: String { PublicKey.keyID(raw) }

    public static func keyID(_ raw: [UInt8]) -> String { Hex.encode(SHA256.hash(data: raw).prefix(8)) }

    public var fileText: String {
        "\(PublicKey.tag) \(Data(raw).base64EncodedString())" + (comment.isEmpty ? "" : " \(comment)") + "\n"
    }

    /// Parses one `.pub` line; `source` names the file in errors.
    public static func parse(_ text: String, source: String) throws -> PublicKey {
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0] == tag, let data = Data(base64Encoded: String(parts[1])), data.count == 32
        else {
            throw CourierError(
                .key, "\(source): not a Courier public key (expected '\(tag) <base64 of 32 bytes> [comment]')")
        }
        return try PublicKey(raw: Array(data), comment: parts.count > 2 ? String(parts[2]) : "")
    }

    public static func load(_ path: String) throws -> PublicKey {
        let bytes = try Sys.readFile(path, limit: 64 << 10)
        return try parse(String(decoding: bytes, as: UTF8.self), source: path)
    }

    /// Checks an Ed25519 signature over `message`.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        guard let k = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else { return false }
        return k.isValidSignature(signature, for: message)
    }
}

/// The staging server's signing key. File format (mode 0600, one line):
/// `courier-ed25519-secret-v1 <base64 of the 32-byte Ed25519 seed>`.
public struct SigningKey: Sendable {
    public static let tag = "courier-ed25519-secret-v1"
    let key: Curve25519.Signing.PrivateKey

    public init() { key = Curve25519.Signing.PrivateKey() }

    public init(seed: [UInt8]) throws {
        do { key = try Curve25519.Signing.PrivateKey(rawRepresentation: seed) } catch {
            throw CourierError(.key, "an Ed25519 seed has 32 bytes")
        }
    }

    public var publicKey: PublicKey { try! PublicKey(raw: Array(key.publicKey.rawRepresentation)) }
    public var keyID: String { publicKey.keyID }

    public func sign(_ message: [UInt8]) -> [UInt8] { Array(try! key.signature(for: message)) }

    public static func load(_ path: String) throws -> SigningKey {
        let bytes = try Sys.readFile(path, limit: 64 << 10)
        let text = String(decoding: bytes, as: UTF8.self)
        let parts = text.split(whereSeparator: { $0 == " " || $0.isNewline })
        guard parts.count >= 2, parts[0] == tag, let data = Data(base64Encoded: String(parts[1])), data.count == 32
        else {
            throw CourierError(.key, "\(path): not a Courier signing key (expected '\(tag) <base64 seed>')")
        }
        return try SigningKey(seed: Array(data))
    }

    /// Writes `path` (mode 0600, created exclusively: an existing key is never overwritten)
    /// and `path.pub` (mode 0644). Returns the public key.
    @discardableResult
    public func write(to path: String, comment: String = "") throws -> PublicKey {
        let pubPath = path + ".pub"
        for p in [path, pubPath] where Sys.exists(p) {
            throw CourierError(.key, "\(p): already exists; refusing to overwrite a key (move it away first)")
        }
        let secret = "\(SigningKey.tag) \(key.rawRepresentation.base64EncodedString())\n"
        let fd = try OwnedFD.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
        do {
            try Sys.fchmod(fd.raw, 0o600, display: path)  // umask cannot widen it, but make it exact
            try Sys.writeAll(fd.raw, Array(secret.utf8), display: path)
            try Sys.fsync(fd.raw, display: path)
        } catch {
            _ = consume fd  // closed before the half-written key is removed
            try? Sys.unlink(path)
            throw error
        }
        _ = consume fd  // closed now, before the public key file is created
        let pub = try PublicKey(raw: publicKey.raw, comment: comment)
        let pfd = try OwnedFD.open(pubPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644)
        do {
            try Sys.writeAll(pfd.raw, Array(pub.fileText.utf8), display: pubPath)
            try Sys.fsync(pfd.raw, display: pubPath)
        } catch {
            _ = consume pfd
            try? Sys.unlink(pubPath)
            try? Sys.unlink(path)
            throw error
        }
        return pub
    }
}
