/// Durations in configuration and on the command line: a number with a unit, `s`, `m`, `h`, `d`
/// (`90s`, `15m`, `6h`, `30d`), or several joined (`1h30m`). A bare number is seconds.
public enum DurationParser {
    public static func seconds(_ text: String) -> Int64? {
        let s = text.trimming(" ")
        guard !s.isEmpty else { return nil }
        if let n = Int64(s), n >= 0 { return n }
        var total: Int64 = 0
        var num: Int64? = nil
        for c in s {
            if let d = c.wholeNumberValue, c.isASCII {
                num = (num ?? 0) * 10 + Int64(d)
                if num! > 1 << 40 { return nil }
            } else {
                guard let n = num else { return nil }
                switch c {
                case "s": total += n
                case "m": total += n * 60
                case "h": total += n * 3600
                case "d": total += n * 86400
                default: return nil
                }
                num = nil
            }
        }
        return num == nil ? total : nil
    }
}
