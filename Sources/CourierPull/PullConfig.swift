import CourierConfig
import CourierCore
import CourierFetch

/// How `courier-pull` talks HTTP: the `[http]` table of `pull.toml` and `relay.toml`, with the
/// names and defaults of stage.toml's `[http]` (docs/STAGE.md), so that an operator who set up
/// the stager's proxy and CA writes the same lines here. `proxy_password` is a secret: never in
/// `description`, logs or messages.
public struct PullHTTP: Sendable {
    public var proxy: String? = nil
    public var proxyUser: String? = nil
    public var proxyPassword: String? = nil
    public var connectTimeout: Int64 = 10
    public var readTimeout: Int64 = 30
    /// The retry window of one fetch (index or package) over all mirrors.
    public var retryFor: Int64 = 60
    public var maxBytes: Int64 = 2 << 30
    public var userAgent: String? = nil
    public var caFile: String? = nil
    public var caDir: String? = nil
    public var caMode: CAMode = .add

    static let keys: Set<String> = [
        "proxy", "proxy_user", "proxy_password", "connect_timeout", "read_timeout",
        "retry_for", "max_bytes", "user_agent", "ca_file", "ca_dir", "ca_mode",
    ]

    static func parse(_ r: TableReader?) throws -> PullHTTP {
        var h = PullHTTP()
        guard let r else { return h }
        try r.allow(keys)
        h.proxy = try r.string("proxy")
        h.proxyUser = try r.string("proxy_user")
        h.proxyPassword = try r.string("proxy_password")
        if let v = try r.duration("connect_timeout") { h.connectTimeout = max(1, v) }
        if let v = try r.duration("read_timeout") { h.readTimeout = max(1, v) }
        if let v = try r.duration("retry_for") { h.retryFor = v }
        if let v = try r.size("max_bytes") { h.maxBytes = v }
        h.userAgent = try r.string("user_agent")
        h.caFile = try r.string("ca_file").map(r.resolve)
        h.caDir = try r.string("ca_dir").map(r.resolve)
        if let m = try r.string("ca_mode") {
            guard let mode = CAMode(rawValue: m) else {
                throw r.error(
                    "ca_mode",
                    "must be \"add\" (besides the system store) or \"replace\" (instead of it), not \(Escape.quoted(m))"
                )
            }
            h.caMode = mode
        }
        if h.caMode == .replace && h.caFile == nil && h.caDir == nil {
            throw r.error("ca_mode", "ca_mode = \"replace\" needs ca_file or ca_dir")
        }
        if let p = h.proxy {
            do { _ = try ProxySettings.parse(p) } catch let e as CourierError { throw r.error("proxy", e.message) }
        }
        return h
    }

    /// The fetch policy for a run: these settings, the state directory for cool-downs and
    /// mirror demotion, the run's shared bandwidth cap.
    public func policy(stateDir: String, throttle: Throttle?, program: String) throws -> FetchPolicy {
        var p = FetchPolicy()
        p.connectTimeout = connectTimeout
        p.readTimeout = readTimeout
        p.retryFor = retryFor
        p.maxBytes = maxBytes
        p.userAgent = userAgent ?? CourierVersion.userAgent(program)
        p.stateDir = stateDir
        p.caFile = caFile
        p.caDir = caDir
        p.caMode = caMode
        p.throttle = throttle
        // A relay that failed is tried after the others for 10 minutes, not an hour: a site's
        // relay is usually back after a restart, and the stager is the expensive fallback.
        p.mirrorDemotion = 600
        if let proxy {
            var s = try ProxySettings.parse(proxy)
            if let u = proxyUser { s.username = u }
            if let pw = proxyPassword { s.password = pw }
            p.proxy = s
        }
        return p
    }
}

/// The settings both commands share: mirrors tried in order, the cap, the state directory.
func parseMirrors(_ r: TableReader, key: String) throws -> [String] {
    let list = try r.strings(key)
    guard !list.isEmpty else { throw r.error(key, "needs at least one URL (the site relay first, the stager last)") }
    return try list.map { u in
        guard u.hasPrefix("http://") || u.hasPrefix("https://") else {
            throw r.error(key, "\(Escape.quoted(u)) is not an http:// or https:// URL")
        }
        var s = u
        while s.hasSuffix("/") { s.removeLast() }
        return s
    }
}

func parseRate(_ r: TableReader, _ key: String) throws -> Int64? {
    guard let v = r.value(key) else { return nil }
    let text = v.string ?? v.int.map(String.init)
    guard let text else { throw r.error(key, "must be a rate such as \"2M\" or \"500K\"") }
    do { return try Throttle.parseRate(text, what: key) } catch let e as CourierError { throw r.error(key, e.message) }
}

/// `pull.toml` (docs/DELIVER.md, "Pull"): which client this copier feeds (its inboxd.toml gives
/// inbox, state, trust and types), from which mirrors, how gently.
public struct PullConfig: Sendable {
    public var path: String
    public var inboxdConfig: String
    public var mirrors: [String]
    /// Where `index.json`'s cached copy, its validators and the fetcher's cool-downs live;
    /// default `<inboxd state_dir>/pull`.
    public var stateDir: String?
    /// Types to pull; empty: those inboxd.toml declares.
    public var types: [String] = []
    public var bwlimit: Int64? = nil
    public var splay: Int64 = 0
    public var http = PullHTTP()

    public static func load(_ path: String) throws -> PullConfig { try withTOMLFile(path, parse) }
    public static func parse(_ text: String, path: String) throws -> PullConfig {
        try withTOML(text, path: path, parse)
    }

    static func parse(_ r: TableReader) throws -> PullConfig {
        try r.allow(["inboxd_config", "mirrors", "state_dir", "types", "bwlimit", "splay", "http"])
        guard let ic = try r.string("inboxd_config") else {
            throw r.error(nil, "needs 'inboxd_config' (the client's inboxd.toml: inbox, state, trust, types)")
        }
        var c = PullConfig(path: r.path, inboxdConfig: r.resolve(ic), mirrors: try parseMirrors(r, key: "mirrors"))
        c.stateDir = try r.string("state_dir").map(r.resolve)
        c.types = try r.strings("types")
        for t in c.types {
            do { try Names.validateType(t) } catch let e as CourierError { throw r.error("types", e.message) }
        }
        c.bwlimit = try parseRate(r, "bwlimit")
        if let s = try r.duration("splay") { c.splay = s }
        c.http = try PullHTTP.parse(try r.table("http"))
        return c
    }
}

/// `relay.toml` (docs/DELIVER.md, "Relays"): which upstream outbox (or relay) to mirror, what
/// of it, into which directory a web server serves.
public struct RelayConfig: Sendable {
    public var path: String
    /// The local mirror directory (an outbox layout).
    public var root: String
    public var upstream: [String]
    public var trust: String
    public var threshold = 1
    public var clockSkew: Int64 = 300
    /// Types to mirror; empty: every type upstream lists.
    public var types: [String] = []
    /// How many of the newest revisions per type (the upstream's latest always among them).
    public var revisions = 3
    public var stateDir: String
    public var bwlimit: Int64? = nil
    public var http = PullHTTP()
    /// What every package is verified under: the defaults (courier-inboxd's), or the site's
    /// clients' `max_tree_bytes`/`delta_window` when they allow more — under the defaults the
    /// relay would refuse, every pass, a revision those clients accept.
    public var limits = Limits()

    public static func load(_ path: String) throws -> RelayConfig { try withTOMLFile(path, parse) }
    public static func parse(_ text: String, path: String) throws -> RelayConfig {
        try withTOML(text, path: path, parse)
    }

    static func parse(_ r: TableReader) throws -> RelayConfig {
        try r.allow(
            Set(
                [
                    "root", "upstream", "trust", "threshold", "clock_skew", "types", "revisions", "state_dir",
                    "bwlimit", "http",
                ] + TableReader.limitKeys))
        guard let root = try r.string("root") else {
            throw r.error(nil, "needs 'root' (the mirror directory a web server serves)")
        }
        guard let trust = try r.string("trust") else {
            throw r.error(nil, "needs 'trust' (the stager's .pub file or a directory of them)")
        }
        let rootPath = r.resolve(root)
        var c = RelayConfig(
            path: r.path, root: rootPath, upstream: try parseMirrors(r, key: "upstream"),
            trust: r.resolve(trust),
            stateDir: try r.string("state_dir").map(r.resolve) ?? r.resolve(root + "/../relay-state"))
        if let t = try r.int("threshold", min: 1, max: 16) { c.threshold = t }
        if let s = try r.duration("clock_skew") { c.clockSkew = s }
        c.types = try r.strings("types")
        for t in c.types {
            do { try Names.validateType(t) } catch let e as CourierError { throw r.error("types", e.message) }
        }
        if let n = try r.int("revisions", min: 1, max: 100) { c.revisions = n }
        c.bwlimit = try parseRate(r, "bwlimit")
        c.http = try PullHTTP.parse(try r.table("http"))
        c.limits = try r.limits(over: Limits())
        return c
    }
}
