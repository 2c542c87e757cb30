import CourierCore

/// Finds the line of a key in TOML text, for error messages that name file, line and key.
/// TOMLKit reports positions only for syntax errors; for "unknown key" and "bad value" we look
/// the key up in the text ourselves: table headers (`[a.b]`) set the current table, and
/// `key = …` lines inside it are matched. A pure function of the text.
public struct TOMLLocator {
    private var lines: [(table: String, key: String, line: Int)] = []

    public init(_ text: String) {
        var table = ""
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimming(" \t\r")
            if line.hasPrefix("#") || line.isEmpty { continue }
            if line.hasPrefix("[") {
                let inner = line.drop(while: { $0 == "[" }).prefix(while: { $0 != "]" })
                table = TOMLLocator.normalize(String(inner))
                let parts = table.split(separator: ".").map(String.init)
                lines.append((parts.dropLast().joined(separator: "."), parts.last ?? table, i + 1))
                continue
            }
            if let eq = line.firstIndex(of: "=") {
                let key = TOMLLocator.normalize(String(line[..<eq]))
                // Dotted keys (`a.b = 1`) belong to a sub-table of the current one.
                let parts = key.split(separator: ".").map(String.init)
                let tbl = ([table] + parts.dropLast()).filter { !$0.isEmpty }.joined(separator: ".")
                lines.append((tbl, parts.last ?? key, i + 1))
            }
        }
    }

    static func normalize(_ s: String) -> String {
        s.split(separator: ".").map { $0.trimming(" \t\"'") }.joined(separator: ".")
    }

    /// Line of `key` in `table` (dotted path, "" for the top level), or of the table header.
    public func line(of key: String, in table: String) -> Int? {
        lines.first { $0.table == table && $0.key == key }?.line
    }
}
