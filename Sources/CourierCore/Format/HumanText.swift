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
