/// The Prometheus text exposition format, as node_exporter's textfile collector reads it: one
/// writer for `courier-stage run --metrics-file` and `courier-deliver report --prometheus`, so
/// that label values are escaped the same way everywhere (a client name or content type with a
/// `"` or a newline in it cannot forge a sample).
public struct PrometheusText: Sendable {
    /// One sample: its labels in order (none for a plain gauge) and its value as written.
    public typealias Sample = (labels: [(String, String)], value: String)

    /// What has been written so far; every line ends with a newline.
    public private(set) var text = ""

    public init() {}

    /// A metric family: its `# HELP` and `# TYPE` lines, then one line a sample. A family with no
    /// samples still gets its two comment lines, as before, so a dashboard sees the metric exists.
    public mutating func metric(_ name: String, _ help: String, type: String = "gauge", _ samples: [Sample]) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        for s in samples {
            let labels = s.labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",")
            text += labels.isEmpty ? "\(name) \(s.value)\n" : "\(name){\(labels)} \(s.value)\n"
        }
    }

    /// A plain gauge of one unlabelled value.
    public mutating func gauge(_ name: String, _ help: String, _ value: String) {
        metric(name, help, [([], value)])
    }

    /// A label value as the format wants it: `\` as `\\`, `"` as `\"`, newline as `\n`.
    public static func escape(_ s: String) -> String {
        var o = ""
        // Scalars, not Characters: "\r\n" is one Character and would not match "\n".
        for u in s.unicodeScalars {
            switch u {
            case "\\": o += "\\\\"
            case "\"": o += "\\\""
            case "\n": o += "\\n"
            default: o.unicodeScalars.append(u)
            }
        }
        return o
    }
}
