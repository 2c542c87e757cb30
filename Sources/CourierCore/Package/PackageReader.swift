import CArchive
import Crypto
@preconcurrency import Glibc

/// The streaming reader of a package, shared by verification and extraction.
///
/// Opening it reads the first two entries (manifest, signatures) with bounded memory, verifies
/// the signatures over the exact manifest bytes, and only then decodes the manifest, checks its
/// rules, its expiry and its type. `forEachPayload` then streams every payload entry through the
/// caller in fixed-size chunks, hashing as it goes, and checks every rule of the format on the
/// way: so nothing of the payload is trusted before the signature is, and memory does not grow
/// with the package.
public final class PackageReader {
    public static let manifestEntry = "courier-manifest.json"
    public static let signaturesEntry = "courier-signatures.json"
    public static let payloadPrefix = "payload/"
    /// Format 2 deltas: patch `i` is the entry `patches/<i>` (FORMAT §3.5).
    public static let patchPrefix = "patches/"

    public let path: String
    public let manifest: Manifest
    /// The exact bytes of the manifest entry, which the signatures cover; empty when the reader
    /// was opened with `keepManifestBytes: false`.
    public let manifestBytes: [UInt8]
    /// Key ids of the trusted keys whose signatures verified.
    public let signers: [String]
    public let options: VerifyOptions
    private let archive: ArchiveReader
    private var consumed = false

    /// `keepManifestBytes: false` (a verifier that needs the manifest, not its exact bytes):
    /// `manifestBytes` is left empty and the bytes' memory is given back while the file list is
    /// decoded (`Manifest.decode(consuming:)`).
    /// `sameFileAs`: see `ArchiveReader.init`.
    public init(path: String, options: VerifyOptions, keepManifestBytes: Bool = true, sameFileAs: Int32? = nil) throws {
        self.path = path
        self.options = options
        let limits = options.limits
        archive = try ArchiveReader(path: path, sameFileAs: sameFileAs)

        // 1. Manifest: first entry, regular, bounded.
        guard let h1 = try archive.next() else { throw CourierError(.malformed, "\(path): empty archive, no manifest") }
        guard h1.rawPath.elementsEqual(PackageReader.manifestEntry.utf8), h1.isRegular else {
            throw CourierError(
                .malformed,
                "\(path): first entry must be \(PackageReader.manifestEntry), found \(Escape.quotedBytes(h1.rawPath))")
        }
        if h1.size > Int64(limits.maxManifestBytes) {
            throw CourierError(
                .limit, "\(path): manifest of \(h1.size) bytes exceeds the limit of \(limits.maxManifestBytes)")
        }
        // Read behind the signatures' domain string: the signed message without a second copy
        // of a manifest that may be megabytes (issue #13.2, memory of a 100,000-file verify).
        var message = try archive.readAll(
            limit: limits.maxManifestBytes, what: "manifest", expected: h1.size,
            prefix: SignatureSet.domain)

        // 2. Signatures: second entry, regular, small.
        guard let h2 = try archive.next() else {
            throw CourierError(.malformed, "\(path): no signatures entry after the manifest")
        }
        guard h2.rawPath.elementsEqual(PackageReader.signaturesEntry.utf8), h2.isRegular else {
            throw CourierError(
                .malformed,
                "\(path): second entry must be \(PackageReader.signaturesEntry), found \(Escape.quotedBytes(h2.rawPath))"
            )
        }
        if h2.size > Int64(limits.maxSignaturesBytes) {
            throw CourierError(
                .limit,
                "\(path): signatures entry of \(h2.size) bytes exceeds the limit of \(limits.maxSignaturesBytes)")
        }
        let sigBytes = try archive.readAll(limit: limits.maxSignaturesBytes, what: "signatures entry")

        // 3. Signatures before the manifest is even parsed: unsigned JSON is never interpreted.
        do {
            signers = try SignatureSet.decode(sigBytes).verify(message: message, trust: options.trust)
        } catch let e as CourierError {
            throw CourierError(e.code, "\(path): \(e.message)", cause: e.cause)
        }
        message.removeFirst(SignatureSet.domain.count)  // in place: the buffer is ours alone

        // 4. The manifest's own rules, expiry, type, limits.
        do {
            if keepManifestBytes {
                manifestBytes = message
                message = []
                manifest = try Manifest.decode(manifestBytes, maxFiles: limits.maxEntries)
            } else {
                manifestBytes = []
                manifest = try Manifest.decode(consuming: &message, maxFiles: limits.maxEntries)
            }
        } catch let e as CourierError {
            throw CourierError(e.code, "\(path): \(e.message)", cause: e.cause)
        }
        try options.checkTimeAndType(
            created: manifest.created, expires: manifest.expires, type: manifest.type, path: path)
        let total = manifest.resultBytes
        if total > limits.maxTotalBytes {
            throw CourierError(
                .limit, "\(path): the tree is \(total) bytes, more than the limit of \(limits.maxTotalBytes)")
        }
        // Counted, not `payloadPaths.count`: that maps the whole file list into a new array.
        let carried = manifest.kind == .full ? manifest.files.count : (manifest.changed?.count ?? 0)
        let payloadCount = carried + (manifest.patches?.count ?? 0)
        if payloadCount + 2 > limits.maxEntries {
            throw CourierError(
                .limit, "\(path): \(payloadCount) payload entries exceed the limit of \(limits.maxEntries)")
        }
        if let r = manifest.result, r.files > UInt64(limits.maxEntries) {
            throw CourierError(
                .limit, "\(path): the tree has \(r.files) files, more than the limit of \(limits.maxEntries)")
        }
        // A patch holds its files' base and result in memory while it is applied.
        for (i, (p, made)) in zip(manifest.patches ?? [], manifest.patchGroups()).enumerated() {
            let need = made.reduce(UInt64(0)) { $0 &+ $1.size &+ ($1.baseSize ?? 0) }
            if need > limits.maxDeltaWindow || p.size > limits.maxDeltaWindow {
                throw CourierError(
                    .limit,
                    "\(path): patch \(i) needs \(need) bytes of memory for base and result, more than the limit of \(limits.maxDeltaWindow) (delta_window); use the full package"
                )
            }
        }
    }

    /// Streams every payload entry. For each: `start(file)`, then `chunk(bytes)` zero or more
    /// times, then `end(file)` only if size and SHA-256 matched. Throws on the first problem, with
    /// a reason naming the entry; a caller that wrote anything cleans up on throw.
    public func forEachPayload(
        start: (Manifest.PayloadEntry) throws -> Void,
        chunk: (UnsafeRawBufferPointer) throws -> Void,
        end: (Manifest.PayloadEntry) throws -> Void
    ) throws {
        precondition(!consumed, "a package stream can be read once")
        consumed = true
        let limits = options.limits
        // Looked up by bytes, never by String: "\u{E9}.txt" and "e\u{301}.txt" are two files.
        var index = PayloadIndex(manifest)
        var entries = 2
        var uncompressed: Int64 = 0

        func unsafe(_ name: [UInt8], _ why: String) -> CourierError {
            CourierError(.unsafeEntry, "\(path): entry \(Escape.quotedBytes(name)): \(why)")
        }
        let prefix = Array(PackageReader.payloadPrefix.utf8)
        let maxName = limits.maxPathBytes + prefix.count

        while let h = try archive.next() {
            entries += 1
            if entries > limits.maxEntries {
                throw CourierError(.limit, "\(path): more than \(limits.maxEntries) entries")
            }
            let raw = h.rawPath
            guard let name = h.path else { throw unsafe(raw, "name is not valid UTF-8") }
            if h.hardlink != nil { throw unsafe(raw, "hard link") }
            switch h.fileType {
            case COURIER_AE_IFREG: break
            case COURIER_AE_IFLNK: throw unsafe(raw, "symbolic link to \(Escape.quoted(h.symlink ?? ""))")
            case COURIER_AE_IFDIR: throw unsafe(raw, "directory entry (directories are implied by file paths)")
            case COURIER_AE_IFCHR: throw unsafe(raw, "character device")
            case COURIER_AE_IFBLK: throw unsafe(raw, "block device")
            case COURIER_AE_IFIFO: throw unsafe(raw, "FIFO")
            case COURIER_AE_IFSOCK: throw unsafe(raw, "socket")
            default: throw unsafe(raw, "unknown entry type \(String(h.fileType, radix: 8))")
            }
            if let p = Names.pathProblem(name, maxBytes: maxName) { throw unsafe(raw, p) }
            // Bytes, not String.hasPrefix/dropFirst (Characters: "payload/" + a combining mark
            // would not have the prefix, and dropFirst would count Characters).
            guard raw.starts(with: prefix) || raw.starts(with: Array(PackageReader.patchPrefix.utf8)) else {
                throw unsafe(raw, "outside payload/")
            }
            if h.permissions & 0o7000 != 0 {
                throw unsafe(raw, "setuid, setgid or sticky bit in mode \(String(h.permissions, radix: 8))")
            }
            let found = raw.withUnsafeBytes { index.take($0) }
            let entry: Manifest.PayloadEntry
            switch found {
            case .carried(let e): entry = e
            case .notCarried: throw unsafe(raw, "not in the manifest")
            case .twice: throw unsafe(raw, "appears twice")
            }
            let size = entry.size
            guard h.sizeIsSet, h.size >= 0, UInt64(h.size) == size else {
                throw CourierError(
                    .integrity,
                    "\(path): entry \(Escape.quoted(name)): size \(h.size) in the archive, \(size) in the manifest")
            }
            guard h.permissions == entry.permissions else {
                throw CourierError(
                    .integrity,
                    "\(path): entry \(Escape.quoted(name)): mode \(FileEntry.formatMode(h.permissions)) in the archive, \(entry.file.mode) in the manifest"
                )
            }

            try start(entry)
            var hasher = SHA256()
            var got: UInt64 = 0
            // In place (no copy into a buffer of ours): the block lies in the decoder thread's
            // ring, which is where SHA-256 reads it from while the next one is decompressed.
            while let block = try archive.readBlock() {
                if block.isEmpty { continue }
                hasher.update(bufferPointer: block)
                got += UInt64(block.count)
                uncompressed += Int64(block.count)
                if uncompressed > 16 << 20 {
                    let packed = max(archive.compressedBytesRead, 1)
                    if uncompressed / packed > limits.maxExpansionRatio {
                        throw CourierError(
                            .limit,
                            "\(path): entry \(Escape.quoted(name)): expands more than \(limits.maxExpansionRatio)× (compression bomb?)"
                        )
                    }
                }
                try chunk(block)
            }
            guard got == size else {
                throw CourierError(
                    .integrity,
                    "\(path): entry \(Escape.quoted(name)): \(got) bytes of data, \(size) expected (truncated)")
            }
            // Compared as bytes; the hex strings are built only for the error.
            let digest = hasher.finalize()
            guard digest.withUnsafeBytes({ entry.digestEquals($0) }) else {
                throw CourierError(
                    .integrity,
                    "\(path): entry \(Escape.quoted(name)): SHA-256 \(Hex.encode(digest)) does not match the manifest's \(entry.file.sha256)"
                )
            }
            try end(entry)
        }
        try archive.finish()
        if let (first, count) = index.missing() {
            let more = count > 1 ? " and \(count - 1) more" : ""
            throw CourierError(
                .integrity,
                "\(path): payload is missing \(Escape.quotedBytes(Array(first.utf8)))\(more) listed in the manifest")
        }
    }

    /// Reads the whole payload, checking everything, writing nothing.
    public func verifyPayload() throws {
        try forEachPayload(start: { _ in }, chunk: { _ in }, end: { _ in })
    }
}

/// The outcome of `verify`: what a package is, who signed it.
public struct VerifiedPackage: Sendable {
    public var path: String
    public var manifest: Manifest
    public var signers: [String]
}

public enum PackageVerifier {
    /// Verifies a package completely: signatures, manifest rules, expiry, type, every payload
    /// byte. Memory stays bounded whatever the package size.
    /// `sameFileAs`: see `ArchiveReader.init`.
    public static func verify(path: String, options: VerifyOptions, sameFileAs: Int32? = nil) throws -> VerifiedPackage
    {
        let reader = try PackageReader(path: path, options: options, keepManifestBytes: false, sameFileAs: sameFileAs)
        try reader.verifyPayload()
        return VerifiedPackage(path: path, manifest: reader.manifest, signers: reader.signers)
    }
}
