import CourierCore
import Foundation

/// CourierCore's parsers: the package format (manifest, signature set, the whole package), the
/// in-file patch decoder, vendor signature files, and the JSON files Courier itself writes but
/// reads back from places others can write (outbox index, client status).
enum CoreTargets {
    static let all: [FuzzTarget] = [
        FuzzTarget("manifest", "manifest.json: decode, validate; an accepted one re-encodes to the same bytes twice") {
            b in
            let m = try Manifest.decode(b, maxFiles: 10_000)
            try m.validate(maxFiles: 10_000)
            let once = m.encoded()
            let again = try Manifest.decode(once).encoded()
            FuzzCheck.require(once == again, "a decoded manifest re-encodes differently")
        },
        FuzzTarget("signatures", "signatures.json: decode; an accepted set survives encode and decode") { b in
            let s = try SignatureSet.decode(b)
            let once = s.encoded()
            let again = try SignatureSet.decode(once).encoded()
            FuzzCheck.require(again == once, "a signature set re-encodes differently")
        },
        FuzzTarget("package", "a whole .cpkg, verified as push and the client do (signed by the fuzz key, FuzzSeeds)") {
            b in
            let path = try FuzzFiles.write(b, name: "package.cpkg")
            var o = VerifyOptions(trust: FuzzSeeds.trust, limits: Limits(), now: FuzzSeeds.created + 60)
            o.limits.maxEntries = 2_000
            o.limits.maxTotalBytes = 64 << 20
            o.limits.maxManifestBytes = 1 << 20
            _ = try PackageVerifier.verify(path: path, options: o)
        },
        FuzzTarget(
            "patch",
            "an in-file patch (zstd patch-from) decoded against a fixed base: [windowLog byte][size: 2 bytes LE][frame]"
        ) { b in
            guard b.count >= 3 else { throw CourierError(.malformed, "short input") }
            let windowLog = 10 + Int(b[0]) % 22
            let size = Int(b[1]) | Int(b[2]) << 8
            let patch = Array(b[3...])
            let base = FuzzSeeds.patchBase
            let out = try patch.withUnsafeBytes { p in
                try base.withUnsafeBytes {
                    try PatchCodec.decompress(patch: p, base: $0, resultSize: size, windowLog: windowLog, what: "fuzz")
                }
            }
            FuzzCheck.require(out.count == size, "a patch decoded to another size than asked")
        },
        FuzzTarget("vendor-minisign", "a minisign public key and signature file: [key length byte][key][signature]") {
            b in
            try vendor(b, .minisign)
        },
        FuzzTarget("vendor-signify", "a signify public key and signature file: [key length byte][key][signature]") {
            b in
            try vendor(b, .signify)
        },
        FuzzTarget("outbox-index", "an outbox's index.json: decode; an accepted one re-encodes to the same bytes twice")
        { b in
            let i = try OutboxIndex.decode(b, path: "index.json")
            let once = i.encoded()
            let again = try OutboxIndex.decode(once, path: "index.json").encoded()
            FuzzCheck.require(again == once, "an index re-encodes differently")
        },
        FuzzTarget("client-status", "a client's status.json as courier-deliver report reads it") { b in
            let s = try ClientStatus.decode(b, path: "status.json")
            let once = s.encoded()
            let again = try ClientStatus.decode(once, path: "status.json").encoded()
            FuzzCheck.require(again == once, "a status re-encodes differently")
        },
    ]

    static func vendor(_ b: [UInt8], _ format: VendorSignature.Format) throws {
        guard let n = b.first.map(Int.init), b.count >= 1 + n else { throw CourierError(.malformed, "short input") }
        let keyText = String(decoding: b[1..<(1 + n)], as: UTF8.self)
        let key = try VendorSignature.parseKey(keyText, format: format, source: "key")
        let sig = try VendorSignature.parseSignature(Array(b[(1 + n)...]), format: format, source: "signature")
        // Check it against a small file: parsing is the attack surface, and a signature that
        // does not match must be refused, not crash.
        let file = try FuzzFiles.write(Array("fuzzed content\n".utf8), name: "vendor-file")
        _ = try VendorSignature.verify(file: file, signature: sig, key: key, format: format, display: "vendor-file")
    }
}

/// Scratch files for the targets that read a path: one directory per process, reused.
enum FuzzFiles {
    static let dir: String = {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        let d = "\(base)/courier-fuzz-\(Sys.processID())"
        try? Sys.mkdirs(d)
        return d
    }()

    static func write(_ bytes: [UInt8], name: String) throws -> String {
        let p = dir + "/" + name
        try Sys.writeFileAtomically(p, bytes, durable: false)
        return p
    }
}
