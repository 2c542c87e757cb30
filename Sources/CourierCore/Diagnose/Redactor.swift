/// Removes secrets from text that goes into a diagnose archive: configuration files, log lines,
/// status and reason files, command lines. Support reads the result, so it keeps every line
/// where it was (a line of a secret is replaced, never dropped) and every key name; only values
/// become `<redacted>`.
///
/// What counts as a secret, by form rather than by file, so that a new config key or a new
/// program (courier-pull) is covered without a list to maintain:
/// - the value of any key whose name contains password, passwd, passphrase, secret, token, auth,
///   credential, apikey/api_key/api-key, cookie or private (`proxy_password = "…"`,
///   `Authorization = "Bearer …"`, `--token=…`, `X-Auth-Token: …`, `?access_token=…`),
///   except names that end in `_url`, `_file`, `_dir`, `_path` or `_fingerprints`: those name
///   where something is, which support needs;
/// - URL userinfo: `scheme://user:pass@host` becomes `scheme://<redacted>@host` (a user name
///   alone can be a token);
/// - the word after `Bearer`, and the seed after `courier-ed25519-secret-v1`;
/// - the body of a PEM `PRIVATE KEY` block (the BEGIN and END lines stay);
/// - in TOML (``config(_:)``), every line of a secret's multi-line string or array.
///
/// It cannot know a secret that has no such form (a bare password as a command argument):
/// docs/OPERATIONS.md says to look at the archive before sending it.
public enum Redactor {
    public static let mark = "<redacted>"

    /// A redacted text and how many values were replaced.
    public struct Result: Sendable, Equatable {
        public var text: String
        public var count: Int
    }

    static let secretWords = [
        "password", "passwd", "passphrase", "secret", "token", "auth", "credential",
        "apikey", "api_key", "api-key", "cookie", "private",
    ]
    static let referenceSuffixes = ["_url", "_urls", "_file", "_dir", "_path", "_fingerprints"]
    /// Words whose next token is a secret whatever comes before them.
    static let prefixWords = ["bearer", "courier-ed25519-secret-v1"]

    /// Whether a key name names a secret (see the type's comment).
    public static func isSecretKey(_ name: String) -> Bool {
        let k = name.lowercased()
        guard secretWords.contains(where: { k.contains($0) }) else { return false }
        return !referenceSuffixes.contains(where: { k.hasSuffix($0) })
    }

    /// A TOML configuration file: ``text(_:)`` line by line, plus the continuation lines of a
    /// secret's multi-line string (`"""`, `'''`) or array.
    public static func config(_ text: String) -> Result { run(text, toml: true) }

    /// Any other text (logs, JSON, command lines, free-form files).
    public static func text(_ text: String) -> Result { run(text, toml: false) }

    private enum Open {
        case none
        case string([UInt8])
        case array
        case pem
    }

    private static func run(_ text: String, toml: Bool) -> Result {
        var count = 0
        var open = Open.none
        var out: [String] = []
        for lineSub in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = Array(String(lineSub).utf8)
            switch open {
            case .string(let delim):
                count += 1
                if let end = find(delim, in: line, from: 0) {
                    open = .none
                    out.append(mark + String(decoding: line[(end)...], as: UTF8.self))
                } else {
                    out.append(mark)
                }
                continue
            case .array:
                count += 1
                if line.contains(UInt8(ascii: "]")) {
                    open = .none
                    out.append(mark + "]")
                } else {
                    out.append(mark)
                }
                continue
            case .pem:
                if find(Array("-----END".utf8), in: line, from: 0) != nil {
                    open = .none
                    out.append(String(decoding: line, as: UTF8.self))
                } else {
                    out.append(mark)
                    count += 1
                }
                continue
            case .none:
                break
            }
            if let begin = find(Array("-----BEGIN".utf8), in: line, from: 0),
                find(Array("PRIVATE KEY".utf8), in: line, from: 0) != nil
            {
                if find(Array("-----END".utf8), in: line, from: begin + 10) != nil {
                    // The whole key on one line (a TOML or JSON string with `\n` escapes): the
                    // line goes, body and all.
                    out.append(mark)
                    count += 1
                } else {
                    open = .pem
                    out.append(String(decoding: line, as: UTF8.self))
                }
                continue
            }
            let (redacted, n, continues) = redactLine(line)
            count += n
            if toml, let c = continues { open = c }
            out.append(String(decoding: redacted, as: UTF8.self))
        }
        return Result(text: out.joined(separator: "\n"), count: count)
    }

    private static func isWordByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == 0x5f || b == 0x2d
            || b == 0x2e
    }

    private static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard needle.count <= hay.count, from <= hay.count - needle.count else { return nil }
        var i = from
        while i <= hay.count - needle.count {
            if hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }

    private static func startsWith(_ hay: [UInt8], _ at: Int, _ s: String) -> Bool {
        let n = Array(s.utf8)
        return at + n.count <= hay.count && Array(hay[at..<(at + n.count)]) == n
    }

    /// Ends an unquoted value: white space, a quote, a backslash, a separator.
    private static func endsToken(_ b: UInt8) -> Bool {
        b == 0x20 || b == 0x09 || b == 0x22 || b == 0x27 || b == 0x5c || b == 0x2c || b == 0x7d || b == 0x5d
            || b == 0x3b || b == 0x26 || b == 0x23 || b == 0x3e || b == 0x3c || b == 0x60 || b == 0x29
    }

    /// The end (exclusive) of the value starting at `i`, and what stays open past the line.
    private static func valueEnd(_ line: [UInt8], _ i: Int) -> (end: Int, open: Open) {
        let n = line.count
        guard i < n else { return (i, .none) }
        for delim in ["\"\"\"", "'''"] where startsWith(line, i, delim) {
            if let close = find(Array(delim.utf8), in: line, from: i + 3) { return (close + 3, .none) }
            return (n, .string(Array(delim.utf8)))
        }
        let c = line[i]
        // \"…\": a JSON string inside a JSON string (a reason that quotes a command's output).
        if c == 0x5c, i + 1 < n, line[i + 1] == 0x22 {
            if let close = find(Array("\\\"".utf8), in: line, from: i + 2) { return (close + 2, .none) }
            return (n, .none)
        }
        if c == 0x22 || c == 0x27 {  // "…" with backslash escapes, '…' literal
            var j = i + 1
            while j < n && line[j] != c {
                if c == 0x22 && line[j] == 0x5c { j += 1 }
                j += 1
            }
            return (min(j + 1, n), .none)
        }
        if c == 0x5b || c == 0x7b {  // [ … ] or { … }, strings inside skipped
            var depth = 0
            var j = i
            while j < n {
                let b = line[j]
                if b == 0x22 || b == 0x27 {
                    j = valueEnd(line, j).end
                    continue
                }
                if b == 0x5b || b == 0x7b { depth += 1 }
                if b == 0x5d || b == 0x7d {
                    depth -= 1
                    if depth == 0 { return (j + 1, .none) }
                }
                j += 1
            }
            return (n, c == 0x5b ? .array : .none)
        }
        var j = i
        while j < n && !endsToken(line[j]) { j += 1 }
        // `Authorization: Bearer X`, `token = Basic X`: the scheme word and its credential.
        let word = String(decoding: line[i..<j], as: UTF8.self).lowercased()
        if ["bearer", "basic", "digest", "token"].contains(word), j < n, line[j] == 0x20 {
            var k = j + 1
            while k < n && !endsToken(line[k]) { k += 1 }
            if k > j + 1 { j = k }
        }
        return (j, .none)
    }

    /// One line: secret keys' values, URL userinfo, prefix words. Returns what stays open.
    private static func redactLine(_ line: [UInt8]) -> ([UInt8], Int, Open?) {
        var out: [UInt8] = []
        out.reserveCapacity(line.count)
        var count = 0
        var i = 0
        let n = line.count
        let markBytes = Array(mark.utf8)
        while i < n {
            // scheme://userinfo@host
            if startsWith(line, i, "://") {
                out += Array("://".utf8)
                i += 3
                var j = i
                var at: Int? = nil
                while j < n {
                    let b = line[j]
                    if b == 0x2f || b == 0x3f || b == 0x23 || b == 0x20 || b == 0x09 || b == 0x22 || b == 0x27
                        || b == 0x3e || b == 0x3c || b == 0x60
                    {
                        break
                    }
                    if b == 0x40 { at = j }
                    j += 1
                }
                if let at {
                    out += markBytes
                    count += 1
                    i = at
                }
                continue
            }
            if isWordByte(line[i]) && (i == 0 || !isWordByte(line[i - 1])) {
                var k = i
                while k < n && isWordByte(line[k]) { k += 1 }
                let word = String(decoding: line[i..<k], as: UTF8.self)
                out += line[i..<k]
                let lower = word.lowercased()
                if prefixWords.contains(lower), k < n, line[k] == 0x20 || line[k] == 0x09 {
                    var v = k
                    while v < n && (line[v] == 0x20 || line[v] == 0x09) { v += 1 }
                    var e = v
                    while e < n && !endsToken(line[e]) { e += 1 }
                    if e > v && String(decoding: line[v..<e], as: UTF8.self) != mark {
                        out += line[k..<v] + markBytes
                        count += 1
                        i = e
                        continue
                    }
                }
                if isSecretKey(word) {
                    // key, optional closing quote, spaces, '=' or ':' (not '://'), spaces, value
                    var j = k
                    if j < n && (line[j] == 0x22 || line[j] == 0x27) {
                        j += 1
                    } else if j + 1 < n && line[j] == 0x5c && line[j + 1] == 0x22 {
                        j += 2
                    }  // \"password\":
                    while j < n && (line[j] == 0x20 || line[j] == 0x09) { j += 1 }
                    if j < n && (line[j] == 0x3d || (line[j] == 0x3a && !startsWith(line, j, "://"))) {
                        j += 1
                        while j < n && (line[j] == 0x20 || line[j] == 0x09) { j += 1 }
                        let (end, open) = valueEnd(line, j)
                        let value = String(decoding: line[j..<end], as: UTF8.self)
                        if end > j && value != mark && value != "\"\(mark)\"" {
                            out += line[k..<j]
                            let quote: UInt8? = (line[j] == 0x22 || line[j] == 0x27) ? line[j] : nil
                            if let q = quote, end - j >= 2, line[end - 1] == q, case .none = open {
                                out += [q] + markBytes + [q]
                            } else {
                                out += markBytes
                            }
                            count += 1
                            i = end
                            if case .none = open { continue }
                            return (out, count, open)
                        }
                    }
                }
                i = k
                continue
            }
            out.append(line[i])
            i += 1
        }
        return (out, count, nil)
    }
}
