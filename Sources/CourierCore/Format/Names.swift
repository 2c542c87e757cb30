/// Pure validators for the names the format carries: content types, revisions, file paths,
/// package file names. No I/O; every rule is in docs/FORMAT.md.
public enum Names {
    /// Content-type names: 1–64 bytes of `a-z 0-9 . _ -`, starting with a letter or digit.
    /// They become directory names on staging servers and clients, so nothing else is allowed.
    public static func validateType(_ name: String) throws {
        let b = Array(name.utf8)
        guard !b.isEmpty, b.count <= 64 else {
            throw CourierError(.malformed, "content type \(Escape.quoted(name)): must be 1 to 64 characters")
        }
        func ok(_ c: UInt8) -> Bool {
            (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2e || c == 0x5f || c == 0x2d
        }
        guard b.allSatisfy(ok), (b[0] >= 0x61 && b[0] <= 0x7a) || (b[0] >= 0x30 && b[0] <= 0x39) else {
            throw CourierError(
                .malformed,
                "content type \(Escape.quoted(name)): only a-z, 0-9, '.', '_' and '-' allowed, starting with a letter or digit"
            )
        }
    }

    /// Maximum bytes of a payload path, and of one component (the Linux NAME_MAX).
    public static let maxPathBytes = 1024
    public static let maxComponentBytes = 255

    /// A payload path: relative, `/`-separated, every component non-empty and not `.` or `..`,
    /// no NUL, no control characters, no backslash, at most `maxPathBytes` bytes, components at
    /// most 255 bytes. Returns the reason it is refused, or nil when it is acceptable.
    public static func pathProblem(_ path: String, maxBytes: Int = maxPathBytes) -> String? {
        let b = Array(path.utf8)
        if b.isEmpty { return "empty path" }
        if b.count > maxBytes { return "path longer than \(maxBytes) bytes" }
        if b[0] == 0x2f { return "absolute path" }
        if b.last == 0x2f { return "path ends with '/'" }
        for c in b where c < 0x20 || c == 0x7f || c == 0x5c {
            return c == 0x5c ? "backslash in path" : "control character in path"
        }
        for comp in b.split(separator: 0x2f, omittingEmptySubsequences: false) {
            if comp.isEmpty { return "empty path component ('//')" }
            if comp.elementsEqual([0x2e]) || comp.elementsEqual([0x2e, 0x2e]) {
                return "'\(comp.count == 1 ? "." : "..")' component in path"
            }
            if comp.count > maxComponentBytes { return "path component longer than \(maxComponentBytes) bytes" }
        }
        return nil
    }

    /// The components of a path, split at every `/` byte.
    ///
    /// Not `String.split(separator: "/")`: that splits at Characters, and a `/` followed by a
    /// combining mark is one Character (`"/\u{301}"`), so `"../\u{301}x"` would be one harmless
    /// looking component to Swift and `..` then `\u{301}x` to the kernel.
    public static func components(_ path: String) -> [String] {
        path.utf8.split(separator: 0x2f, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Every proper parent directory of a path (`a/b/c` → `a`, `a/b`), split at `/` bytes.
    public static func parents(_ path: String) -> [String] {
        let comps = components(path)
        guard comps.count > 1 else { return [] }
        return (1..<comps.count).map { comps[0..<$0].joined(separator: "/") }
    }

    /// Revisions are unsigned integers that only grow. Courier writes `YYYYMMDDNNN` by default
    /// (date and a three-digit sequence), but accepts any decimal up to 20 digits, no sign, no
    /// leading zero.
    public static func parseRevision(_ s: Substring) -> UInt64? {
        guard !s.isEmpty, s.count <= 20, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        if s.count > 1 && s.first == "0" { return nil }
        return UInt64(s)
    }

    public static func parseRevision(_ s: String) -> UInt64? { parseRevision(Substring(s)) }

    /// The default revision for `date` (UTC) and a sequence number 1–999: `YYYYMMDDNNN`.
    public static func defaultRevision(unixTime: Int64, sequence: Int) -> UInt64 {
        let (y, m, d) = RFC3339.civil(fromDays: unixTime >= 0 ? unixTime / 86400 : (unixTime - 86399) / 86400)
        return UInt64(y) * 10_000_000 + UInt64(m) * 100_000 + UInt64(d) * 1000 + UInt64(sequence)
    }

    /// File name of a full package: `<type>_<revision>.cpkg`.
    public static func fullPackageName(type: String, revision: UInt64) -> String {
        "\(type)_\(revision).cpkg"
    }

    /// File name of a delta package: `<type>_<revision>_from_<base>.cpkg`.
    public static func deltaPackageName(type: String, revision: UInt64, base: UInt64) -> String {
        "\(type)_\(revision)_from_\(base).cpkg"
    }

    public struct PackageFileName: Equatable, Sendable {
        public var type: String
        public var revision: UInt64
        public var base: UInt64?
        public init(type: String, revision: UInt64, base: UInt64?) {
            self.type = type
            self.revision = revision
            self.base = base
        }
    }

    /// Parses a package file name; nil when the name is not a package's (temp names, others).
    public static func parsePackageFileName(_ name: String) -> PackageFileName? {
        guard name.hasSuffix(".cpkg"), !name.hasPrefix(".") else { return nil }
        let stem = name.dropLast(5)
        // The type may itself contain '_', so split from the right.
        var parts = stem.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count >= 2 else { return nil }
        var base: UInt64? = nil
        if parts.count >= 4, parts[parts.count - 2] == "from" {
            guard let b = parseRevision(parts[parts.count - 1]) else { return nil }
            base = b
            parts.removeLast(2)
        }
        guard parts.count >= 2, let rev = parseRevision(parts[parts.count - 1]) else { return nil }
        let type = parts.dropLast().joined(separator: "_")
        guard (try? validateType(type)) != nil else { return nil }
        return PackageFileName(type: type, revision: rev, base: base)
    }
}
