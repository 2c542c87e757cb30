@preconcurrency import Glibc

/// A bandwidth cap shared by every copy of one run (`push --bwlimit`, the pull copier's
/// `bwlimit`): a token bucket of `bytesPerSecond`, refilled continuously, holding at most one
/// `burst` (a quarter second of rate by default, so a cap of 2 MiB/s never lets 2 MiB through at
/// once). Parallel copies take from the same bucket, so the cap is for the run, as rsync's
/// `--bwlimit` is per transfer and would multiply by the number of copies.
///
/// Callers account bytes *after* moving them (`delayAfter`): the time to wait is whatever brings
/// the average back to the rate. A sleep of the whole deficit at once keeps the syscall count low
/// (one per chunk, not per byte).
public final class Throttle: Sendable {
    public let bytesPerSecond: Double
    public let burst: Double
    /// (tokens, time of last refill in monotonic seconds)
    private let bucket: Locked<(tokens: Double, at: Double)>

    /// `bytesPerSecond` must be > 0 (`parseRate` refuses 0 and negatives).
    public init(bytesPerSecond: Int64, burst: Int64? = nil) {
        precondition(bytesPerSecond > 0, "Throttle needs a positive rate")
        self.bytesPerSecond = Double(bytesPerSecond)
        self.burst = Double(burst ?? max(64 << 10, bytesPerSecond / 4))
        bucket = Locked((tokens: self.burst, at: Sys.monotonicSeconds()))
    }

    /// Accounts `bytes` just moved; returns the seconds the caller should wait before moving more
    /// (0 while the bucket still holds tokens). Thread-safe.
    public func delayAfter(_ bytes: Int) -> Double {
        let now = Sys.monotonicSeconds()
        return bucket.withLock { b in
            b.tokens = min(burst, b.tokens + (now - b.at) * bytesPerSecond)
            b.at = now
            b.tokens -= Double(bytes)
            return b.tokens >= 0 ? 0 : -b.tokens / bytesPerSecond
        }
    }

    /// Accounts `bytes` and sleeps the thread as long as needed (for copies on their own threads).
    public func pause(after bytes: Int) {
        let d = delayAfter(bytes)
        guard d > 0 else { return }
        var ts = timespec(tv_sec: Int(d), tv_nsec: Int((d - Double(Int(d))) * 1e9))
        var rest = timespec()
        while nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
    }

    /// Accounts `bytes` and suspends the task as long as needed (for async downloads).
    public func pauseAsync(after bytes: Int) async {
        let d = delayAfter(bytes)
        guard d > 0 else { return }
        try? await Task.sleep(nanoseconds: UInt64(d * 1e9))
    }

    /// Parses a rate as operators write it: bytes per second with an optional binary suffix —
    /// `500K`, `2M`, `2MiB`, `1G`, `2M/s`; a bare number is KiB/s, as rsync's `--bwlimit`.
    /// Throws a `.usage` error naming `what` for anything else, zero or negative.
    public static func parseRate(_ text: String, what: String = "bandwidth limit") throws -> Int64 {
        var s = text.trimming(" ")
        if s.hasSuffix("/s") { s.removeLast(2) }
        var unit: Int64 = 1024
        let suffixes: [(String, Int64)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30),
            ("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30),
            ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1),
        ]
        for (suf, mult) in suffixes where s.uppercased().hasSuffix(suf.uppercased()) {
            s.removeLast(suf.count)
            unit = mult
            break
        }
        guard let n = Double(s.trimming(" ")), n.isFinite, n > 0, n * Double(unit) >= 1,
            n * Double(unit) < 1e15
        else {
            throw CourierError(
                .usage,
                "\(what) '\(Escape.text(text))': expected a positive rate such as 500K, 2M or 1G (bytes per second; a bare number is KiB/s)"
            )
        }
        return Int64(n * Double(unit))
    }
}
