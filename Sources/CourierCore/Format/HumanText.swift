/// Numbers for people, shared by every program's output (no Foundation formatters).

/// Bytes for humans: 1.2 MiB.
public func human(_ n: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var u = 0
    while v >= 1024 && u < units.count - 1 {
        v /= 1024
        u += 1
    }
    return u == 0 ? "\(n) B" : "\(String(format1: v)) \(units[u])"
}

extension String {
    /// One decimal, without Foundation's formatters.
    public init(format1 v: Double) {
        let r = (v * 10).rounded() / 10
        let i = Int64(r)
        let d = Int64(((r - Double(i)) * 10).rounded())
        self = "\(i).\(abs(d))"
    }

    /// Three decimals (seconds with milliseconds), without Foundation's formatters.
    public init(format3 v: Double) {
        let ms = Int64((v * 1000).rounded())
        let frac = String(ms % 1000)
        self = "\(ms / 1000).\(String(repeating: "0", count: 3 - frac.count))\(frac)"
    }
}

/// An age for humans, compact and to the minute where it matters: `45s`, `12m`, `3h`, `3h20m`,
/// `2d`, `2d5h`. Shared by `courier-deliver report` and `courier-inboxd status` (which printed
/// `0 min` for fresh content and `47 h` for nearly two days before #17.5). A negative age (a
/// clock behind the stager's) is shown as it is, so that the skew is visible.
public func humanAge(_ s: Int64) -> String {
    if s < 60 { return "\(s)s" }
    if s < 3600 { return "\(s / 60)m" }
    if s < 86400 { return "\(s / 3600)h\(s % 3600 / 60 > 0 ? "\(s % 3600 / 60)m" : "")" }
    return "\(s / 86400)d\(s % 86400 / 3600 > 0 ? "\(s % 86400 / 3600)h" : "")"
}
