import CourierCore
import CourierFetch
import Crypto
import FoundationEssentials
@preconcurrency import Glibc

/// `url` source: one file or archive over HTTP(S), as rule feeds and signature vendors publish.
///
/// Conditional GET with the validators of the last *published* download (a 304 costs nothing),
/// then, before anything is trusted: the optional checksum file (`sha256sum` style or `.md5`),
/// the optional detached Ed25519 signature by the vendor's key. An archive is unpacked safely
/// into a fresh tree; a plain file becomes a one-file tree. A download whose content equals the
/// latest revision is not a new revision.
public struct URLSource: ContentSource {
    public let spec: StageConfig.URLSourceSpec
    public var describe: String { "url \(URLRedaction.redact(spec.url))" }

    /// `source.json`: the validators of the published content, per mirror URL (without
    /// credentials). Every entry names the *same* content — the latest published revision — as
    /// that mirror calls it; a mirror without an entry gets an unconditional GET. Older stagers
    /// wrote `{"url": …, "validators": …}` for one URL; that is read as a one-mirror map.
    struct State: Codable {
        var url: String? = nil
        var validators: Validators? = nil
        var mirrors: [String: Validators]? = nil

        var map: [String: Validators] {
            if let mirrors { return mirrors }
            if let url, let validators { return [URLRedaction.redact(url): validators] }
            return [:]
        }
    }

    public func check(_ ctx: SourceContext) async throws -> CheckResult {
        guard let base = ctx.fetcher else { throw CourierError(.config, "url source needs an HTTP fetcher") }
        // The type's own headers, credentials, CA, rate and interval: a fetcher of its own.
        do {
            return try await withOwnFetcher(base, { spec.transfer.apply(to: &$0) }) {
                try await check(ctx, fetcher: $0)
            }
        } catch let e as CourierError where e.code == .minInterval {
            return .unchanged(e.message)
        }
    }

    func check(_ ctx: SourceContext, fetcher: Fetcher) async throws -> CheckResult {
        let downloads = ctx.stateDir + "/download"
        try Sys.mkdirs(downloads)
        let file = downloads + "/" + spec.fileName
        let statePath = ctx.stateDir + "/source.json"
        var stored: [String: Validators] = [:]
        if let b = try? Sys.readFile(statePath, limit: 1 << 16),
            let s = try? JSONDecoder().decode(State.self, from: Data(b)),
            Sys.exists(file), ctx.latestRevision != nil
        {
            stored = s.map
        }
        let known = stored
        let mirrors = spec.urls.isEmpty ? [spec.url] : spec.urls
        let served = try await fetcher.fetch(mirrors: mirrors, to: file, validators: { known[$0] })
        ctx.served.mirror = served.mirror
        if mirrors.count > 1 {
            ctx.logger.info("served by mirror \(served.index + 1): \(served.mirror)", metadata: ["type": "\(ctx.type)"])
        }
        guard case .downloaded(let bytes, let newValidators, _) = served.value else {
            return .unchanged("not modified upstream (HTTP 304\(mirrors.count > 1 ? " from \(served.mirror)" : ""))")
        }
        // After a publication only the serving mirror's validators describe the new content;
        // when the content equals the latest revision, the others' still hold too.
        let commit: @Sendable (_ keepOthers: Bool) -> @Sendable () throws -> Void = { keepOthers in
            { [known] in
                var map = keepOthers ? known : [:]
                map[served.mirror] = newValidators.isEmpty ? nil : newValidators
                try Sys.writeFileAtomically(statePath, Array(try JSONEncoder().encode(State(mirrors: map))))
            }
        }
        var vendorProvenance: [String: String] = [:]
        do {
            if !spec.checksumURLs.isEmpty {
                try await checkChecksum(
                    file: file, urls: preferring(served.mirror, spec.checksumURLs, fetcher), fetcher: fetcher)
            } else if let cu = spec.checksumURL {
                try await checkChecksum(file: file, urls: [cu], fetcher: fetcher)
            }
            if let vk = spec.vendorKey {
                let sigs = spec.signatureURLs.isEmpty ? spec.signatureURL.map { [$0] } ?? [] : spec.signatureURLs
                vendorProvenance = try await checkSignature(
                    mirrors: preferring(served.mirror, sigs, fetcher), keyPath: vk, file: file,
                    fetcher: fetcher, workDir: ctx.workDir)
            }
        } catch {
            try? Sys.unlink(file)  // never keep unvouched content as a cache
            throw error
        }
        let tree = ctx.workDir + "/tree"
        try Sys.removeTree(tree)
        if spec.unpack {
            try UpstreamUnpacker.unpack(file, into: tree, limits: ctx.limits)
        } else {
            try Sys.mkdirs(tree)
            let parent = String(spec.fileName.split(separator: "/").dropLast().joined(separator: "/"))
            if !parent.isEmpty { try Sys.mkdirs(tree + "/" + parent) }
            let src = try OwnedFD.open(file, O_RDONLY)
            let dst = try OwnedFD.open(tree + "/" + spec.fileName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644)
            try TreeCopier.copyData(
                src.raw, dst.raw, size: Int(try Sys.fstat(src.raw, display: file).st_size), src: file, dst: tree)
        }
        var o = TreeScanner.Options()
        o.limits = ctx.limits
        let files = try TreeScanner.scan(tree, options: o)
        if files.isEmpty {
            throw CourierError(.download, "\(URLRedaction.redact(spec.url)): the download holds no files")
        }
        if try sameContent(files, ctx) {
            try commit(true)()
            return .unchanged("downloaded \(bytes) bytes; content equals revision \(ctx.latestRevision!)")
        }
        var prov = ["source": "url", "url": served.mirror].merging(vendorProvenance) { a, _ in a }
        if let e = newValidators.etag { prov["etag"] = e }
        if let l = newValidators.lastModified { prov["last_modified"] = l }
        return .new(
            Candidate(
                tree: tree, revision: nil, files: files, provenance: prov, downloadedBytes: bytes, commit: commit(false)
            ))
    }

    /// Mirrors of a checksum or signature file, those on the host that served the download first
    /// (a lagging mirror's checksum file matches its own download), then in the fetcher's order.
    func preferring(_ servedBy: String, _ urls: [String], _ fetcher: Fetcher) -> [String] {
        let host = { (u: String) in
            u.split(separator: "/", maxSplits: 3).dropFirst().first.map { URLRedaction.redact("x://" + $0) }
        }
        let h = host(servedBy)
        let ordered = fetcher.mirrorOrder(urls)
        return ordered.filter { host(URLRedaction.redact($0)) == h }
            + ordered.filter { host(URLRedaction.redact($0)) != h }
    }

    /// The vendor signature from the first signature mirror that has one. `checkSignature` fetches
    /// and checks one URL; a mirror that cannot be fetched (download, network, proxy errors) passes
    /// to the next, a signature that does not verify does not.
    func checkSignature(mirrors: [String], keyPath: String, file: String, fetcher: Fetcher, workDir: String)
        async throws -> [String: String]
    {
        var failures: [String] = []
        for (n, url) in mirrors.enumerated() {
            do {
                return try await checkSignature(
                    file: file, url: url, keyPath: keyPath, fetcher: fetcher, workDir: workDir)
            } catch let e as CourierError where [.download, .network, .proxy].contains(e.code) && n + 1 < mirrors.count
            {
                failures.append(e.message)
            }
        }
        throw CourierError(.download, "no signature mirror left: " + failures.joined(separator: "; "))
    }

    /// Checks the download against a `sha256sum`/`md5sum`-style file: lines of `<hex>  <name>`
    /// (or `<hex> *<name>`, or a lone `<hex>`). The line naming our file wins; a lone hash is
    /// taken as is. The hash length picks the algorithm (64: SHA-256, 32: MD5).
    func checkChecksum(file: String, urls: [String], fetcher: Fetcher) async throws {
        let fetched = try await fetcher.fetchSmall(mirrors: urls, limit: 1 << 20)
        let url = fetched.mirror
        let text = String(decoding: fetched.value, as: UTF8.self)
        let name = spec.fileName.split(separator: "/").last.map(String.init) ?? spec.fileName
        var expected: String? = nil
        var lone: String? = nil
        for line in text.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard let h = parts.first.map({ $0.lowercased() }), h.count == 64 || h.count == 32,
                h.allSatisfy({ $0.isHexDigit })
            else { continue }
            if parts.count == 1 {
                lone = h
                continue
            }
            let n = parts[1].trimming(" *\t")
            if n == name || n.hasSuffix("/" + name) { expected = h }
        }
        guard let want = expected ?? lone else {
            throw CourierError(
                .download, "\(URLRedaction.redact(url)): no checksum for \(Escape.quoted(name)) in the checksum file")
        }
        let got = try hashFile(file, md5: want.count == 32)
        guard got == want else {
            throw CourierError(
                .download,
                "\(URLRedaction.redact(spec.url)): checksum mismatch: downloaded \(got), \(URLRedaction.redact(url)) says \(want)"
            )
        }
    }

    func hashFile(_ path: String, md5: Bool) throws -> String {
        let fd = try OwnedFD.open(path, O_RDONLY)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        if !md5 { return try TreeScanner.hashFile(fd.raw, display: path, buffer: buf).0 }
        var h = Insecure.MD5()
        while true {
            let n = try Sys.read(fd.raw, buf.baseAddress!, buf.count, display: path)
            if n == 0 { break }
            h.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buf[0..<n]))
        }
        return Hex.encode(h.finalize())
    }

    /// Checks the vendor's detached signature of the download in the configured format
    /// (docs/STAGE.md, "Vendor signatures"); returns what goes into the provenance. Any
    /// failure is `.signature` (exit 7) with the reason; a key file that cannot be read is `.config`.
    func checkSignature(file: String, url: String, keyPath: String, fetcher: Fetcher, workDir: String) async throws
        -> [String: String]
    {
        let shown = URLRedaction.redact(spec.url)
        // Signature files are small; minisign's and signify's are under 400 bytes, OpenPGP's a few KiB.
        let sigBytes = try await fetcher.fetchSmall(url, limit: 64 << 10)
        switch spec.signatureFormat {
        case .ed25519:
            try checkEd25519(file: file, sigBytes: sigBytes, url: url, keyPath: keyPath)
            return ["vendor_signature": "ed25519"]
        case .minisign, .signify:
            let format: VendorSignature.Format = spec.signatureFormat == .minisign ? .minisign : .signify
            let keyText = String(decoding: try Sys.readFile(keyPath, limit: 64 << 10), as: UTF8.self)
            let key = try VendorSignature.parseKey(keyText, format: format, source: keyPath)
            let sig = try VendorSignature.parseSignature(sigBytes, format: format, source: URLRedaction.redact(url))
            let comment = try VendorSignature.verify(
                file: file, signature: sig, key: key, format: format, display: shown)
            var p = ["vendor_signature": "\(format.rawValue) \(key.keyNumberHex)"]
            if let c = comment { p["vendor_trusted_comment"] = c }
            return p
        case .openpgp:
            let v = try OpenPGP.verify(
                file: file, signature: sigBytes, keyring: keyPath, fingerprints: spec.vendorFingerprints,
                workDir: workDir, display: shown)
            return ["vendor_signature": "openpgp \(v.fingerprint)"]
        }
    }

    /// A detached Ed25519 signature over the downloaded bytes: the raw 64 bytes, or their base64.
    /// The vendor key is a Courier `.pub` line or the base64 of the raw 32-byte key. Ed25519 is
    /// not streamable, so signed downloads are bounded to 512 MiB in memory.
    func checkEd25519(file: String, sigBytes: [UInt8], url: String, keyPath: String) throws {
        let keyText = String(decoding: try Sys.readFile(keyPath, limit: 64 << 10), as: UTF8.self)
        let key: PublicKey
        if keyText.hasPrefix(PublicKey.tag) {
            key = try PublicKey.parse(keyText, source: keyPath)
        } else if let raw = Data(base64Encoded: keyText.trimming(" \n\r\t")), raw.count == 32 {
            key = try PublicKey(raw: Array(raw))
        } else {
            throw CourierError(
                .config, "\(keyPath): vendor key is neither a Courier .pub line nor base64 of a 32-byte Ed25519 key")
        }
        var sig = sigBytes
        if sig.count != 64, let d = Data(base64Encoded: String(decoding: sigBytes, as: UTF8.self).trimming(" \n\r\t")) {
            sig = Array(d)
        }
        guard sig.count == 64 else {
            throw CourierError(
                .signature, "\(URLRedaction.redact(url)): not an Ed25519 signature (64 bytes, raw or base64)")
        }
        let content = try Sys.readFile(file, limit: VendorSignature.maxInMemory)
        guard key.isValidSignature(sig, for: content) else {
            throw CourierError(
                .signature,
                "\(URLRedaction.redact(spec.url)): the vendor signature does not verify with \(keyPath) (key \(key.keyID))"
            )
        }
    }
}
