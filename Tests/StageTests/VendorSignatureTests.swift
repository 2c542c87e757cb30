import CourierCore
import CourierStage
import Foundation
import Testing

/// Issue #12.3: what vendors actually publish — OpenPGP (checked by gpgv), minisign and signify
/// (checked natively) — made by the real tools, accepted; a wrong key, a tampered file and a
/// signature of another format refused with exit 7 and the reason.
@Suite(.serialized) struct VendorSignatureTests {
    /// Runs a shell command (ChildProcess: no descriptor of ours reaches gpg-agent); its output.
    @discardableResult
    static func sh(_ cmd: String, in dir: String, expectOK: Bool = true) throws -> String {
        let out = try ChildProcess.run(
            ["/bin/bash", "-c", "cd '\(dir)' && " + cmd], environment: ChildProcess.currentEnvironment(), timeout: 120)
        let text = String(decoding: out.output, as: UTF8.self)
        if expectOK { #expect(out.ok, "\(cmd): \(text)") }
        return text
    }

    /// A feed file and a web server for it; returns the workspace and the server.
    static func feed(_ body: String = stableRules) throws -> (StageWorkspace, DirServer) {
        let w = StageWorkspace()
        w.write("www/daily.cvd", body)
        return (w, try DirServer(root: w.path("www")))
    }

    static func stage(
        _ w: StageWorkspace, _ s: DirServer, format: String, key: String, sig: String,
        fingerprints: [String] = []
    ) async throws -> CycleReport {
        let fp =
            fingerprints.isEmpty
            ? "" : "vendor_fingerprints = [\(fingerprints.map { "\"\($0)\"" }.joined(separator: ", "))]"
        let cfg = try w.config(
            """
            [types.av]
            source = "url"
            url = "\(s.url("daily.cvd"))"
            signature_url = "\(s.url(sig))"
            signature_format = "\(format)"
            vendor_key = "\(key)"
            \(fp)
            """, extra: "[http]\nretry_for = \"0s\"")
        return try await run(cfg)
    }

    static func provenance(_ w: StageWorkspace, _ r: CycleReport) throws -> [String: String] {
        let rev = try #require(r.types[0].revision)
        return try PackageReader(
            path: w.path("outbox/av/\(rev)/av_\(rev).cpkg"),
            options: VerifyOptions(trust: TrustStore(keys: [w.key.publicKey]), limits: Limits())
        ).manifest.provenance
    }

    // MARK: minisign

    @Test func minisignPrehashedAndLegacySignaturesAreAccepted() async throws {
        for legacy in [false, true] {
            let (w, s) = try Self.feed()
            try Self.sh(
                "minisign -G -W -p vendor.pub -s vendor.sec >/dev/null && minisign -S \(legacy ? "-l" : "") -s vendor.sec -m www/daily.cvd -t 'daily 27001' >/dev/null",
                in: w.root)
            let r = try await Self.stage(w, s, format: "minisign", key: "vendor.pub", sig: "daily.cvd.minisig")
            #expect(r.exitCode == 0, "\(legacy ? "legacy" : "prehashed"): \(r.summary())")
            let p = try Self.provenance(w, r)
            #expect(p["vendor_signature"]?.hasPrefix("minisign ") == true)
            #expect(p["vendor_trusted_comment"] == "daily 27001")
            let sig = try String(contentsOfFile: w.path("www/daily.cvd.minisig"), encoding: .utf8)
            // base64 of "Ed" starts "RW", of "ED" "RU": the real tool made the form asked for.
            #expect(sig.split(separator: "\n")[1].hasPrefix(legacy ? "RW" : "RU"), "\(sig)")
        }
    }

    @Test func minisignWrongKeyTamperedFileAndAlteredCommentAreRefused() async throws {
        let (w, s) = try Self.feed()
        try Self.sh(
            "minisign -G -W -p vendor.pub -s vendor.sec >/dev/null && minisign -G -W -p other.pub -s other.sec >/dev/null && minisign -S -s vendor.sec -m www/daily.cvd >/dev/null",
            in: w.root)
        let wrong = try await Self.stage(w, s, format: "minisign", key: "other.pub", sig: "daily.cvd.minisig")
        #expect(wrong.exitCode == 7)
        #expect(wrong.types[0].detail.contains("signed by minisign key"), "\(wrong.types[0].detail)")
        #expect(!FileManager.default.fileExists(atPath: w.path("outbox/av")))

        // The same file signed by a second key whose number collides is not possible to make
        // here; a signature over other bytes with the right key is:
        try Self.sh(
            "minisign -S -s vendor.sec -m www/daily.cvd -x www/good.minisig >/dev/null && echo tampered >> www/daily.cvd",
            in: w.root)
        let tampered = try await Self.stage(w, s, format: "minisign", key: "vendor.pub", sig: "good.minisig")
        #expect(tampered.exitCode == 7)
        #expect(tampered.types[0].detail.contains("does not verify"), "\(tampered.types[0].detail)")

        // A trusted comment changed after signing: the global signature catches it.
        try Self.sh(
            "minisign -S -s vendor.sec -m www/daily.cvd -x www/c.minisig -t 'daily 1' >/dev/null && sed -i 's/^trusted comment: daily 1$/trusted comment: daily 9/' www/c.minisig",
            in: w.root)
        let altered = try await Self.stage(w, s, format: "minisign", key: "vendor.pub", sig: "c.minisig")
        #expect(altered.exitCode == 7)
        #expect(altered.types[0].detail.contains("trusted comment"), "\(altered.types[0].detail)")
    }

    // MARK: signify

    @Test func signifySignatureAcceptedAndTamperedRefused() async throws {
        let (w, s) = try Self.feed()
        try Self.sh(
            "signify-openbsd -G -n -p vendor.pub -s vendor.sec && signify-openbsd -S -s vendor.sec -m www/daily.cvd -x www/daily.cvd.sig",
            in: w.root)
        let ok = try await Self.stage(w, s, format: "signify", key: "vendor.pub", sig: "daily.cvd.sig")
        #expect(ok.exitCode == 0, "\(ok.summary())")
        #expect(try Self.provenance(w, ok)["vendor_signature"]?.hasPrefix("signify ") == true)

        let (w2, s2) = try Self.feed()
        try Self.sh(
            "signify-openbsd -G -n -p vendor.pub -s vendor.sec && signify-openbsd -S -s vendor.sec -m www/daily.cvd -x www/daily.cvd.sig && printf x >> www/daily.cvd",
            in: w2.root)
        let bad = try await Self.stage(w2, s2, format: "signify", key: "vendor.pub", sig: "daily.cvd.sig")
        #expect(bad.exitCode == 7)
        #expect(bad.types[0].detail.contains("signify signature does not verify"), "\(bad.types[0].detail)")
    }

    /// A signature in another format than the configured one, or garbage: exit 7, not a crash.
    @Test func aSignatureOfAnotherFormatIsRefused() async throws {
        let (w, s) = try Self.feed()
        try Self.sh(
            "signify-openbsd -G -n -p sf.pub -s sf.sec && signify-openbsd -S -s sf.sec -m www/daily.cvd -x www/daily.cvd.sig && minisign -G -W -p ms.pub -s ms.sec >/dev/null && head -c 300 /dev/urandom > www/garbage.sig",
            in: w.root)
        let r1 = try await Self.stage(w, s, format: "minisign", key: "ms.pub", sig: "daily.cvd.sig")
        #expect(r1.exitCode == 7)
        #expect(r1.types[0].detail.contains("not a minisign signature"), "\(r1.types[0].detail)")
        let r2 = try await Self.stage(w, s, format: "signify", key: "sf.pub", sig: "garbage.sig")
        #expect(r2.exitCode == 7)
        #expect(r2.types[0].detail.contains("not a signify signature"), "\(r2.types[0].detail)")
    }

    // MARK: OpenPGP

    /// A vendor key made by gpg in a throw-away home: its fingerprint, binary and armored exports.
    static func gpgVendor(_ w: StageWorkspace, name: String = "vendor") throws -> String {
        let home = w.path("gnupg-\(name)")
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        chmod(home, 0o700)
        let g = "gpg --homedir '\(home)' --batch --pinentry-mode loopback --passphrase ''"
        try sh("\(g) --quick-gen-key '\(name) <\(name)@example.org>' ed25519 sign never 2>/dev/null", in: w.root)
        let colons = try sh("\(g) --with-colons --fingerprint", in: w.root)
        let fpr = try #require(
            colons.split(separator: "\n").first { $0.hasPrefix("fpr:") }?.split(
                separator: ":", omittingEmptySubsequences: false)[9])
        try sh("\(g) --export -o \(name).gpg && \(g) --export --armor -o \(name).asc", in: w.root)
        return String(fpr)
    }

    /// One verification scenario: a fresh feed (so nothing is a 304), `daily.cvd` signed by
    /// `signer` with gpg, staged with `keyring` and `fingerprints`. `tamper` alters the file after
    /// signing; `sig` replaces the gpg signature with another file's bytes.
    static func openPGPCase(
        _ keys: StageWorkspace, signer: String, armor: Bool, keyring: String, fingerprints: [String],
        tamper: Bool = false, sig: String? = nil
    ) async throws -> (StageWorkspace, CycleReport) {
        let (w, s) = try feed(stableRules + "# \(UUID().uuidString)\n")
        let home = keys.path("gnupg-\(signer)")
        try sh(
            "gpg --homedir '\(home)' --batch --yes --pinentry-mode loopback --passphrase '' --detach-sign \(armor ? "--armor" : "") -o www/daily.cvd.sig www/daily.cvd 2>/dev/null",
            in: w.root)
        if let sig { try sh("cp '\(sig)' www/daily.cvd.sig", in: w.root) }
        if tamper { try sh("echo altered >> www/daily.cvd", in: w.root) }
        let r = try await stage(
            w, s, format: "openpgp", key: keys.path(keyring), sig: "daily.cvd.sig", fingerprints: fingerprints)
        return (w, r)
    }

    @Test func openPGPSignaturesCheckedByGpgvAgainstTheListedFingerprint() async throws {
        let keys = StageWorkspace()
        defer {
            _ = try? Self.sh(
                "gpgconf --homedir gnupg-vendor --kill all; gpgconf --homedir gnupg-other --kill all", in: keys.root,
                expectOK: false)
        }
        let fpr = try Self.gpgVendor(keys)
        let other = try Self.gpgVendor(keys, name: "other")
        try Self.sh(
            "cat vendor.gpg other.gpg > both.gpg && minisign -G -W -p ms.pub -s ms.sec >/dev/null && echo x > x && minisign -S -s ms.sec -m x -x x.minisig >/dev/null",
            in: keys.root)

        // Binary keyring + binary signature; armored key + armored signature, with the
        // fingerprint written in groups of four, in lower case.
        let (w1, ok1) = try await Self.openPGPCase(
            keys, signer: "vendor", armor: false, keyring: "vendor.gpg", fingerprints: [fpr])
        #expect(ok1.exitCode == 0, "\(ok1.summary())")
        #expect(try Self.provenance(w1, ok1)["vendor_signature"] == "openpgp \(fpr)")
        let spaced = stride(from: 0, to: fpr.count, by: 4).map { i in String(Array(fpr)[i..<min(i + 4, fpr.count)]) }
            .joined(separator: " ").lowercased()
        let (_, ok2) = try await Self.openPGPCase(
            keys, signer: "vendor", armor: true, keyring: "vendor.asc", fingerprints: [spaced])
        #expect(ok2.exitCode == 0 && ok2.types[0].status == .published, "\(ok2.summary())")

        // A key in the keyring but not listed: refused (the keyring does not widen trust).
        let (_, notListed) = try await Self.openPGPCase(
            keys, signer: "other", armor: true, keyring: "both.gpg", fingerprints: [fpr])
        #expect(notListed.exitCode == 7)
        #expect(notListed.types[0].detail.contains("not among vendor_fingerprints"), "\(notListed.types[0].detail)")
        // Signed by a key that is not in the keyring at all (listed or not).
        let (_, unknown) = try await Self.openPGPCase(
            keys, signer: "other", armor: false, keyring: "vendor.gpg", fingerprints: [fpr, other])
        #expect(unknown.exitCode == 7)
        #expect(unknown.types[0].detail.contains("not in the vendor keyring"), "\(unknown.types[0].detail)")
        // The file altered after signing.
        let (wt, tampered) = try await Self.openPGPCase(
            keys, signer: "vendor", armor: true, keyring: "vendor.gpg", fingerprints: [fpr], tamper: true)
        #expect(tampered.exitCode == 7)
        #expect(tampered.types[0].detail.contains("does not verify"), "\(tampered.types[0].detail)")
        #expect(!FileManager.default.fileExists(atPath: wt.path("outbox/av")))
        // A minisign signature where OpenPGP is configured.
        let (_, wrongFormat) = try await Self.openPGPCase(
            keys, signer: "vendor", armor: true, keyring: "vendor.gpg", fingerprints: [fpr],
            sig: keys.path("x.minisig"))
        #expect(wrongFormat.exitCode == 7)
        #expect(wrongFormat.types[0].detail.contains("not an OpenPGP signature"), "\(wrongFormat.types[0].detail)")
    }

    @Test func openPGPNeedsFingerprints() throws {
        let w = StageWorkspace()
        #expect(throws: CourierError.self) {
            _ = try w.config(
                """
                [types.av]
                source = "url"
                url = "http://127.0.0.1:1/daily.cvd"
                signature_url = "http://127.0.0.1:1/daily.cvd.asc"
                signature_format = "openpgp"
                vendor_key = "vendor.gpg"
                """)
        }
        #expect(throws: CourierError.self) {
            _ = try w.config(
                """
                [types.av]
                source = "url"
                url = "http://127.0.0.1:1/daily.cvd"
                signature_url = "http://127.0.0.1:1/daily.cvd.sig"
                signature_format = "pgp"
                vendor_key = "vendor.gpg"
                """)
        }
    }

    // MARK: BLAKE2b (minisign's pre-hash)

    @Test func blake2bMatchesTheRFCAndPython() throws {
        // RFC 7693, Appendix A: BLAKE2b-512("abc").
        #expect(
            Hex.encode(BLAKE2b.hash(Array("abc".utf8)))
                == "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
        )
        let w = StageWorkspace()
        for size in [0, 1, 127, 128, 129, 256, 1 << 20 | 3] {
            var x: UInt64 = UInt64(size) &+ 7
            let bytes = (0..<size).map { _ -> UInt8 in
                x ^= x << 13
                x ^= x >> 7
                x ^= x << 17
                return UInt8(truncatingIfNeeded: x)
            }
            let path = w.path("b\(size)")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let py = try Self.sh(
                "python3 -c 'import hashlib,sys; print(hashlib.blake2b(open(sys.argv[1],\"rb\").read()).hexdigest())' \(path)",
                in: w.root)
            // Fed in uneven pieces, to cross block boundaries.
            var h = BLAKE2b()
            var i = 0
            while i < bytes.count {
                let n = min(97, bytes.count - i)
                h.update(Array(bytes[i..<(i + n)]))
                i += n
            }
            #expect(Hex.encode(h.finalize()) == py.trimmingCharacters(in: .whitespacesAndNewlines), "size \(size)")
        }
    }
}
