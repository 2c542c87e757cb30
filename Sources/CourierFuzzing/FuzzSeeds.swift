import CourierCore
import Foundation

/// Valid inputs for the targets that a mutator could not find alone (signed packages, patches,
/// signature files), made from a fixed key and a fixed clock so that they verify in every run.
/// `make fuzz-seeds` writes them into `Fixtures/fuzz/<target>/ok-*`; the replay test checks that
/// each is still accepted, so a format change that would leave the fuzzers mutating stale seeds
/// fails the suite instead.
public enum FuzzSeeds {
    /// The fuzz key: a fixed Ed25519 seed. It signs nothing but these seeds, and only the fuzz
    /// targets trust it.
    public static let key = try! SigningKey(seed: Array("courier fuzz key, trusts nothing".utf8))
    public static let trust = TrustStore(keys: [key.publicKey])
    /// 2026-01-01T00:00:00Z: the seeds' creation time and the targets' clock.
    public static let created: Int64 = 1_767_225_600

    /// The base the `patch` target decodes against: 8 KiB of text-like bytes.
    public static let patchBase: [UInt8] = {
        var out: [UInt8] = []
        var i = 0
        while out.count < 8192 {
            out += Array("signature-\(i) = \(i &* 2_654_435_761 & 0xffff_ffff);\n".utf8)
            i += 1
        }
        return Array(out.prefix(8192))
    }()

    /// Every seed: (target, file name, bytes).
    public static func make() throws -> [(target: String, name: String, bytes: [UInt8])] {
        var out: [(String, String, [UInt8])] = []
        let work = FuzzFiles.dir + "/seeds"
        try Sys.removeTree(work)
        defer { try? Sys.removeTree(work) }
        // Two revisions of a small tree: text, a binary blob, a nested directory.
        let base = work + "/r1"
        let next = work + "/r2"
        for (dir, extra) in [(base, ""), (next, "rule 4242 added\n")] {
            try Sys.mkdirs(dir + "/rules/extra")
            try Sys.writeFileAtomically(dir + "/rules/main.rules", Array((patchText + extra).utf8), durable: false)
            try Sys.writeFileAtomically(dir + "/rules/extra/local.rules", Array("alert any\n".utf8), durable: false)
            try Sys.writeFileAtomically(
                dir + "/db.bin", (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }, durable: false)
        }
        var o = PackageBuilder.Options(type: "fuzz", revision: 1, keys: [key], limits: Limits())
        o.created = created
        o.lifetime = 100 * 365 * 86400
        let full = work + "/fuzz_1.cpkg"
        let m1 = try PackageBuilder.buildFull(tree: base, to: full, options: o)
        o.revision = 2
        let full2 = work + "/fuzz_2.cpkg"
        try PackageBuilder.buildFull(tree: next, to: full2, options: o)
        let delta = work + "/fuzz_2_from_1.cpkg"
        try PackageBuilder.buildDelta(
            baseRevision: 1, baseFiles: Array(m1.files), tree: next, to: delta,
            options: o, baseTree: base)
        for (name, p) in [("ok-full", full), ("ok-full-2", full2), ("ok-delta", delta)] {
            out.append(("package", name, try Sys.readFile(p, limit: 1 << 20)))
            let r = try PackageReader(
                path: p, options: VerifyOptions(trust: trust, limits: Limits(), now: created + 60))
            out.append(("manifest", name, r.manifestBytes))
            out.append(("signatures", name, SignatureSet.sign(r.manifestBytes, with: [key]).encoded()))
        }
        // An in-file patch: the base with a few lines changed, one appended.
        var changed = patchBase
        changed.replaceSubrange(100..<110, with: Array("CHANGED!!!".utf8))
        changed += Array("signature-new = 1;\n".utf8)
        let (frame, windowLog) = try patchBase.withUnsafeBytes { b in
            try changed.withUnsafeBytes { try PatchCodec.compress(base: b, new: $0) }
        }
        out.append(
            (
                "patch", "ok-patch",
                [UInt8(windowLog - 10), UInt8(changed.count & 0xff), UInt8(changed.count >> 8)] + frame
            ))
        // Vendor signatures over the vendor target's fixed file.
        let file = Array("fuzzed content\n".utf8)
        out.append(("vendor-minisign", "ok-minisign", framed(minisignKey(), minisignSignature(file))))
        out.append(
            (
                "vendor-minisign", "ok-minisign-prehashed",
                framed(minisignKey(), minisignSignature(file, prehashed: true))
            ))
        out.append(("vendor-signify", "ok-signify", framed(signifyKey(), signifySignature(file))))
        return out
    }

    static let patchText = (0..<200).map { "alert tcp any any -> any \($0) (sid:\($0);)\n" }.joined()

    static func framed(_ key: String, _ sig: String) -> [UInt8] {
        let k = Array(key.utf8)
        precondition(k.count < 256)
        return [UInt8(k.count)] + k + Array(sig.utf8)
    }

    /// minisign's formats (https://jedisct1.github.io/minisign/): a public key is
    /// base64("Ed" ‖ key id (8) ‖ key (32)); a signature file has base64("Ed"|"ED" ‖ key id ‖
    /// signature of the file, or of its BLAKE2b-512 for "ED"), a trusted comment, and a global
    /// signature over that signature and the comment.
    static let keyNumber: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]

    static func minisignKey() -> String {
        "untrusted comment: minisign public key\n"
            + Data(Array("Ed".utf8) + keyNumber + key.publicKey.raw).base64EncodedString() + "\n"
    }

    static func minisignSignature(_ file: [UInt8], prehashed: Bool = false) -> String {
        let message = prehashed ? BLAKE2b.hash(file, outputLength: 64) : file
        let sig = key.sign(message)
        let comment = "timestamp:1767225600\tfile:fuzz"
        let global = key.sign(sig + Array(comment.utf8))
        return "untrusted comment: signature\n"
            + Data(Array((prehashed ? "ED" : "Ed").utf8) + keyNumber + sig).base64EncodedString() + "\n"
            + "trusted comment: \(comment)\n" + Data(global).base64EncodedString() + "\n"
    }

    /// signify's: base64("Ed" ‖ key number (8) ‖ key (32)) and base64("Ed" ‖ key number ‖ signature).
    static func signifyKey() -> String {
        "untrusted comment: signify public key\n"
            + Data(Array("Ed".utf8) + keyNumber + key.publicKey.raw).base64EncodedString() + "\n"
    }

    static func signifySignature(_ file: [UInt8]) -> String {
        "untrusted comment: verify with fuzz.pub\n"
            + Data(Array("Ed".utf8) + keyNumber + key.sign(file)).base64EncodedString() + "\n"
    }
}
