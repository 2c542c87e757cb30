import CourierCore
import TOMLKit

/// `stage.toml`: what one staging server stages, where to, and how. Documented key by key in
/// docs/CONFIG.md. Every unknown key and every bad value is an error naming file, line and key,
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
    }

    public enum SourceSpec: Sendable, Equatable {
        /// `dir` with `layout = "revisions"`: `<path>/<revision>/…`, the publisher numbers them.
        case dirRevisions(path: String)
        /// `dir` with `layout = "snapshot"`: one folder; a new revision when its content changes.
        case dirSnapshot(path: String)
        /// `url`: one file or archive over HTTP(S).
        case url(URLSourceSpec)
    }

    public struct URLSourceSpec: Sendable, Equatable {
        public var url: String
        /// A `sha256sum`-style file (or `.md5`) that vouches for the download.
        public var checksumURL: String? = nil
        /// A detached Ed25519 signature of the download by the vendor's key.
        public var signatureURL: String? = nil
        public var vendorKey: String? = nil
        /// Unpack the download (tar, tar.gz, tar.zst, zip) into the tree; else keep it as one file.
        public var unpack: Bool
        /// Name of the file in the tree when not unpacked.
        public var fileName: String
    }

    public struct ContentType: Sendable {
        public var name: String
        public var source: SourceSpec
        public var keepRevisions: Int = 5
        public var deltas: Int = 3
    }

    public var path: String
    public var outbox: String
    public var keys: [String]
    public var stateDir: String
    public var lifetime: Int64 = 30 * 86400
    public var compression: Compression = .zstd
    public var maxCycles: Int = 3
    public var http = HTTP()
    public var types: [ContentType] = []

    public static func load(_ path: String) throws -> StageConfig {
        let bytes: [UInt8]
        do { bytes = try Sys.readFile(path, limit: 1 << 20) }
        catch let e as CourierError { throw CourierError(.config, "\(path): cannot read the configuration: \(e.message)") }
        return try parse(String(decoding: bytes, as: UTF8.self), path: path)
    }

    public static func parse(_ text: String, path: String) throws -> StageConfig {
        let table: TOMLTable
        do { table = try TOMLTable(string: text) }
        catch let e as TOMLParseError {
            throw CourierError(.config, "\(path):\(e.source.begin.line): \(e.description)")
        }
        let r = TableReader(table: table, name: "", path: path, locator: TOMLLocator(text))
        try r.allow(["outbox", "key", "keys", "state_dir", "package_lifetime", "compression", "max_cycles", "http", "types"])
        var keys: [String] = []
        if let k = try r.string("key") { keys.append(r.resolve(k)) }
        keys += try r.strings("keys").map(r.resolve)
        if keys.isEmpty { throw r.error(nil, "needs 'key' (the signing key file) or 'keys'") }
        guard let outbox = try r.string("outbox") else { throw r.error(nil, "needs 'outbox' (the outbox directory)") }
        var c = StageConfig(path: path, outbox: r.resolve(outbox), keys: keys,
                            stateDir: r.resolve(try r.string("state_dir") ?? (outbox + "/../courier-stage-state")))
        if let l = try r.duration("package_lifetime") { c.lifetime = l }
        if let comp = try r.string("compression") {
            guard let v = Compression(rawValue: comp) else { throw r.error("compression", "must be zstd, gzip or none, not '\(comp)'") }
            c.compression = v
        }
        if let m = try r.int("max_cycles", min: 1, max: 20) { c.maxCycles = m }
        if let h = try r.table("http") {
            try h.allow(["proxy", "proxy_user", "proxy_password", "connect_timeout", "read_timeout", "retry_for", "max_bytes", "user_agent"])
            c.http.proxy = try h.string("proxy")
            c.http.proxyUser = try h.string("proxy_user")
            c.http.proxyPassword = try h.string("proxy_password")
            if let v = try h.duration("connect_timeout") { c.http.connectTimeout = v }
            if let v = try h.duration("read_timeout") { c.http.readTimeout = v }
            if let v = try h.duration("retry_for") { c.http.retryFor = v }
            if let v = try h.size("max_bytes") { c.http.maxBytes = v }
            c.http.userAgent = try h.string("user_agent")
        }
        guard let types = try r.table("types"), !types.table.keys.isEmpty else {
            throw r.error(nil, "declares no content type (add a [types.NAME] table)")
        }
        for name in types.table.keys.sorted() {
            guard let t = try types.table(name) else { continue }
            do { try Names.validateType(name) }
            catch let e as CourierError { throw types.error(name, e.message) }
            c.types.append(try parseType(name, t))
        }
        return c
    }

    static func parseType(_ name: String, _ t: TableReader) throws -> ContentType {
        try t.allow(["source", "path", "layout", "url", "checksum_url", "signature_url", "vendor_key", "unpack", "file_name",
                     "keep_revisions", "deltas"])
        guard let kind = try t.string("source") else { throw t.error(nil, "needs 'source' (dir or url)") }
        var type = ContentType(name: name, source: .dirSnapshot(path: ""))
        switch kind {
        case "dir":
            guard let p = try t.string("path") else { throw t.error("source", "a dir source needs 'path'") }
            let layout = try t.string("layout") ?? "revisions"
            switch layout {
            case "revisions": type.source = .dirRevisions(path: t.resolve(p))
            case "snapshot": type.source = .dirSnapshot(path: t.resolve(p))
            default: throw t.error("layout", "must be 'revisions' (<path>/<revision>/…) or 'snapshot' (one folder), not '\(layout)'")
            }
        case "url":
            guard let u = try t.string("url") else { throw t.error("source", "a url source needs 'url'") }
            guard u.hasPrefix("http://") || u.hasPrefix("https://") else { throw t.error("url", "must start with http:// or https://") }
            let last = String(u.split(separator: "/").last ?? "download").split(separator: "?").first.map(String.init) ?? "download"
            let archive = [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz", ".zip"].contains { last.hasSuffix($0) }
            var spec = URLSourceSpec(url: u, unpack: try t.bool("unpack") ?? archive, fileName: try t.string("file_name") ?? last)
            spec.checksumURL = try t.string("checksum_url")
            spec.signatureURL = try t.string("signature_url")
            spec.vendorKey = try t.string("vendor_key").map(t.resolve)
            if (spec.signatureURL == nil) != (spec.vendorKey == nil) {
                throw t.error(spec.signatureURL == nil ? "vendor_key" : "signature_url", "signature_url and vendor_key go together")
            }
            if let p = Names.pathProblem(spec.fileName) { throw t.error("file_name", p) }
            type.source = .url(spec)
        default:
            throw t.error("source", "must be 'dir' or 'url', not '\(kind)'")
        }
        if let k = try t.int("keep_revisions", min: 1, max: 1000) { type.keepRevisions = k }
        if let d = try t.int("deltas", min: 0, max: 100) { type.deltas = d }
        return type
    }
}

/// Typed access to one TOML table with errors that name file, line and key.
struct TableReader {
    let table: TOMLTable
    let name: String
    let path: String
    let locator: TOMLLocator

    func error(_ key: String?, _ why: String) -> CourierError {
        let line = key.flatMap { locator.line(of: $0, in: name) }
            ?? locator.line(of: String(name.split(separator: ".").last ?? ""), in: name.split(separator: ".").dropLast().joined(separator: "."))
        let loc = line.map { ":\($0)" } ?? ""
        let full = [name, key].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ".")
        return CourierError(.config, "\(path)\(loc): \(full.isEmpty ? "" : "'\(full)' ")\(why)")
    }

    func allow(_ keys: Set<String>) throws {
        for k in table.keys.sorted() where !keys.contains(k) {
            throw error(k, "is not a known key (known: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    /// Relative paths in the config are relative to the config file's directory.
    func resolve(_ p: String) -> String {
        if p.hasPrefix("/") { return p }
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return (dir.isEmpty ? "." : dir) + "/" + p
    }

    func string(_ key: String) throws -> String? {
        guard let v = table[key] else { return nil }
        guard let s = v.string else { throw error(key, "must be a string") }
        return s
    }

    func strings(_ key: String) throws -> [String] {
        guard let v = table[key] else { return [] }
        guard let a = v.array else { throw error(key, "must be an array of strings") }
        return try a.map { guard let s = $0.string else { throw error(key, "must be an array of strings") }; return s }
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = table[key] else { return nil }
        guard let b = v.bool else { throw error(key, "must be true or false") }
        return b
    }

    func int(_ key: String, min: Int, max: Int) throws -> Int? {
        guard let v = table[key] else { return nil }
        guard let i = v.int, i >= min, i <= max else { throw error(key, "must be an integer from \(min) to \(max)") }
        return i
    }

    /// A duration: a string such as "90s", "15m", "6h", "30d", or an integer of seconds.
    func duration(_ key: String) throws -> Int64? {
        guard let v = table[key] else { return nil }
        if let i = v.int, i >= 0 { return Int64(i) }
        guard let s = v.string, let d = DurationParser.seconds(s) else {
            throw error(key, "must be a duration such as \"90s\", \"15m\", \"6h\" or \"30d\"")
        }
        return d
    }

    /// A size: an integer of bytes or a string with K, M, G suffix (powers of 1024).
    func size(_ key: String) throws -> Int64? {
        guard let v = table[key] else { return nil }
        if let i = v.int, i > 0 { return Int64(i) }
        if let s = v.string, let n = SizeParser.bytes(s) { return n }
        throw error(key, "must be a size such as 2G, 500M or a number of bytes")
    }

    func table(_ key: String) throws -> TableReader? {
        guard let v = table[key] else { return nil }
        guard let t = v.table else { throw error(key, "must be a table ([\(name.isEmpty ? key : name + "." + key)])") }
        return TableReader(table: t, name: name.isEmpty ? key : name + "." + key, path: path, locator: locator)
    }
}

/// Sizes: "2G", "500M", "64K", "123" (bytes); powers of 1024.
public enum SizeParser {
    public static func bytes(_ s: String) -> Int64? {
        var t = s.trimming(" ")
        var mult: Int64 = 1
        if t.hasSuffix("iB") { t.removeLast(2) } else if t.hasSuffix("B") { t.removeLast() }
        switch t.last {
        case "K", "k": mult = 1 << 10; t.removeLast()
        case "M", "m": mult = 1 << 20; t.removeLast()
        case "G", "g": mult = 1 << 30; t.removeLast()
        case "T", "t": mult = 1 << 40; t.removeLast()
        default: break
        }
        guard let n = Int64(t), n > 0, n <= Int64.max / mult else { return nil }
        return n * mult
    }
}
