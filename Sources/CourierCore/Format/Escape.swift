/// The one way an untrusted string reaches a log line, a terminal or a reason file.
///
/// Names from archives, manifest paths, inbox file names, HTTP headers and command output are
/// chosen by whoever wrote them. Printed raw, a newline in one forges whole log lines (in the
/// daemon log, in `courier-deliver verify` output that Ansible's `validate:` shows), an ESC
/// sequence reaches the operator's terminal, and a right-to-left override reorders what a person
/// reads. So every such string goes through `Escape` before it is interpolated into a message:
///
/// - `\` becomes `\\` (so an escaped form is never ambiguous), newline `\n`, CR `\r`, tab `\t`;
/// - any other C0 control and DEL becomes `\xNN`; C1 controls (U+0080–U+009F), the line and
///   paragraph separators U+2028/U+2029 and the bidirectional controls (U+200E/F, U+202A–U+202E,
///   U+2066–U+2069) become `\u{NNNN}`;
/// - bytes that are not valid UTF-8 (``bytes(_:)``) become `\xNN`.
///
/// The sinks (the log handler and the programs' error printer) also run ``line(_:)`` over every
/// whole message, so a string that was missed at its source still cannot break a line.
public enum Escape {
    /// The escaped form of an untrusted string, for use inside a message.
    public static func text(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: { needsEscape($0) || $0 == "\\" }) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count + 8)
        for u in s.unicodeScalars { append(u, to: &out, backslash: true) }
        return out
    }

    /// `'…'` around the escaped form: how messages name an untrusted path or entry.
    public static func quoted(_ s: String) -> String { "'" + text(s) + "'" }

    /// The escaped form of raw name bytes that may not be UTF-8 (archive entry names, inbox
    /// file names, inotify events): valid UTF-8 runs as ``text(_:)``, other bytes as `\xNN`.
    public static func bytes<C: Collection>(_ b: C) -> String where C.Element == UInt8 {
        let all = Array(b)
        if let s = String(validating: all, as: UTF8.self) { return text(s) }
        var out = ""
        var i = 0
        while i < all.count {
            // The shortest prefix at i that is one valid scalar (1 to 4 bytes), else one bad byte.
            var taken = 0
            for len in 1...4 where i + len <= all.count {
                if let s = String(validating: all[i..<(i + len)], as: UTF8.self), s.unicodeScalars.count == 1 {
                    out += text(s)
                    taken = len
                    break
                }
            }
            if taken == 0 {
                out += "\\x" + hex2(all[i])
                taken = 1
            }
            i += taken
        }
        return out
    }

    /// `'…'` around ``bytes(_:)``.
    public static func quotedBytes<C: Collection>(_ b: C) -> String where C.Element == UInt8 { "'" + bytes(b) + "'" }

    /// The sink's pass over a whole message: control, separator and bidi characters escaped,
    /// backslashes left as they are (the parts that came from ``text(_:)`` are escaped already).
    public static func line(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: needsEscape) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count + 8)
        for u in s.unicodeScalars { append(u, to: &out, backslash: false) }
        return out
    }

    /// Escapes every line of a multi-line text but keeps its line breaks (command output shown
    /// to a person at a terminal, never a log line).
    public static func lines(_ s: String) -> String {
        s.split(separator: "\n", omittingEmptySubsequences: false).map { line(String($0)) }.joined(separator: "\n")
    }

    static func needsEscape(_ u: Unicode.Scalar) -> Bool {
        let v = u.value
        if v < 0x20 || v == 0x7f { return true }
        if v >= 0x80 && v <= 0x9f { return true }
        switch v {
        case 0x200e, 0x200f, 0x2028, 0x2029, 0x202a...0x202e, 0x2066...0x2069: return true
        default: return false
        }
    }

    static func append(_ u: Unicode.Scalar, to out: inout String, backslash: Bool) {
        switch u {
        case "\\" where backslash: out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x80 && needsEscape(u) {
                out += "\\x" + hex2(UInt8(u.value))
            } else if needsEscape(u) {
                out += "\\u{" + String(u.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }

    static func hex2(_ b: UInt8) -> String {
        let d = Array("0123456789abcdef".utf8)
        return String(decoding: [d[Int(b >> 4)], d[Int(b & 15)]], as: UTF8.self)
    }
}
