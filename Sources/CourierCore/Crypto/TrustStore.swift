@preconcurrency import Glibc

/// The public keys a verifier trusts, and the ones it must refuse.
///
/// `--trust PATH` is either one `.pub` file, or a directory whose `*.pub` files are all trusted
/// (several keys = rotation: sign with the new key, ship it, later retire the old one). In a
/// directory, `revoked` is either a file of key ids or `.pub` lines (one per line, `#` comments),
/// or a directory of `.pub` files; a package signed by a revoked key is refused even if another
/// trusted key also signed it, because a revoked key's signature means someone still uses it.
///
/// Revocation is by key, not only by the id a signature declares: the `keyid` in a signatures
/// entry is the signer's claim, and a thief holding a revoked key can file its signature under
/// any id (issue #11.4). So the store keeps the public keys of revoked keys wherever it learns
/// them (`revoked/*.pub`, public-key lines in `revoked`, a `.pub` in the directory whose id is
/// listed) and `SignatureSet.verify` tries every signature against every one of them. A list
/// of bare ids can only match declared ids.
public struct TrustStore: Sendable {
    public private(set) var trusted: [String: PublicKey] = [:]
    /// Revoked key ids, lowercase hex.
    public private(set) var revoked: Set<String> = []
    /// The revoked keys whose public key is known: any signature that verifies with one refuses.
    public private(set) var revokedKeys: [PublicKey] = []
    /// How many distinct trusted keys must sign (TUF's threshold). Default 1.
    public var threshold: Int = 1

    /// `keys` whose id is in `revoked` are not trusted; they are kept as revoked keys.
    public init(keys: [PublicKey], revoked: Set<String> = [], revokedKeys: [PublicKey] = [], threshold: Int = 1) {
        self.revoked = Set(revoked.map(TrustStore.asciiLowercased))
        self.threshold = threshold
        for k in revokedKeys { addRevoked(k) }
        for k in keys {
            if self.revoked.contains(k.keyID) { addRevoked(k) } else { trusted[k.keyID] = k }
        }
    }

    private mutating func addRevoked(_ k: PublicKey) {
        revoked.insert(k.keyID)
        if !revokedKeys.contains(where: { $0.raw == k.raw }) { revokedKeys.append(k) }
        trusted.removeValue(forKey: k.keyID)
    }

    /// ASCII-only lowercasing: key ids are hex, and Unicode case mapping would turn the Kelvin
    /// sign into a `k`.
    static func asciiLowercased(_ s: String) -> String {
        String(decoding: s.utf8.map { $0 >= 0x41 && $0 <= 0x5a ? $0 + 0x20 : $0 }, as: UTF8.self)
    }

    public static func load(_ path: String, threshold: Int = 1) throws -> TrustStore {
        guard let st = try Sys.lstat(path) else {
            throw CourierError(.key, "\(path): trust store not found (give a .pub file or a directory of them)")
        }
        var keys: [PublicKey] = []
        var revokedIDs = Set<String>()
        var revokedKeys: [PublicKey] = []
        if (st.st_mode & S_IFMT) == S_IFDIR || Sys.isDirectory(path) {
            for name in try Sys.listDirectory(path).sorted() where name.hasSuffix(".pub") && !name.hasPrefix(".") {
                keys.append(try PublicKey.load(path + "/" + name))
            }
            let rev = path + "/revoked"
            if Sys.isDirectory(rev) {
                for name in try Sys.listDirectory(rev).sorted() where name.hasSuffix(".pub") {
                    revokedKeys.append(try PublicKey.load(rev + "/" + name))
                }
            } else if Sys.exists(rev) {
                let list = try parseRevokedList(Sys.readFile(rev, limit: 1 << 20), source: rev)
                revokedIDs = list.ids
                revokedKeys = list.keys
            }
        } else {
            keys.append(try PublicKey.load(path))
        }
        let store = TrustStore(keys: keys, revoked: revokedIDs, revokedKeys: revokedKeys, threshold: threshold)
        if store.trusted.isEmpty {
            throw CourierError(.key, "\(path): no usable public key (no .pub file, or all revoked)")
        }
        return store
    }

    /// A revoked list: one key id (16 hex digits, either case) or one `.pub` line per line; `#`
    /// starts a comment. Public-key lines are worth more than ids: only a known key lets the
    /// verifier recognise its signature under a false `keyid`.
    static func parseRevokedList(_ bytes: [UInt8], source: String) throws -> (ids: Set<String>, keys: [PublicKey]) {
        var ids = Set<String>()
        var keys: [PublicKey] = []
        for (n, raw) in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .enumerated()
        {
            let line =
                raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first?
                .trimming(" \t\r") ?? ""
            if line.isEmpty { continue }
            if line.hasPrefix(PublicKey.tag) {
                let k = try PublicKey.parse(line, source: "\(source):\(n + 1)")
                ids.insert(k.keyID)
                keys.append(k)
            } else if line.utf8.count == 16,
                line.utf8.allSatisfy({
                    ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) || ($0 >= 0x41 && $0 <= 0x46)
                })
            {
                ids.insert(asciiLowercased(line))
            } else {
                throw CourierError(.key, "\(source):\(n + 1): not a key id (16 hex digits) or a public key line")
            }
        }
        return (ids, keys)
    }
}
