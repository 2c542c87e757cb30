/// The public keys a verifier trusts, and the ones it must refuse.
///
/// `--trust PATH` is either one `.pub` file, or a directory whose `*.pub` files are all trusted
/// (several keys = rotation: sign with the new key, ship it, later retire the old one). In a
/// directory, `revoked` is either a file of key ids or `.pub` lines (one per line, `#` comments),
/// or a directory of `.pub` files; a package signed by a revoked key is refused even if another
/// trusted key also signed it, because a revoked key's signature means someone still uses it.
public struct TrustStore: Sendable {
    public private(set) var trusted: [String: PublicKey] = [:]
    public private(set) var revoked: Set<String> = []
    /// How many distinct trusted keys must sign (TUF's threshold). Default 1.
    public var threshold: Int = 1

    public init(keys: [PublicKey], revoked: Set<String> = [], threshold: Int = 1) {
        for k in keys { trusted[k.keyID] = k }
        self.revoked = revoked
        self.threshold = threshold
    }

    public static func load(_ path: String, threshold: Int = 1) throws -> TrustStore {
        guard let st = try Sys.lstat(path) else {
            throw CourierError(.key, "\(path): trust store not found (give a .pub file or a directory of them)")
        }
        var store = TrustStore(keys: [], threshold: threshold)
        if (st.st_mode & S_IFMT) == S_IFDIR || Sys.isDirectory(path) {
            for name in try Sys.listDirectory(path).sorted() where name.hasSuffix(".pub") && !name.hasPrefix(".") {
                let k = try PublicKey.load(path + "/" + name)
                store.trusted[k.keyID] = k
            }
            let rev = path + "/revoked"
            if Sys.isDirectory(rev) {
                for name in try Sys.listDirectory(rev) where name.hasSuffix(".pub") {
                    store.revoked.insert(try PublicKey.load(rev + "/" + name).keyID)
                }
            } else if Sys.exists(rev) {
                store.revoked.formUnion(try parseRevokedList(Sys.readFile(rev, limit: 1 << 20), source: rev))
            }
        } else {
            let k = try PublicKey.load(path)
            store.trusted[k.keyID] = k
        }
        for id in store.revoked { store.trusted.removeValue(forKey: id) }
        if store.trusted.isEmpty {
            throw CourierError(.key, "\(path): no usable public key (no .pub file, or all revoked)")
        }
        return store
    }

    /// A revoked list: one key id (16 hex digits) or one `.pub` line per line; `#` starts a comment.
    static func parseRevokedList(_ bytes: [UInt8], source: String) throws -> Set<String> {
        var out = Set<String>()
        for (n, raw) in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first?
                .trimming(" \t\r") ?? ""
            if line.isEmpty { continue }
            if line.hasPrefix(PublicKey.tag) {
                out.insert(try PublicKey.parse(line, source: "\(source):\(n + 1)").keyID)
            } else if line.utf8.count == 16, line.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) {
                out.insert(line)
            } else {
                throw CourierError(.key, "\(source):\(n + 1): not a key id (16 lowercase hex digits) or a public key line")
            }
        }
        return out
    }
}

extension Substring {
    public func trimming(_ set: String) -> String {
        let chars = Set(set)
        var s = self[...]
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
