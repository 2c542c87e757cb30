import FoundationEssentials
@preconcurrency import Glibc

/// Detached signatures in the two Ed25519 formats vendors publish besides OpenPGP, parsed and
/// checked natively (no tool needed on the stager):
///
/// - **signify** (OpenBSD): key and signature files of two lines, an `untrusted comment:` and the
///   base64 of `"Ed"` + 8-byte key number + the 32-byte key or 64-byte signature. The signature
///   is Ed25519 over the file's bytes.
/// - **minisign**: the same framing, plus a `trusted comment:` line and a global signature over
///   the signature and that comment (so the comment cannot be swapped). Algorithm `Ed` signs the
///   file's bytes (legacy); `ED`, minisign's default since 0.10, signs the BLAKE2b-512 of the file.
///
/// Everything in these files is untrusted until the signature verifies; errors escape it.
public enum VendorSignature {
    public enum Format: String, Sendable, CaseIterable { case minisign, signify }

    public struct Key: Sendable, Equatable {
        public var keyNumber: [UInt8]
        public var key: PublicKey
        public var keyNumberHex: String { Hex.encode(keyNumber.reversed()) }
    }

    public struct Signature: Sendable {
        /// `Ed` or `ED` (minisign's pre-hashed form).
        public var algorithm: String
        public var keyNumber: [UInt8]
        public var signature: [UInt8]
        public var trustedComment: String?
        public var globalSignature: [UInt8]?
    }

    /// Ed25519 over the whole file needs the file in memory: bounded (minisign's `ED` streams).
    public static let maxInMemory = 512 << 20

    /// The base64 payload lines of a key or signature file, after their `untrusted comment:`.
    static func lines(_ text: String) -> [Substring] {
        text.split(separator: "\n", omittingEmptySubsequences: true).map { l in l.hasSuffix("\r") ? l.dropLast() : l }
    }

    static func decode(_ line: Substring) -> [UInt8]? {
        Data(base64Encoded: String(line).trimming(" \t")).map(Array.init)
    }

    public static func parseKey(_ text: String, format: Format, source: String) throws -> Key {
        let ls = lines(text)
        let i = ls.first?.hasPrefix("untrusted comment:") == true ? 1 : 0
        guard ls.count > i, let raw = decode(ls[i]), raw.count == 42, raw[0] == 0x45, raw[1] == 0x64 else {
            throw CourierError(
                .config,
                "\(source): not a \(format.rawValue) public key (an 'untrusted comment:' line, then the base64 of \"Ed\", an 8-byte key number and a 32-byte Ed25519 key)"
            )
        }
        return Key(keyNumber: Array(raw[2..<10]), key: try PublicKey(raw: Array(raw[10..<42])))
    }

    public static func parseSignature(_ bytes: [UInt8], format: Format, source: String) throws -> Signature {
        func bad(_ why: String) -> CourierError {
            CourierError(.signature, "\(source): not a \(format.rawValue) signature: \(why)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw bad("not text") }
        let ls = lines(text)
        guard ls.count >= 2, ls[0].hasPrefix("untrusted comment:") else {
            throw bad("no 'untrusted comment:' line first")
        }
        guard let raw = decode(ls[1]), raw.count == 74 else {
            throw bad("its second line is not the base64 of 74 bytes")
        }
        let alg = String(decoding: raw[0..<2], as: UTF8.self)
        var sig = Signature(algorithm: alg, keyNumber: Array(raw[2..<10]), signature: Array(raw[10..<74]))
        switch format {
        case .signify:
            guard alg == "Ed" else { throw bad("algorithm \(Escape.quoted(alg)), signify signs with \"Ed\"") }
        case .minisign:
            guard alg == "Ed" || alg == "ED" else {
                throw bad("algorithm \(Escape.quoted(alg)) (minisign: \"Ed\" or \"ED\")")
            }
            guard ls.count >= 4, ls[2].hasPrefix("trusted comment: ") else { throw bad("no 'trusted comment:' line") }
            sig.trustedComment = String(ls[2].dropFirst("trusted comment: ".count))
            guard let g = decode(ls[3]), g.count == 64 else {
                throw bad("the global signature is not the base64 of 64 bytes")
            }
            sig.globalSignature = g
        }
        return sig
    }

    /// Verifies `file` against a detached signature by `key`. Returns the trusted comment
    /// (minisign), which is then authenticated; throws `.signature` with the reason otherwise.
    @discardableResult
    public static func verify(file: String, signature s: Signature, key: Key, format: Format, display: String) throws
        -> String?
    {
        guard s.keyNumber == key.keyNumber else {
            throw CourierError(
                .signature,
                "\(display): signed by \(format.rawValue) key \(Hex.encode(s.keyNumber.reversed())), the configured vendor key is \(key.keyNumberHex)"
            )
        }
        let message: [UInt8]
        if s.algorithm == "ED" {
            message = try hashBLAKE2b(file)
        } else {
            message = try Sys.readFile(file, limit: maxInMemory)
        }
        guard key.key.isValidSignature(s.signature, for: message) else {
            throw CourierError(
                .signature,
                "\(display): the \(format.rawValue) signature does not verify with key \(key.keyNumberHex) (file altered, or signed by another key)"
            )
        }
        if format == .minisign {
            let comment = s.trustedComment ?? ""
            guard let g = s.globalSignature, key.key.isValidSignature(g, for: s.signature + Array(comment.utf8)) else {
                throw CourierError(
                    .signature, "\(display): the minisign trusted comment's signature does not verify (comment altered)"
                )
            }
            return comment
        }
        return nil
    }

    static func hashBLAKE2b(_ path: String) throws -> [UInt8] {
        let fd = try OwnedFD.open(path, O_RDONLY)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        var h = BLAKE2b()
        while true {
            let n = try Sys.read(fd.raw, buf.baseAddress!, buf.count, display: path)
            if n == 0 { break }
            h.update(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
        }
        return h.finalize()
    }
}
