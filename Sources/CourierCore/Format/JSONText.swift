/// A JSON string literal for the JSON lines the programs write by hand (`verify --json`, push
/// and pull reports), where a `Codable` round trip would cost start-up time or reorder keys.
/// `"` and `\` are escaped, newline, CR and tab as `\n`, `\r`, `\t`, every other control
/// character and DEL as `\u00NN`: DEL is valid JSON raw, but these lines reach terminals.
public func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 || u.value == 0x7f {
                let h = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}
