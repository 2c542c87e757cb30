import FoundationEssentials

/// The one `JSONEncoder` setup of the programs' `--json` reports (`courier-stage run`,
/// `courier-deliver report`, `verify`, `push` and `select`, `courier-pull run` and `mirror`): one
/// line, keys sorted — `JSONEncoder` otherwise writes them in a different order on every run —
/// snake_case keys, `/` unescaped so that URLs read as they are. Files (status.json, manifests)
/// have their own.
public enum ReportJSON {
    /// `value` as one line of JSON. `JSONEncoder` escapes `"`, `\` and the C0 controls; DEL,
    /// which JSON allows raw, is escaped too (`\u007f`), because these lines reach terminals. A
    /// 0x7F byte occurs in UTF-8 only as DEL itself, and in JSON only inside a string, so
    /// replacing the bytes is exact.
    public static func line<T: Encodable>(_ value: T) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        enc.keyEncodingStrategy = .convertToSnakeCase
        // Cannot throw: reports hold strings, integers, booleans and finite seconds.
        let bytes = try! enc.encode(value)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for b in bytes {
            if b == 0x7f { out += Array("\\u007f".utf8) } else { out.append(b) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Seconds rounded to the millisecond, as the reports give durations: the nearest `Double`
    /// to a whole number of milliseconds encodes with at most three decimals (`0.25`, `1.5`,
    /// `12.345`) where the raw value would print seventeen digits.
    public static func seconds(_ s: Double) -> Double { (s * 1000).rounded() / 1000 }
}
