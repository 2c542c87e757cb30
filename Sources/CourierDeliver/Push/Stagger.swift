import CourierCore
@preconcurrency import Glibc

/// `push --stagger WINDOW`: when each inbox gets its copy, so that thousands of clients do not
/// all receive (and reload) in the same second.
///
/// Deterministic, not random: the inboxes are ordered by a hash of their path (FNV-1a 64 over
/// its UTF-8 bytes) and the i-th of n starts at `window × i / n`. Evenly spaced, because offsets
/// drawn from the hash itself cluster for small fleets (four inboxes can all land in the same
/// second) while ranks give exactly n / window starts per second for any n; ordered by the hash
/// of the path, so that a rerun over the same inboxes (after a failure, from cron) gives every
/// client the same slot as before — its operator can tell when it will reload — without making
/// that order the alphabetical order of host names. A stable hash, not Swift's `Hasher`, which
/// is seeded anew in every process.
public enum Stagger {
    /// The offset in seconds from the start of the copies for each of `inboxes`, in their order.
    /// The first starts at 0, the last at `window × (n−1)/n`: every start falls inside the window.
    public static func offsets(_ inboxes: [String], window: Double) -> [Double] {
        let n = inboxes.count
        guard n > 0, window > 0 else { return Array(repeating: 0, count: n) }
        let keys = inboxes.map { fnv1a($0) }
        let order = inboxes.indices.sorted { a, b in
            keys[a] != keys[b]
                ? keys[a] < keys[b]
                : inboxes[a].utf8.lexicographicallyPrecedes(inboxes[b].utf8) || (inboxes[a] == inboxes[b] && a < b)
        }
        var out = Array(repeating: 0.0, count: n)
        for (rank, i) in order.enumerated() { out[i] = window * Double(rank) / Double(n) }
        return out
    }

    /// FNV-1a, 64 bits: the same value for the same bytes in every process and on every machine.
    public static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    /// Sleeps the calling thread until `deadline` (`Sys.monotonicSeconds`), through EINTR.
    public static func sleep(until deadline: Double) {
        let d = deadline - Sys.monotonicSeconds()
        guard d > 0 else { return }
        var ts = timespec(tv_sec: Int(d), tv_nsec: Int((d - Double(Int(d))) * 1e9))
        var rest = timespec()
        while nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
    }
}
