import FoundationEssentials

/// The signatures entry of a package (docs/FORMAT.md §4): Ed25519 signatures over
/// `"courier-manifest-v1\n"` followed by the exact bytes of the manifest entry. The prefix
/// separates this use of the key from any other.
public struct SignatureSet: Codable, Sendable {
    public struct Signature: Codable, Sendable {
        public var keyid: String
        public var algorithm: String
        /// Base64 of the 64-byte Ed25519 signature.
        public var signature: String
    }

    public var format: Int
    public var signatures: [Signature]

    public static let domain: [UInt8] = Array("courier-manifest-v1\n".utf8)

    public static func message(for manifestBytes: [UInt8]) -> [UInt8] { domain + manifestBytes }

    public static func sign(_ manifestBytes: [UInt8], with keys: [SigningKey]) -> SignatureSet {
        let msg = message(for: manifestBytes)
        return SignatureSet(
            format: 1,
            signatures: keys.map {
                Signature(keyid: $0.keyID, algorithm: "ed25519", signature: Data($0.sign(msg)).base64EncodedString())
            })
    }

    public func encoded() -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try! enc.encode(self))
    }

    public static func decode(_ bytes: [UInt8]) throws -> SignatureSet {
        try StrictJSON.check(bytes, what: "signatures entry")
        do { return try JSONDecoder().decode(SignatureSet.self, from: Data(bytes)) } catch {
            throw CourierError(.malformed, "signatures entry is not valid JSON: \(error)")
        }
    }

    /// Checks the set against a trust store. Returns the key ids of the trusted keys whose
    /// signatures verify; throws with the specific reason otherwise.
    ///
    /// Revocation comes first and does not believe the declared `keyid`: a declared id that is
    /// revoked (in any letter case) refuses, and so does any signature that verifies with a
    /// revoked public key the store knows, whatever id and algorithm it is filed under.
    public func verify(manifestBytes: [UInt8], trust: TrustStore) throws -> [String] {
        try verify(message: SignatureSet.message(for: manifestBytes), trust: trust)
    }

    /// As `verify(manifestBytes:trust:)`, given the signed message itself (domain + manifest).
    public func verify(message msg: [UInt8], trust: TrustStore) throws -> [String] {
        guard msg.starts(with: SignatureSet.domain) else {
            throw CourierError(.signature, "the signed message lacks its domain string")
        }
        guard format == 1 else { throw CourierError(.malformed, "signatures entry: format \(format) is not supported") }
        guard !signatures.isEmpty else { throw CourierError(.signature, "package is not signed (no signatures)") }
        var good: [String] = []
        var problems: [String] = []
        for s in signatures {
            let declared = TrustStore.asciiLowercased(s.keyid)
            let shown = Escape.text(s.keyid)
            if trust.revoked.contains(declared) {
                throw CourierError(.revokedKey, "package is signed by revoked key \(shown)")
            }
            let raw = Data(base64Encoded: s.signature).map(Array.init)
            if let raw, raw.count == 64, let k = trust.revokedKeys.first(where: { $0.isValidSignature(raw, for: msg) })
            {
                throw CourierError(
                    .revokedKey,
                    "package is signed by revoked key \(k.keyID) (the signature is filed under key id \(Escape.quoted(s.keyid)))"
                )
            }
            guard s.algorithm == "ed25519" else {
                problems.append("\(shown): unknown algorithm \(Escape.quoted(s.algorithm))")
                continue
            }
            guard let key = trust.trusted[s.keyid] else {
                problems.append("\(shown): not a trusted key")
                continue
            }
            guard let raw, raw.count == 64 else {
                problems.append("\(shown): signature is not base64 of 64 bytes")
                continue
            }
            if key.isValidSignature(raw, for: msg) {
                if !good.contains(s.keyid) { good.append(s.keyid) }
            } else {
                problems.append("\(shown): signature does not verify (manifest or signature altered)")
            }
        }
        if good.count >= trust.threshold { return good }
        let trustedIDs = trust.trusted.keys.sorted().joined(separator: ", ")
        let detail = problems.isEmpty ? "" : ": " + problems.joined(separator: "; ")
        if good.isEmpty {
            throw CourierError(.signature, "no valid signature by a trusted key (trusted: \(trustedIDs))\(detail)")
        }
        throw CourierError(.signature, "\(good.count) valid signature(s), \(trust.threshold) required\(detail)")
    }
}
