import CourierCore
import CourierStage
import Foundation
import Testing

@Suite(.serialized) struct URLSourceTests {
    func sh(_ cmd: String, in dir: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", cmd]
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(cmd)")
    }

    /// A vendor feed: a rules tarball, its sha256sum file, its detached signature.
    func feed(_ w: StageWorkspace, rules: String, vendor: SigningKey) throws {
        w.write("feed-src/rules/emerging.rules", rules)
        w.write("feed-src/rules/classification.config", "config classification: x\n")
        // A large rule set that stays: what makes a delta worth publishing (issue #12.6).
        w.write("feed-src/rules/community.rules", stableRules)
        try FileManager.default.createDirectory(atPath: w.path("www"), withIntermediateDirectories: true)
        try sh(
            "tar -czf ../www/rules.tar.gz rules && cd ../www && sha256sum rules.tar.gz > rules.tar.gz.sha256",
            in: w.path("feed-src"))
        let body = Array(try Data(contentsOf: URL(fileURLWithPath: w.path("www/rules.tar.gz"))))
        let sig = Data(vendor.sign(body)).base64EncodedString()
        try sig.write(toFile: w.path("www/rules.tar.gz.sig"), atomically: true, encoding: .utf8)
    }

    func types(_ s: DirServer, sig: Bool) -> String {
        """
        [types.ips-rules]
        source = "url"
        url = "\(s.url("rules.tar.gz"))"
        checksum_url = "\(s.url("rules.tar.gz.sha256"))"
        \(sig ? "signature_url = \"\(s.url("rules.tar.gz.sig"))\"\nvendor_key = \"vendor.pub\"" : "")
        """
    }

    @Test func archiveWithChecksumAndSignatureIsUnpackedPublishedAndThenNotModified() async throws {
        let w = StageWorkspace()
        let vendor = SigningKey()
        try vendor.publicKey.fileText.write(toFile: w.path("vendor.pub"), atomically: true, encoding: .utf8)
        try feed(w, rules: "alert 1\n", vendor: vendor)
        let server = try DirServer(root: w.path("www"))
        let cfg = try w.config(types(server, sig: true), extra: "[http]\nretry_for = \"0s\"")
        let r1 = try await run(cfg)
        #expect(r1.exitCode == 0, "\(r1.summary())")
        #expect(r1.types[0].status == .published && r1.types[0].downloadedBytes > 0)
        let rev = try #require(r1.types[0].revision)
        // The package holds the unpacked tree.
        let trust = TrustStore(keys: [w.key.publicKey])
        let m = try PackageVerifier.verify(
            path: w.path("outbox/ips-rules/\(rev)/ips-rules_\(rev).cpkg"),
            options: VerifyOptions(trust: trust, limits: Limits())
        ).manifest
        #expect(
            m.files.map(\.path) == ["rules/classification.config", "rules/community.rules", "rules/emerging.rules"])
        #expect(m.provenance["url"] == server.url("rules.tar.gz"))
        // Unchanged upstream: a conditional GET, a 304, nothing published.
        let r2 = try await run(cfg)
        #expect(r2.types[0].status == .unchanged && r2.types[0].detail.contains("304"))

        // The vendor publishes new rules: a new revision with a delta.
        try await Task.sleep(nanoseconds: 1_100_000_000)  // http.server's Last-Modified has one-second resolution
        try feed(w, rules: "alert 1\nalert 2\n", vendor: vendor)
        let r3 = try await run(cfg)
        #expect(r3.types[0].status == .published && r3.types[0].deltas.map(\.base) == [rev])
    }

    @Test func checksumMismatchPublishesNothing() async throws {
        let w = StageWorkspace()
        try feed(w, rules: "alert 1\n", vendor: SigningKey())
        try "0000000000000000000000000000000000000000000000000000000000000000  rules.tar.gz\n"
            .write(toFile: w.path("www/rules.tar.gz.sha256"), atomically: true, encoding: .utf8)
        let server = try DirServer(root: w.path("www"))
        let r = try await run(try w.config(types(server, sig: false), extra: "[http]\nretry_for = \"0s\""))
        #expect(r.exitCode == 9)
        #expect(r.types[0].status == .failed && r.types[0].detail.contains("checksum mismatch"))
        #expect(!FileManager.default.fileExists(atPath: w.path("outbox/ips-rules")))
        #expect(
            !FileManager.default.fileExists(atPath: w.path("state/ips-rules/download/rules.tar.gz")),
            "unvouched content is not kept")
    }

    @Test func badVendorSignaturePublishesNothing() async throws {
        let w = StageWorkspace()
        let vendor = SigningKey()
        // Not the vendor's key.
        try SigningKey().publicKey.fileText.write(toFile: w.path("vendor.pub"), atomically: true, encoding: .utf8)
        try feed(w, rules: "alert 1\n", vendor: vendor)
        let server = try DirServer(root: w.path("www"))
        let r = try await run(try w.config(types(server, sig: true), extra: "[http]\nretry_for = \"0s\""))
        #expect(r.exitCode == 7)
        #expect(r.types[0].detail.contains("vendor signature does not verify"))
        #expect(!FileManager.default.fileExists(atPath: w.path("outbox/ips-rules")))
    }

    @Test func hostileVendorArchiveIsRefused() async throws {
        let w = StageWorkspace()
        w.write("feed-src/x/ok.rules", "alert\n")
        try FileManager.default.createDirectory(atPath: w.path("www"), withIntermediateDirectories: true)
        try sh("ln -s /etc/passwd x/link && tar -czf ../www/rules.tar.gz x", in: w.path("feed-src"))
        let server = try DirServer(root: w.path("www"))
        let r = try await run(
            try w.config(
                """
                [types.ips-rules]
                source = "url"
                url = "\(server.url("rules.tar.gz"))"
                """, extra: "[http]\nretry_for = \"0s\""))
        #expect(r.types[0].status == .failed && r.types[0].detail.contains("symbolic link"))
    }

    @Test func plainFileSourceAndUnreachableServer() async throws {
        let w = StageWorkspace()
        w.write("www/feed.csv", "ioc,1.2.3.4\n")
        let server = try DirServer(root: w.path("www"))
        let r = try await run(
            try w.config(
                """
                [types.ioc-feed]
                source = "url"
                url = "\(server.url("feed.csv"))"
                """))
        #expect(r.types[0].status == .published)
        let rev = try #require(r.types[0].revision)
        let m = try PackageReader(
            path: w.path("outbox/ioc-feed/\(rev)/ioc-feed_\(rev).cpkg"),
            options: VerifyOptions(trust: TrustStore(keys: [w.key.publicKey]), limits: Limits())
        ).manifest
        #expect(m.files.map(\.path) == ["feed.csv"])

        // A port nobody listens on: no network (18), quickly, with a zero retry window.
        let dead = try w.config(
            """
            [types.ioc-feed]
            source = "url"
            url = "http://127.0.0.1:9/feed.csv"
            """, extra: "[http]\nretry_for = \"0s\"\nconnect_timeout = \"2s\"")
        let r2 = try await run(dead)
        #expect(r2.exitCode == 18, "\(r2.summary())")
    }
}

/// 2,000 rule lines with distinct hashes (compresses like a real rule file, not like a repeated
/// line), the same in every revision.
let stableRules: String = {
    var x: UInt64 = 0x9E37_79B9_7F4A_7C15
    return (0..<2000).map { i -> String in
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        return
            "alert tcp any any -> any any (msg:\"rule \(i)\"; content:\"\(String(x, radix: 16))\"; sid:\(1_000_000 + i);)"
    }.joined(separator: "\n") + "\n"
}()
