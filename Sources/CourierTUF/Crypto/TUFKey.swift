import CourierCore
import Crypto
import _CryptoExtras

/// A public key as TUF metadata lists it (`keys` of root, `delegations.keys` of targets), after
/// securesystemslib's `SSlibKey`.
///
/// Which (keytype, scheme) pairs parse follows securesystemslib's `KEY_FOR_TYPE_AND_SCHEME`:
/// python-tuf refuses a whole metadata file that lists a pair outside that table, so we do too
/// (``knownPairs``). Of the known pairs, those swift-crypto can verify are verified; the others
/// (ML-DSA, GPG) parse but never verify: their signatures count as missing, which is what a
/// python-tuf without the optional library would do, and never weakens a threshold.
public struct TUFKey: Sendable, Equatable {
    public let keyType: String
    public let scheme: String
    /// The `keyval` object; `keyval.public` is required to be a string (SSlibKey's rule).
    public let keyval: [String: JSONValue]
    /// The whole key object as found in the metadata (unknown fields kept).
    public let json: JSONValue

    /// securesystemslib 1.x `KEY_FOR_TYPE_AND_SCHEME` (sigstore not registered by default).
    public static let knownPairs: [(String, String)] = [
        ("ecdsa", "ecdsa-sha2-nistp256"), ("ecdsa", "ecdsa-sha2-nistp384"), ("ecdsa", "ecdsa-sha2-nistp521"),
        ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"), ("ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384"),
        ("ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521"),
        ("ed25519", "ed25519"),
        ("mldsa", "mldsa-44-1"), ("mldsa", "mldsa-65-1"), ("mldsa", "mldsa-87-1"),
        ("rsa", "rsassa-pss-sha256"), ("rsa", "rsassa-pss-sha384"), ("rsa", "rsassa-pss-sha512"),
        ("rsa", "rsa-pkcs1v15-sha256"), ("rsa", "rsa-pkcs1v15-sha384"), ("rsa", "rsa-pkcs1v15-sha512"),
        ("rsa", "pgp+rsa-pkcsv1.5"), ("dsa", "pgp+dsa-fips-180-2"), ("eddsa", "pgp+eddsa-ed25519"),
    ]

    /// Parses one key object. `keyid` only names the key in errors.
    public init(json: JSONValue, keyid: String) throws {
        guard case .object = json else { throw CourierError(.malformed, "key \(Escape.quoted(keyid)): not an object") }
        guard let kt = json[field: "keytype"]?.stringValue, let sc = json[field: "scheme"]?.stringValue,
            Self.knownPairs.contains(where: { $0.0.utf8.elementsEqual(kt.utf8) && $0.1.utf8.elementsEqual(sc.utf8) })
        else {
            let kt = json[field: "keytype"]?.stringValue ?? "?"
            let sc = json[field: "scheme"]?.stringValue ?? "?"
            throw CourierError(
                .malformed,
                "key \(Escape.quoted(keyid)): unsupported public key \(Escape.quoted(kt))/\(Escape.quoted(sc))")
        }
        guard let kv = json[field: "keyval"]?.objectValue, json[field: "keyval"]?[field: "public"]?.stringValue != nil
        else {
            throw CourierError(.malformed, "key \(Escape.quoted(keyid)): keyval.public must be a string")
        }
        self.keyType = kt
        self.scheme = sc
        self.keyval = kv
        self.json = json
    }

    public var publicValue: String { exactLookup(keyval, "public")?.stringValue ?? "" }

    /// The key id securesystemslib computes by default: SHA-256 hex of the canonical JSON of
    /// `{keytype, scheme, keyval}`. TUF does not require metadata to use it (python-tuf takes the
    /// id as listed), so this is for tools, not for verification.
    public var defaultKeyID: String {
        let v = JSONValue.object(["keytype": .string(keyType), "scheme": .string(scheme), "keyval": .object(keyval)])
        return Hex.encode(SHA256.hash(data: v.canonicalBytes))
    }

    /// Whether `signature` (raw bytes, already hex-decoded) is a valid signature of `message`.
    /// Any failure — unsupported scheme, a key that does not parse, a malformed signature — is
    /// `false`: an unverifiable signature counts as no signature, as in python-tuf.
    public func verify(signature: [UInt8], message: [UInt8]) -> Bool {
        do {
            switch (keyType, scheme) {
            case ("ed25519", "ed25519"):
                guard let raw = Hex.decode(publicValue), raw.count == 32 else { return false }
                return try Curve25519.Signing.PublicKey(rawRepresentation: raw).isValidSignature(
                    signature, for: message)
            case ("ecdsa", "ecdsa-sha2-nistp256"), ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"):
                let k = try P256.Signing.PublicKey(pemRepresentation: publicValue)
                let s = try P256.Signing.ECDSASignature(derRepresentation: signature)
                return k.isValidSignature(s, for: SHA256.hash(data: message))
            case ("ecdsa", "ecdsa-sha2-nistp384"), ("ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384"):
                let k = try P384.Signing.PublicKey(pemRepresentation: publicValue)
                let s = try P384.Signing.ECDSASignature(derRepresentation: signature)
                return k.isValidSignature(s, for: SHA384.hash(data: message))
            case ("ecdsa", "ecdsa-sha2-nistp521"), ("ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521"):
                let k = try P521.Signing.PublicKey(pemRepresentation: publicValue)
                let s = try P521.Signing.ECDSASignature(derRepresentation: signature)
                return k.isValidSignature(s, for: SHA512.hash(data: message))
            case ("rsa", "rsassa-pss-sha256"), ("rsa", "rsa-pkcs1v15-sha256"):
                return try rsa(signature, SHA256.hash(data: message))
            case ("rsa", "rsassa-pss-sha384"), ("rsa", "rsa-pkcs1v15-sha384"):
                return try rsa(signature, SHA384.hash(data: message))
            case ("rsa", "rsassa-pss-sha512"), ("rsa", "rsa-pkcs1v15-sha512"):
                return try rsa(signature, SHA512.hash(data: message))
            default:
                return false
            }
        } catch {
            return false
        }
    }

    /// RSA: securesystemslib signs PSS with salt length = digest length and verifies with
    /// `PSS.AUTO`; swift-crypto's `.PSS` verifies with salt length = digest length, which accepts
    /// what securesystemslib (and python-tuf's `CryptoSigner`) produce.
    private func rsa<D: Digest>(_ signature: [UInt8], _ digest: D) throws -> Bool {
        let k = try _RSA.Signing.PublicKey(pemRepresentation: publicValue)
        let padding: _RSA.Signing.Padding = scheme.hasPrefix("rsassa-pss") ? .PSS : .insecurePKCS1v1_5
        return k.isValidSignature(
            _RSA.Signing.RSASignature(rawRepresentation: signature), for: digest, padding: padding)
    }
}
