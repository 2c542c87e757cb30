/// Python's `urllib.parse.quote(s, safe="")`, which python-tuf applies to role names (in URLs
/// and local file names) and to target paths (as file names in the target directory).
///
/// Every byte of the UTF-8 form becomes `%XX` (upper-case hex) except ASCII letters, digits and
/// `_ . - ~`. With nothing "safe", `/` is encoded too, so a role named `../x` or `a/b` can never
/// leave the metadata directory: its file is `..%2Fx.json`.
public enum PercentEncoding {
    public static func quote(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        let hex = Array("0123456789ABCDEF")
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out.append("%")
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0x0f)])
            }
        }
        return out
    }
}
