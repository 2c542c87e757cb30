import CourierCore
import FoundationEssentials

/// OpenPGP detached signatures (`signature_format = "openpgp"`), checked by `gpgv` — the verifier
/// Debian's apt relies on — against a keyring file the configuration names, never the user's
/// GnuPG home. A signature counts only when gpgv exits 0 *and* its machine-readable status
/// (`--status-fd`) has a `VALIDSIG` whose key (the signing subkey or its primary key) is one of
/// the fingerprints the configuration lists: a keyring that gains a key does not widen trust,
/// and there is no trust on first use.
enum OpenPGP {
    struct Verdict: Equatable {
        var fingerprint: String
    }

    /// Normalises a configured fingerprint: hex digits only (spaces allowed), upper case; 40 (v4)
    /// or 64 (v5/v6) digits. nil when it is not one.
    static func normalise(_ s: String) -> String? {
        let hex = s.filter { $0 != " " }.uppercased()
        guard hex.count == 40 || hex.count == 64, hex.allSatisfy({ $0.isHexDigit }) else { return nil }
        return hex
    }

    /// The verdict from gpgv's exit status and status lines (pure, tested with real gpgv output).
    static func judge(status: Int32, output: String, allowed: Set<String>, display: String) throws -> Verdict {
        var valid: [(String, String?)] = []
        var noKey: [String] = []
        var bad = false
        var expiredKey = false
        var revokedKey = false
        var expiredSig = false
        var noData = false
        for line in output.split(separator: "\n") where line.hasPrefix("[GNUPG:] ") {
            let f = line.dropFirst(9).split(separator: " ")
            guard let tag = f.first else { continue }
            switch tag {
            case "VALIDSIG" where f.count >= 2:
                valid.append((String(f[1]).uppercased(), f.count >= 11 ? String(f[10]).uppercased() : nil))
            case "BADSIG": bad = true
            case "EXPKEYSIG": expiredKey = true
            case "REVKEYSIG": revokedKey = true
            case "EXPSIG": expiredSig = true
            case "NO_PUBKEY" where f.count >= 2: noKey.append(String(f[1]))
            case "NODATA", "UNEXPECTED": noData = true
            default: break
            }
        }
        func refuse(_ why: String) -> CourierError { CourierError(.signature, "\(display): \(why)") }
        if bad { throw refuse("the OpenPGP signature does not verify (file or signature altered)") }
        if revokedKey { throw refuse("the OpenPGP signature is by a revoked key") }
        if expiredKey { throw refuse("the OpenPGP signature is by an expired key") }
        if expiredSig { throw refuse("the OpenPGP signature has expired") }
        if !noKey.isEmpty {
            throw refuse(
                "signed by OpenPGP key \(noKey.map(Escape.text).joined(separator: ", ")), which is not in the vendor keyring"
            )
        }
        if noData || (valid.isEmpty && status != 0) {
            throw refuse("not an OpenPGP signature (gpgv found no signature data; exit \(status))")
        }
        guard status == 0, !valid.isEmpty else { throw refuse("gpgv did not verify the signature (exit \(status))") }
        for (fpr, primary) in valid {
            if allowed.contains(fpr) { return Verdict(fingerprint: fpr) }
            if let p = primary, allowed.contains(p) { return Verdict(fingerprint: p) }
        }
        let shown = valid.map { Escape.text($0.1 ?? $0.0) }.joined(separator: ", ")
        throw refuse("signed by OpenPGP key \(shown), which is not among vendor_fingerprints")
    }

    /// Runs gpgv in a private, throw-away home under `workDir`. `keyring`: a binary keyring or
    /// an armored public key block (de-armored here, since gpgv reads only the binary form).
    static func verify(
        file: String, signature: [UInt8], keyring: String, fingerprints: [String],
        workDir: String, display: String
    ) throws -> Verdict {
        let home = workDir + "/gpgv-home"
        try Sys.removeTree(home)
        try Sys.mkdir(home, 0o700)
        defer { try? Sys.removeTree(home) }
        let keyBytes = try Sys.readFile(keyring, limit: 16 << 20)
        var ring = keyring
        if let text = String(validating: keyBytes.prefix(64 << 10), as: UTF8.self),
            text.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        {
            guard let raw = dearmor(String(decoding: keyBytes, as: UTF8.self)) else {
                throw CourierError(.config, "\(keyring): an armored OpenPGP key that cannot be decoded")
            }
            ring = home + "/vendor.gpg"
            try Sys.writeFileAtomically(ring, raw, mode: 0o600, durable: false)
        }
        let sigPath = home + "/download.sig"
        try Sys.writeFileAtomically(sigPath, signature, mode: 0o600, durable: false)
        var env = ChildProcess.currentEnvironment()
        env["LC_ALL"] = "C"
        env["GNUPGHOME"] = home
        let out: ChildProcess.Outcome
        do {
            out = try ChildProcess.run(
                [
                    "gpgv", "--homedir", home, "--status-fd", "1", "--keyring", Sys.absolutePath(ring),
                    sigPath, file,
                ], environment: env, timeout: 300, keepTail: 64 << 10)
        } catch let e as CourierError where e.code == .io {
            throw CourierError(
                .config,
                "gpgv is needed for signature_format = \"openpgp\" and cannot be run (apt-get install gpgv): \(e.message)"
            )
        }
        if out.timedOut { throw CourierError(.signature, "\(display): gpgv did not finish within 300 s") }
        return try judge(
            status: out.status, output: String(decoding: out.output, as: UTF8.self),
            allowed: Set(fingerprints.compactMap(normalise)), display: display)
    }

    /// The binary form of an ASCII-armored block (RFC 4880 §6.2): the base64 lines between the
    /// armor headers' blank line and the `=` checksum line or the END line.
    static func dearmor(_ text: String) -> [UInt8]? {
        var inBlock = false
        var inBody = false
        var b64 = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if !inBlock {
                if line.hasPrefix("-----BEGIN PGP PUBLIC KEY BLOCK-----") { inBlock = true }
                continue
            }
            if line.hasPrefix("-----END ") { break }
            if !inBody {
                if line.trimming(" \t").isEmpty { inBody = true }
                continue
            }
            if line.hasPrefix("=") { break }
            b64 += line.trimming(" \t")
        }
        guard inBody, let d = Data(base64Encoded: b64), !d.isEmpty else { return nil }
        return Array(d)
    }
}
