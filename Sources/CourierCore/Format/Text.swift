/// Trimming and URL redaction: the string helpers every module needs, in one copy, without
/// Foundation's `NSString` bridge (the house imports only FoundationEssentials where it can,
/// which has no `trimmingCharacters`). Issue #17.5 found six trim helpers and two redactors.
extension StringProtocol {
    /// Without leading and trailing characters of `set` (`" \t"`, `" \t\r\n"`, `"\"'"`…).
    public func trimming(_ set: String) -> String {
        let chars = Set(set)
        var s = self[...]
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

/// The one rule for taking credentials out of a URL before it reaches a log, a message, a
/// report or a package's provenance.
public enum URLRedaction {
    /// `scheme://user:password@host/…` becomes `scheme://***@host/…`. The userinfo ends at the
    /// *last* `@` before the path, query or fragment, so a password with a raw `@` in it
    /// (`u:p@ss@host`) is removed whole and an `@` in a query (`?mail=a@b`) is left alone. Text
    /// with no `://` (something that did not even parse as a URL) loses everything up to its last
    /// `@`: best effort, but it errs on the side of removing too much.
    public static func redact(_ text: String) -> String {
        guard let sep = text.firstRange(of: "://") else {
            if let at = text.lastIndex(of: "@") { return "***@" + String(text[text.index(after: at)...]) }
            return text
        }
        let rest = text[sep.upperBound...]
        let authEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        guard let at = rest[..<authEnd].lastIndex(of: "@") else { return text }
        return String(text[..<sep.upperBound]) + "***@" + String(rest[rest.index(after: at)...])
    }
}
