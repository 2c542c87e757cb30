import CourierConfig
import CourierCore
import CourierFetch

/// `stage.toml`: what one staging server stages, where to, and how. Documented key by key in
/// docs/STAGE.md. Every unknown key and every bad value is an error naming file, line and key,
/// because a typo in a cron-run config must fail loudly, not be silently ignored.
public struct StageConfig: Sendable {
    public struct HTTP: Sendable {
        public var proxy: String? = nil
        public var proxyUser: String? = nil
        public var proxyPassword: String? = nil
        public var connectTimeout: Int64 = 10
        public var readTimeout: Int64 = 30
        public var retryFor: Int64 = 300
        public var maxBytes: Int64 = 2 << 30
        public var userAgent: String? = nil
        /// Defaults for every url type (each type may override them).
        public var transfer = Transfer()
    }

    /// How a url type talks to its upstream, besides `[http]`: `[http]` gives the defaults for
    /// `ca_*`, `max_rate` and `min_interval`; `headers`, `user` and `password` are per type only.
    /// `headers` values and `password` are secrets: `description` shows neither.
    public struct Transfer: Sendable, Equatable, CustomStringConvertible {
        public var headers: [String: String] = [:]
        public var user: String? = nil
        public var password: String? = nil
        public var caFile: String? = nil
        public var caDir: String? = nil
        public var caMode: String = "add"
        public var maxRate: Int64? = nil
        public var minInterval: Int64 = 0
        /// From `[http]` only: how long a host that answered 403 is left alone; the first
        /// cool-down for 429/503 without Retry-After (doubling); how long a failed mirror is tried last.
        public var forbiddenCoolDown: Int64 = 3600
        public var busyCoolDown: Int64 = 300
        public var mirrorCoolDown: Int64 = 3600

        /// Sets these values on a fetch policy (a type's own fetcher).
        public func apply(to p: inout FetchPolicy) {
            p.headers = headers
            if let user, let password { p.basicAuth = BasicAuth(user: user, password: password) }
            p.caFile = caFile
            p.caDir = caDir
            p.caMode = CAMode(rawValue: caMode) ?? .add
            p.maxRate = maxRate
            p.minInterval = minInterval
            p.forbiddenCoolDown = forbiddenCoolDown
            p.busyCoolDown = busyCoolDown
            p.mirrorDemotion = mirrorCoolDown
        }

        public var description: String {
            "Transfer(headers: \(headers.keys.sorted()), user: \(user ?? "-"), password: \(password == nil ? "-" : "***"), ca_file: \(caFile ?? "-"), ca_dir: \(caDir ?? "-"), ca_mode: \(caMode), max_rate: \(maxRate.map(String.init) ?? "-"), min_interval: \(minInterval))"
        }
    }

    public enum SourceSpec: Sendable, Equatable {
        /// `dir` with `layout = "revisions"`: `<path>/<revision>/…`, the publisher numbers them.
        case dirRevisions(path: String, settle: SettleRule = SettleRule())
        /// `dir` with `layout = "snapshot"`: one folder; a new revision when its content changes.
        case dirSnapshot(path: String, settle: SettleRule = SettleRule())
        /// `url`: one file or archive over HTTP(S).
        case url(URLSourceSpec)
        /// `tuf`: targets of a TUF repository, verified by CourierTUF (docs/STAGE.md, "TUF").
        case tuf(TUFSourceSpec)
    }

    /// `source = "tuf"`: a vendor's TUF repository. The admin places its root once
    /// (`trusted_root`); every cycle refreshes the metadata (root rotation, timestamp, snapshot,
    /// targets, delegations) and downloads the chosen targets, each checked against the hashes
    /// and length its signed metadata gives.
    public struct TUFSourceSpec: Sendable, Equatable {
        /// Where the metadata is served (`…/metadata/`: `root.json`, `2.root.json`, `timestamp.json` …).
        public var metadataURL: String
        /// Where the targets are served (`…/targets/`).
        public var targetsURL: String
        /// The trusted root.json the admin placed (copied into the state directory on first use;
        /// later roots come from the repository, signed by the one before).
        public var trustedRoot: String
        /// The target paths that form the tree, in the repository's names.
        public var targets: [String] = []
        /// Or every target whose path matches this pattern (`*` within a `/` segment, `**` across).
        public var targetPattern: String? = nil
        /// A key of the targets' custom metadata that carries the publisher's revision number.
        public var revisionKey: String? = nil
        public var transfer = Transfer()
    }

    public struct URLSourceSpec: Sendable, Equatable {
        /// The first mirror (`urls[0]`): what provenance and messages name when no mirror is meant.
        public var url: String
        /// Every mirror of the download, in the configured order (`url = "…"` or `url = [ … ]`).
        public var urls: [String] = []
        /// A `sha256sum`-style file (or `.md5`) that vouches for the download.
        public var checksumURL: String? = nil
        public var checksumURLs: [String] = []
        /// A detached signature of the download by the vendor's key, in `signatureFormat`.
        public var signatureURL: String? = nil
        public var signatureURLs: [String] = []
        /// Headers, credentials, CA, rate cap and contact interval for this type's requests.
        public var transfer = Transfer()
        /// The vendor's key: a Courier `.pub` line or base64 key (ed25519), a minisign or signify
        /// public key file, or an OpenPGP keyring (binary or armored) for gpgv.
        public var vendorKey: String? = nil
        public var signatureFormat: SignatureFormat = .ed25519
        /// OpenPGP only: the fingerprints whose signatures count (no trust on first use).
        public var vendorFingerprints: [String] = []
        /// Unpack the download (tar, tar.gz, tar.zst, zip) into the tree; else keep it as one file.
        public var unpack: Bool
        /// Name of the file in the tree when not unpacked.
        public var fileName: String
    }

    /// What the vendor signs with (docs/STAGE.md, "Vendor signatures").
    public enum SignatureFormat: String, Sendable, Equatable, CaseIterable {
        case ed25519, minisign, signify, openpgp
    }

    public struct ContentType: Sendable {
        public var name: String
        public var source: SourceSpec
        public var keepRevisions: Int = 5
        public var deltas: Int = 3
        /// Revisions retention never removes (`hold = [...]`), besides those `hold_from` names.
        public var hold: [UInt64] = []
    }

    public var path: String
    public var outbox: String
    public var keys: [String]
    /// Public keys (besides the signing keys') that the stager accepts on its own older
    /// packages: after a key rotation, packages signed only by the retired key are still
    /// delta bases until retention removes them.
    public var verifyKeys: [String] = []
    public var stateDir: String
    public var lifetime: Int64 = 30 * 86400
    public var compression: Compression = .zstd
    /// Manifest format of deltas: 2 (in-file patches; FORMAT §3.5) or 1 for clients before it.
    public var deltaFormat = 2
    /// `delta_window` is the most base plus new bytes one patch may hold; larger changed files
    /// are carried whole. Clients refuse patches above their own `delta_window` (same default).
    /// `max_tree_bytes` and `delta_window` over the defaults: what the stager unpacks an upstream
    /// archive to, builds and reads back. Keep them at most the clients' (inboxd.toml).
    public var limits: Limits
    public var maxCycles: Int = 3
    public var http = HTTP()
    /// A delivery policy (`policy.toml`) whose named revisions retention keeps (`hold_from`).
    public var holdFrom: String? = nil
    public var types: [ContentType] = []

    public static func load(_ path: String) throws -> StageConfig {
        try withTOMLFile(path, parse)
    }

    public static func parse(_ text: String, path: String) throws -> StageConfig {
        try withTOML(text, path: path, parse)
    }

    static func parse(_ r: TableReader) throws -> StageConfig {
        let path = r.path
        try r.allow([
            "outbox", "key", "keys", "verify_keys", "state_dir", "package_lifetime", "compression", "max_cycles",
            "http", "hold_from", "types",
            "delta_format", "delta_window", "max_tree_bytes",
        ])
        var keys: [String] = []
        if let k = try r.string("key") { keys.append(r.resolve(k)) }
        keys += try r.strings("keys").map(r.resolve)
        if keys.isEmpty { throw r.error(nil, "needs 'key' (the signing key file) or 'keys'") }
        guard let outbox = try r.string("outbox") else { throw r.error(nil, "needs 'outbox' (the outbox directory)") }
        var c = StageConfig(
            path: path, outbox: r.resolve(outbox), keys: keys,
            stateDir: r.resolve(try r.string("state_dir") ?? (outbox + "/../courier-stage-state")),
            limits: try r.limits(over: Limits()))
        c.verifyKeys = try r.strings("verify_keys").map(r.resolve)
        if let l = try r.duration("package_lifetime") { c.lifetime = l }
        if let comp = try r.string("compression") {
            guard let v = Compression(rawValue: comp) else {
                throw r.error("compression", "must be zstd, gzip or none, not '\(comp)'")
            }
            c.compression = v
        }
        if let m = try r.int("max_cycles", min: 1, max: 20) { c.maxCycles = m }
        if let f = try r.int("delta_format", min: 1, max: 2) { c.deltaFormat = f }
        c.holdFrom = try r.string("hold_from").map(r.resolve)
        if let h = try r.table("http") {
            try h.allow([
                "proxy", "proxy_user", "proxy_password", "connect_timeout", "read_timeout", "retry_for", "max_bytes",
                "user_agent",
                "ca_file", "ca_dir", "ca_mode", "max_rate", "min_interval", "forbidden_cooldown", "busy_cooldown",
                "mirror_cooldown",
            ])
            c.http.proxy = try h.string("proxy")
            c.http.proxyUser = try h.string("proxy_user")
            c.http.proxyPassword = try h.string("proxy_password")
            if let v = try h.duration("connect_timeout") { c.http.connectTimeout = v }
            if let v = try h.duration("read_timeout") { c.http.readTimeout = v }
            if let v = try h.duration("retry_for") { c.http.retryFor = v }
            if let v = try h.size("max_bytes") { c.http.maxBytes = v }
            c.http.userAgent = try h.string("user_agent")
            c.http.transfer = try parseTransfer(h, defaults: Transfer(), perType: false)
        }
        guard let types = try r.table("types"), !types.keys.isEmpty else {
            throw r.error(nil, "declares no content type (add a [types.NAME] table)")
        }
        for name in types.keys {
            guard let t = try types.table(name) else { continue }
            do { try Names.validateType(name) } catch let e as CourierError { throw types.error(name, e.message) }
            c.types.append(try parseType(name, t, http: c.http))
        }
        return c
    }

    static func parseType(_ name: String, _ t: TableReader, http: HTTP = HTTP()) throws -> ContentType {
        try t.allow(
            Set(
                [
                    "source", "path", "layout", "url", "urls", "checksum_url", "signature_url", "vendor_key",
                    "signature_format", "vendor_fingerprints", "unpack", "file_name",
                    "metadata_url", "targets_url", "trusted_root", "targets", "target_pattern", "revision_key",
                    "keep_revisions", "deltas", "hold", "settle", "ready_file",
                ] + transferKeys))
        guard let kind = try t.string("source") else { throw t.error(nil, "needs 'source' (dir, url or tuf)") }
        var type = ContentType(name: name, source: .dirSnapshot(path: ""))
        switch kind {
        case "dir":
            guard let p = try t.string("path") else { throw t.error("source", "a dir source needs 'path'") }
            let layout = try t.string("layout") ?? "revisions"
            var settle = SettleRule()
            if let d = try t.duration("settle") { settle.settle = d }
            if let m = try t.string("ready_file") {
                if m.contains("/") || m.hasPrefix(".") || Names.pathProblem(m) != nil {
                    throw t.error("ready_file", "must be a plain file name in the source folder, e.g. \"READY\"")
                }
                settle.readyFile = m
            }
            switch layout {
            case "revisions": type.source = .dirRevisions(path: t.resolve(p), settle: settle)
            case "snapshot": type.source = .dirSnapshot(path: t.resolve(p), settle: settle)
            default:
                throw t.error(
                    "layout", "must be 'revisions' (<path>/<revision>/…) or 'snapshot' (one folder), not '\(layout)'")
            }
        case "url":
            for k in ["settle", "ready_file"] where t.has(k) {
                throw t.error(k, "applies to dir sources only")
            }
            if t.has("url") && t.has("urls") {
                throw t.error("urls", "give 'url' or 'urls', not both")
            }
            let urls = try urlList(t, t.has("urls") ? "urls" : "url")
            guard let u = urls.first else {
                throw t.error("source", "a url source needs 'url' (one URL or a list of mirrors)")
            }
            let last =
                String(u.split(separator: "/").last ?? "download").split(separator: "?").first.map(String.init)
                ?? "download"
            let archive = [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz", ".zip"].contains { last.hasSuffix($0) }
            var spec = URLSourceSpec(
                url: u, unpack: try t.bool("unpack") ?? archive, fileName: try t.string("file_name") ?? last)
            spec.urls = urls
            spec.checksumURLs = try urlList(t, "checksum_url")
            spec.checksumURL = spec.checksumURLs.first
            spec.signatureURLs = try urlList(t, "signature_url")
            spec.signatureURL = spec.signatureURLs.first
            spec.transfer = try parseTransfer(t, defaults: http.transfer, perType: true)
            spec.vendorKey = try t.string("vendor_key").map(t.resolve)
            if (spec.signatureURL == nil) != (spec.vendorKey == nil) {
                throw t.error(
                    spec.signatureURL == nil ? "vendor_key" : "signature_url",
                    "signature_url and vendor_key go together")
            }
            if let f = try t.string("signature_format") {
                guard let v = SignatureFormat(rawValue: f) else {
                    throw t.error(
                        "signature_format",
                        "must be one of \(SignatureFormat.allCases.map(\.rawValue).joined(separator: ", ")), not \(Escape.quoted(f))"
                    )
                }
                if spec.signatureURL == nil { throw t.error("signature_format", "needs signature_url and vendor_key") }
                spec.signatureFormat = v
            }
            spec.vendorFingerprints = try t.strings("vendor_fingerprints")
            if spec.signatureFormat == .openpgp {
                if spec.vendorFingerprints.isEmpty {
                    throw t.error(
                        "vendor_fingerprints",
                        "signature_format = \"openpgp\" needs the vendor's key fingerprint(s): only signatures by them count"
                    )
                }
                for f in spec.vendorFingerprints where OpenPGP.normalise(f) == nil {
                    throw t.error(
                        "vendor_fingerprints", "\(Escape.quoted(f)) is not an OpenPGP fingerprint (40 or 64 hex digits)"
                    )
                }
            } else if !spec.vendorFingerprints.isEmpty {
                throw t.error("vendor_fingerprints", "applies to signature_format = \"openpgp\" only")
            }
            if let p = Names.pathProblem(spec.fileName) { throw t.error("file_name", p) }
            type.source = .url(spec)
        case "tuf":
            type.source = .tuf(try parseTUF(t, http: http))
        default:
            throw t.error("source", "must be 'dir', 'url' or 'tuf', not '\(kind)'")
        }
        if kind != "url" {
            for k in [
                "urls", "checksum_url", "signature_url", "vendor_key", "signature_format", "vendor_fingerprints",
                "unpack", "file_name",
            ]
            where t.has(k) { throw t.error(k, "applies to url sources only") }
        }
        if kind == "dir" {
            for k in transferKeys where t.has(k) { throw t.error(k, "applies to url and tuf sources only") }
        }
        if kind != "tuf" {
            for k in tufKeys where t.has(k) { throw t.error(k, "applies to tuf sources only") }
        }
        if let k = try t.int("keep_revisions", min: 1, max: 1000) { type.keepRevisions = k }
        if let d = try t.int("deltas", min: 0, max: 100) { type.deltas = d }
        if let v = t.value("hold") {
            guard let a = v.array else {
                throw t.error("hold", "must be a list of revisions, e.g. hold = [20261120001]")
            }
            type.hold = try a.map {
                if let i = $0.int, i > 0 { return UInt64(i) }
                if let s = $0.string, let r = Names.parseRevision(s) { return r }
                throw t.error("hold", "must be a list of revisions (positive integers)")
            }
        }
        return type
    }

    static let transferKeys = [
        "headers", "user", "password", "ca_file", "ca_dir", "ca_mode", "max_rate", "min_interval",
    ]
    static let tufKeys = ["metadata_url", "targets_url", "trusted_root", "targets", "target_pattern", "revision_key"]

    /// `source = "tuf"`: both URLs, the trusted root, and the targets by list or pattern.
    static func parseTUF(_ t: TableReader, http: HTTP) throws -> TUFSourceSpec {
        for k in ["settle", "ready_file", "path", "layout", "url"] where t.has(k) {
            throw t.error(
                k,
                "does not apply to a tuf source (it takes metadata_url, targets_url, trusted_root, targets or target_pattern)"
            )
        }
        func url(_ key: String) throws -> String {
            guard let u = try t.string(key) else { throw t.error("source", "a tuf source needs '\(key)'") }
            guard u.hasPrefix("https://") || u.hasPrefix("http://") else {
                throw t.error(key, "must be an http:// or https:// URL")
            }
            return u.hasSuffix("/") ? u : u + "/"
        }
        guard let root = try t.string("trusted_root") else {
            throw t.error(
                "source", "a tuf source needs 'trusted_root': the repository's root.json, placed once by the admin")
        }
        var spec = TUFSourceSpec(
            metadataURL: try url("metadata_url"), targetsURL: try url("targets_url"), trustedRoot: t.resolve(root))
        spec.targets = try t.strings("targets")
        spec.targetPattern = try t.string("target_pattern")
        if spec.targets.isEmpty == (spec.targetPattern == nil) {
            throw t.error("targets", "give 'targets' (a list of target paths) or 'target_pattern', one of the two")
        }
        for p in spec.targets {
            if let why = Names.pathProblem(p) { throw t.error("targets", "\(Escape.quoted(p)): \(why)") }
        }
        if let k = try t.string("revision_key"), k.isEmpty { throw t.error("revision_key", "must not be empty") }
        spec.revisionKey = try t.string("revision_key")
        spec.transfer = try parseTransfer(t, defaults: http.transfer, perType: true)
        return spec
    }

    /// `key = "https://…"` or `key = ["https://a/…", "https://b/…"]`: one URL or a list of mirrors.
    static func urlList(_ t: TableReader, _ key: String) throws -> [String] {
        guard let v = t.value(key) else { return [] }
        let list: [String]
        if let s = v.string {
            list = [s]
        } else {
            list = try t.strings(key)
            if list.isEmpty { throw t.error(key, "must be a URL or a non-empty list of URLs") }
        }
        for u in list {
            guard u.hasPrefix("http://") || u.hasPrefix("https://") else {
                throw t.error(key, "must start with http:// or https:// (\(Escape.quoted(URLRedaction.redact(u))))")
            }
        }
        if Set(list).count != list.count { throw t.error(key, "lists a mirror twice") }
        return list
    }

    /// The transfer keys of `[http]` (defaults) or of a url type (overrides, plus headers and
    /// credentials). Header names must be tokens and values one line: a value with a line break
    /// would smuggle a second header (or a second request) onto the wire.
    static func parseTransfer(_ t: TableReader, defaults: Transfer, perType: Bool) throws -> Transfer {
        var x = defaults
        if perType {
            if let h = try t.table("headers") {
                var headers: [String: String] = [:]
                for name in h.keys {
                    let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
                    guard !name.isEmpty, name.allSatisfy({ tchar.contains($0) }) else {
                        throw h.error(nil, "\(Escape.quoted(name)) is not an HTTP header name")
                    }
                    let lower = name.lowercased()
                    if [
                        "host", "content-length", "transfer-encoding", "connection", "range", "if-range",
                        "if-none-match",
                        "if-modified-since", "proxy-authorization",
                    ].contains(lower) {
                        throw h.error(name, "is set by the stager itself and cannot be configured")
                    }
                    guard let value = try h.string(name) else { continue }
                    // The value is a secret: the message does not quote it.
                    if value.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7f }) {
                        throw h.error(name, "the value holds a line break or another control character")
                    }
                    headers[name] = value
                }
                if headers.keys.contains(where: { $0.lowercased() == "authorization" }), t.has("user") {
                    throw t.error("user", "give 'user'/'password' or an Authorization header, not both")
                }
                x.headers = headers
            }
            x.user = try t.string("user")
            x.password = try t.string("password")
            if (x.user == nil) != (x.password == nil) {
                throw t.error(x.user == nil ? "password" : "user", "user and password go together")
            }
            if let u = x.user, u.contains(":") { throw t.error("user", "a basic-auth user name cannot contain ':'") }
        }
        if let f = try t.string("ca_file") { x.caFile = t.resolve(f) }
        if let d = try t.string("ca_dir") { x.caDir = t.resolve(d) }
        if let m = try t.string("ca_mode") {
            guard CAMode(rawValue: m) != nil else {
                throw t.error(
                    "ca_mode",
                    "must be \"add\" (besides the system store) or \"replace\" (instead of it), not \(Escape.quoted(m))"
                )
            }
            x.caMode = m
        }
        if x.caMode == "replace" && x.caFile == nil && x.caDir == nil {
            throw t.error("ca_mode", "ca_mode = \"replace\" needs ca_file or ca_dir")
        }
        if let r = try t.size("max_rate") {
            guard r >= 16 << 10 else { throw t.error("max_rate", "must be at least 16K (bytes per second)") }
            x.maxRate = r
        }
        if let i = try t.duration("min_interval") { x.minInterval = i }
        if !perType {
            if let v = try t.duration("forbidden_cooldown") { x.forbiddenCoolDown = v }
            if let v = try t.duration("busy_cooldown") { x.busyCoolDown = max(1, v) }
            if let v = try t.duration("mirror_cooldown") { x.mirrorCoolDown = v }
        }
        return x
    }
}
