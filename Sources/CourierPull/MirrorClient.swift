import CourierCore
import CourierFetch
import FoundationEssentials
@preconcurrency import Glibc
import Logging

/// What pull and the relay both do over HTTP: read a mirror's `index.json` with a conditional
/// GET, and download one package from the mirrors in order, checked against the index (size,
/// SHA-256) and verified with the local trust (signature, expiry, type, name against manifest)
/// before the caller renames it into sight. Everything goes through `Fetcher` (CourierFetch):
/// mirrors, proxies, CA, retries, `Retry-After`, resume into `.partial` — the stager's client.
public struct MirrorClient {
    let fetcher: Fetcher
    let mirrors: [String]
    let stateDir: String
    let logger: Logger

    public init(fetcher: Fetcher, mirrors: [String], stateDir: String, logger: Logger) {
        self.fetcher = fetcher
        self.mirrors = mirrors
        self.stateDir = stateDir
        self.logger = logger
    }

    /// The validators of the cached `index.json` and the mirror (URL without credentials) that
    /// sent it: an ETag is one server's name for one version, so it is only sent back there.
    struct IndexState: Codable {
        var url: String
        var etag: String?
        var lastModified: String?
    }

    public struct IndexResult: Sendable {
        public var index: OutboxIndex
        /// The mirror's base URL as configured (credentials included; never logged) and its position.
        public var mirror: String
        public var mirrorIndex: Int
        /// The mirror's URL for logs and reports (no credentials).
        public var shownURL: String
        public var notModified: Bool
    }

    /// The most an `index.json` may be, at download as at reading: an index of thousands of
    /// revisions is a few MiB, so a bigger one is a broken or hostile server, not ours to store.
    public static let indexLimit: Int64 = 64 << 20

    var cachePath: String { stateDir + "/index.json" }
    var statePath: String { stateDir + "/index.state.json" }

    /// `index.json` from the first mirror that answers. A 304 (the cached copy is current) costs a
    /// few hundred bytes and the decision is made again from the cached copy: the client's status
    /// may have changed since, so "not modified" means "nothing new to download", not "skip".
    public func fetchIndex() async throws -> IndexResult {
        try Sys.mkdirs(stateDir)
        let state: IndexState? =
            Sys.exists(cachePath)
            ? (try? Sys.readFile(statePath, limit: 64 << 10)).flatMap {
                try? JSONDecoder().decode(IndexState.self, from: Data($0))
            }
            : nil
        let served = try await fetcher.fetch(
            mirrors: mirrors.map { $0 + "/index.json" }, to: cachePath,
            maxBytes: MirrorClient.indexLimit,
            validators: { url in
                guard let s = state, s.url == url else { return nil }
                return Validators(etag: s.etag, lastModified: s.lastModified)
            })
        let index: OutboxIndex
        do {
            index = try OutboxIndex.decode(
                Sys.readFile(cachePath, limit: Int(MirrorClient.indexLimit)), path: served.mirror)
        } catch {
            // A broken index must not be "not modified" next time.
            try? Sys.unlink(cachePath)
            try? Sys.unlink(statePath)
            throw error
        }
        var notModified = false
        switch served.value {
        case .notModified:
            notModified = true
        case .downloaded(_, let v, _):
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            if let data = try? enc.encode(IndexState(url: served.mirror, etag: v.etag, lastModified: v.lastModified)) {
                try Sys.writeFileAtomically(statePath, Array(data) + [0x0a])
            }
        }
        return IndexResult(
            index: index, mirror: mirrors[served.index], mirrorIndex: served.index,
            shownURL: String(served.mirror.dropLast("/index.json".count)), notModified: notModified)
    }

    /// The index's type keys that are type names, sorted. A key such as `..` or `a/b` would
    /// become a directory under the relay's root and part of a URL: it is skipped and logged
    /// (escaped: it is the server's text), never used.
    public static func indexTypes(_ index: OutboxIndex, logger: Logger) -> [String] {
        index.types.keys.sorted().filter { t in
            do {
                try Names.validateType(t)
                return true
            } catch {
                logger.warning("index type skipped: not a type name", metadata: ["type": "\(Escape.text(t))"])
                return false
            }
        }
    }

    public struct Downloaded: Sendable {
        public var mirror: String
        public var bytes: Int64
        public var resumed: Bool
        public var reused: Bool
        /// The whole call, checks included.
        public var seconds: Double
        /// The last transfer alone (what a bandwidth cap governs).
        public var transferSeconds: Double
    }

    /// Downloads `info.file` into `dest` (a dot-name the caller renames), from `first` and then
    /// the other mirrors in order. A copy that fails its checks is removed and the next mirror is
    /// asked; only a package that passed every check is left at `dest`. A complete `dest` left by
    /// a killed run is checked and kept rather than downloaded again.
    public func download(
        _ info: OutboxIndex.PackageInfo, type: String, revision: UInt64, to dest: String,
        first: Int, verify: VerifyOptions
    ) async throws -> Downloaded {
        let t0 = Sys.monotonicSeconds()
        // The index says how big the package is: nothing bigger is accepted, and nothing the
        // policy forbids is asked for at all.
        guard info.size >= 0, info.size <= fetcher.policy.maxBytes else {
            throw CourierError(
                .limit,
                "\(Escape.text(info.file)): the index says \(info.size) bytes, more than the limit of \(fetcher.policy.maxBytes) (http.max_bytes)"
            )
        }
        if Sys.exists(dest) {
            if (try? check(dest, info: info, type: type, revision: revision, verify: verify)) != nil {
                return Downloaded(
                    mirror: "(kept from an earlier run)", bytes: info.size, resumed: false, reused: true,
                    seconds: Sys.monotonicSeconds() - t0, transferSeconds: 0)
            }
            try? Sys.unlink(dest)
        }
        var order = [first] + mirrors.indices.filter { $0 != first }
        var failures: [String] = []
        var lastError: CourierError? = nil
        while !order.isEmpty {
            let served: Served<FetchOutcome>
            let t1 = Sys.monotonicSeconds()
            do {
                served = try await fetcher.fetch(
                    mirrors: order.map { mirrors[$0] + "/" + info.file }, to: dest,
                    maxBytes: info.size, validators: { _ in nil })
            } catch let e as CourierError {
                if failures.isEmpty { throw e }
                // The last mirror's cause (an HTTP 404) rides along: the relay tells "not there" by it.
                throw CourierError(
                    lastError?.code ?? e.code, "\(info.file): " + (failures + [e.message]).joined(separator: "; "),
                    cause: e.cause)
            }
            let transfer = Sys.monotonicSeconds() - t1
            let which = order[served.index]
            do {
                try check(dest, info: info, type: type, revision: revision, verify: verify)
                var bytes: Int64 = info.size
                var resumed = false
                if case .downloaded(let b, _, let r) = served.value {
                    bytes = b
                    resumed = r
                }
                return Downloaded(
                    mirror: served.mirror, bytes: bytes, resumed: resumed, reused: false,
                    seconds: Sys.monotonicSeconds() - t0, transferSeconds: transfer)
            } catch let e as CourierError {
                try? Sys.unlink(dest)
                logger.warning(
                    "package failed its checks; trying the next mirror",
                    metadata: [
                        "url": "\(served.mirror)", "reason": "\(e.message)",
                    ])
                failures.append("\(served.mirror): \(e.message)")
                lastError = e
                order.removeAll { $0 == which }
            }
        }
        throw CourierError(
            lastError?.code ?? .integrity,
            "\(info.file): no mirror served a package that passed its checks: "
                + failures.joined(separator: "; "))
    }

    /// Size and SHA-256 as the index says, then the package verified as `courier-deliver verify`
    /// does, and its manifest's type, revision and base matching its name.
    func check(_ path: String, info: OutboxIndex.PackageInfo, type: String, revision: UInt64, verify: VerifyOptions)
        throws
    {
        let (sha, size) = try MirrorClient.sha256(path)
        guard Int64(size) == info.size else {
            throw CourierError(.integrity, "\(path): \(size) bytes, the index says \(info.size)")
        }
        guard sha == info.sha256.lowercased() else {
            throw CourierError(.integrity, "\(path): SHA-256 \(sha), the index says \(Escape.text(info.sha256))")
        }
        var o = verify
        o.expectedType = type
        let m = try PackageVerifier.verify(path: path, options: o).manifest
        guard m.revision == revision, m.base == info.base, (m.kind == .full) == (info.base == nil) else {
            throw CourierError(
                .malformed,
                "\(path): the manifest says \(m.type) \(m.revision) \(m.kind.rawValue)\(m.base.map { " from \($0)" } ?? ""), its name says otherwise"
            )
        }
    }

    static func sha256(_ path: String) throws -> (String, UInt64) {
        let fd = try OwnedFD.open(path, O_RDONLY | O_NOFOLLOW)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        return try TreeScanner.hashFile(fd.raw, display: path, buffer: buf)
    }
}
