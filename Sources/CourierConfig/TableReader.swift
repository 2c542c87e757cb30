import CourierCore
@preconcurrency import Glibc
import TOMLKit

/// Reads a configuration file (at most 1 MiB), parses it and hands `body` its root; a missing or
/// unreadable file is a `.config` error naming it.
public func withTOMLFile<T>(_ path: String, _ body: (TableReader) throws -> T) throws -> T {
    let bytes: [UInt8]
    do { bytes = try Sys.readFile(path, limit: 1 << 20) } catch let e as CourierError {
        throw CourierError(.config, "\(path): cannot read the configuration: \(e.message)")
    }
    return try withTOML(String(decoding: bytes, as: UTF8.self), path: path, body)
}

/// Parses TOML text and hands `body` its root, turning a syntax error into a `.config` error
/// with file and line. The parsed document is freed when `body` returns: every table and value
/// read from it is a view into it, so nothing of it may outlive `body` (read what you need into
/// Swift values). TOMLKit never freed a document; `make fuzz` found the leak.
public func withTOML<T>(_ text: String, path: String, _ body: (TableReader) throws -> T) throws -> T {
    let t: TOMLTable
    do {
        t = try TOMLTable(string: text)
    } catch let e as TOMLParseError {
        throw CourierError(.config, "\(path):\(e.source.begin.line): \(e.description)")
    }
    defer { t.deleteDocument() }
    return try withExtendedLifetime(t) {
        try body(TableReader(table: t, name: "", path: path, locator: TOMLLocator(text)))
    }
}

/// Typed access to one TOML table with errors that name file, line and key. The TOMLKit table
/// stays inside this module (issue #17.4): the configuration loaders of the other modules see
/// keys, typed values and `ConfigValue`, so that they do not link TOMLKit themselves.
public struct TableReader {
    let table: TOMLTable
    public let name: String
    public let path: String
    public let locator: TOMLLocator

    init(table: TOMLTable, name: String, path: String, locator: TOMLLocator) {
        self.table = table
        self.name = name
        self.path = path
        self.locator = locator
    }

    public func error(_ key: String?, _ why: String) -> CourierError {
        let line =
            key.flatMap { locator.line(of: $0, in: name) }
            ?? locator.line(
                of: String(name.split(separator: ".").last ?? ""),
                in: name.split(separator: ".").dropLast().joined(separator: "."))
        let loc = line.map { ":\($0)" } ?? ""
        let full = [name, key].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ".")
        return CourierError(.config, "\(path)\(loc): \(full.isEmpty ? "" : "'\(full)' ")\(why)")
    }

    /// The table's keys, sorted: TOML tables are unordered, and plans and messages should be stable.
    public var keys: [String] { table.keys.sorted() }

    /// Whether `key` is present, whatever its value.
    public func has(_ key: String) -> Bool { table[key] != nil }

    /// The value of `key` as plain data, for the keys that accept more than one shape (a string
    /// or a list, an integer or a string).
    public func value(_ key: String) -> ConfigValue? { table[key].map(ConfigValue.init) }

    public func allow(_ keys: Set<String>) throws {
        for k in table.keys.sorted() where !keys.contains(k) {
            throw error(k, "is not a known key (known: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    /// Relative paths are relative to the configuration file's directory, and made absolute, so
    /// that commands run from elsewhere (hooks, `COURIER_PATH`) get paths that work anywhere.
    /// The result is normalised (`normalized`), so defaults such as `<inbox>/../state` read as the
    /// directory they are.
    public func resolve(_ p: String) -> String {
        if p.hasPrefix("/") { return Self.normalized(p) }
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return Self.normalized(Sys.absolutePath(dir) + "/" + p)
    }

    /// The path without `.`, `..` or repeated slashes, naming the file the kernel would open: the
    /// part up to the last `..` goes through `realpath` when it exists, so `<inbox>/../state` with
    /// a symlinked inbox is still the `state` beside the inbox's target (where it always was: a
    /// purely lexical `..` would move the store and state of an existing install). What does not
    /// exist yet, and a path without `..`, is normalised lexically.
    public static func normalized(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard let last = parts.lastIndex(of: "..") else { return lexicallyNormalized(path) }
        let head = parts[...last].joined(separator: "/")
        guard let real = Sys.realPath(head.isEmpty ? "/" : head) else { return lexicallyNormalized(path) }
        return lexicallyNormalized(real + "/" + parts[(last + 1)...].joined(separator: "/"))
    }

    /// A path without `.` components, empty ones, or `..` after a name; `..` at the root stays at
    /// the root, and leading `..` of a relative path are kept. Lexical: symbolic links are not
    /// looked at (as Go's `filepath.Clean`).
    public static func lexicallyNormalized(_ path: String) -> String {
        let absolute = path.hasPrefix("/")
        var parts: [Substring] = []
        for c in path.split(separator: "/") {
            if c == "." { continue }
            if c == ".." {
                if let last = parts.last, last != ".." {
                    parts.removeLast()
                } else if !absolute {
                    parts.append(c)
                }
                continue
            }
            parts.append(c)
        }
        let joined = parts.joined(separator: "/")
        return absolute ? "/" + joined : (joined.isEmpty ? "." : joined)
    }

    public func string(_ key: String) throws -> String? {
        guard let v = table[key] else { return nil }
        guard let s = v.string else { throw error(key, "must be a string") }
        return s
    }

    public func strings(_ key: String) throws -> [String] {
        guard let v = table[key] else { return [] }
        guard let a = v.array else { throw error(key, "must be an array of strings") }
        return try a.map {
            guard let s = $0.string else { throw error(key, "must be an array of strings") }
            return s
        }
    }

    public func bool(_ key: String) throws -> Bool? {
        guard let v = table[key] else { return nil }
        guard let b = v.bool else { throw error(key, "must be true or false") }
        return b
    }

    public func int(_ key: String, min: Int, max: Int) throws -> Int? {
        guard let v = table[key] else { return nil }
        guard let i = v.int, i >= min, i <= max else { throw error(key, "must be an integer from \(min) to \(max)") }
        return i
    }

    /// A duration: a string such as "90s", "15m", "6h", "30d", or an integer of seconds.
    public func duration(_ key: String) throws -> Int64? {
        guard let v = table[key] else { return nil }
        if let i = v.int, i >= 0 { return Int64(i) }
        guard let s = v.string, let d = DurationParser.seconds(s) else {
            throw error(key, "must be a duration such as \"90s\", \"15m\", \"6h\" or \"30d\"")
        }
        return d
    }

    /// A size: an integer of bytes or a string with K, M, G suffix (powers of 1024).
    public func size(_ key: String) throws -> Int64? {
        guard let v = table[key] else { return nil }
        if let i = v.int, i > 0 { return Int64(i) }
        if let s = v.string, let n = SizeParser.bytes(s) { return n }
        throw error(key, "must be a size such as 2G, 500M or a number of bytes")
    }

    public func table(_ key: String) throws -> TableReader? {
        guard let v = table[key] else { return nil }
        guard let t = v.table else { throw error(key, "must be a table ([\(name.isEmpty ? key : name + "." + key)])") }
        return TableReader(table: t, name: name.isEmpty ? key : name + "." + key, path: path, locator: locator)
    }
}

/// One TOML value as plain Swift data. Dates and times, which no Courier key takes, are `.other`
/// with their TOML text; a table is `.table` (read it with `TableReader.table(_:)`).
public enum ConfigValue: Sendable, Equatable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case double(Double)
    case array([ConfigValue])
    case table
    case other(String)

    init(_ v: any TOMLValueConvertible) {
        if let s = v.string {
            self = .string(s)
        } else if let i = v.int {
            self = .int(i)
        } else if let b = v.bool {
            self = .bool(b)
        } else if let d = v.double {
            self = .double(d)
        } else if let a = v.array {
            self = .array(a.map { ConfigValue($0) })
        } else if v.table != nil {
            self = .table
        } else {
            self = .other(v.debugDescription)
        }
    }

    public var string: String? { if case .string(let s) = self { s } else { nil } }
    public var int: Int? { if case .int(let i) = self { i } else { nil } }
    public var array: [ConfigValue]? { if case .array(let a) = self { a } else { nil } }
}
