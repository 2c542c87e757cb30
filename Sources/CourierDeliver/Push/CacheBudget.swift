import CourierCore
import Dispatch
@preconcurrency import Glibc

/// How `push --no-sync` writes its large copies on a local disk: through the page cache, or by
/// direct I/O. (The durable default does not use this: its copies must reach the disk before
/// the renames anyway, and direct I/O gets them there with one write instead of two.)
///
/// Without a flush to wait for, a copy into the page cache finishes at memory speed, but costs
/// a memcpy of CPU, and on a 2-core machine that CPU is shared with verification; a direct copy
/// costs almost no CPU but goes at the disk's speed. So both run at once: `directSlots` copies
/// at a time go by direct I/O, keeping the disk busy, the other threads copy through the cache.
/// Once the CPUs are free — no copy left to start and verification done — a direct copy moves
/// its rest to the cache, so that a slow disk never holds up the end. (Not before: with the
/// mixed set at 10 inboxes, where verifying the full package is the longest task, moving the
/// direct copies into the cache as soon as the last copy had started made push --no-sync slower
/// than the durable push, 0.36 s against 0.28 s: their memcpy took CPU from verification.) (Measured with push on this 2-core machine while another build
/// ran, medians of 3: 10 copies of 99 MiB, all through the cache 0.64 s, two direct slots
/// 0.48 s, one to four slots within the noise; the mixed set at 50 inboxes 0.70 s and 0.58 s.)
///
/// The cache takes only what fits under the kernel's "free run" ceiling of dirty pages, halfway
/// between `vm.dirty_background_*` and `vm.dirty_*` (`nr_dirty_background_threshold`,
/// `nr_dirty_threshold` in /proc/vmstat): past it, `balance_dirty_pages` makes every writer wait
/// for write-back, and a buffered copy then goes slower than a direct one (measured here: 50
/// copies of 100 MiB, page cache + syncfs 5.9–6.3 s, direct I/O 3.7–4.3 s). Copies past the
/// budget go by direct I/O.
public final class CacheBudget: Sendable {
    public enum Route: Sendable { case cache, direct }

    struct State {
        var left: Int64
        /// Large copies not started yet (an estimate from the plan: see `Pusher.run`).
        var waiting: Int
        var direct = 0
        var verified = false
    }
    private let state: Locked<State>
    public let directSlots: Int
    /// Copies through the cache at once: one per CPU (see `throughCache`).
    private let cacheGate: DispatchSemaphore

    public init(
        bytes: Int64, copies: Int = 0, directSlots: Int = 2,
        cacheSlots: Int = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    ) {
        state = Locked(State(left: max(0, bytes), waiting: copies))
        self.directSlots = directSlots
        cacheGate = DispatchSemaphore(value: max(1, cacheSlots))
    }

    /// Runs a copy through the page cache once fewer than one per CPU run: such a copy is a
    /// memcpy in the kernel, and more than one per CPU only makes them share the CPUs and
    /// contend for the file system's locks (eight at once: 10 copies of 96 MiB took 0.11–0.44 s,
    /// two at once 0.11–0.14 s, runs of six). The threads that wait cost nothing.
    func throughCache<T>(_ body: () throws -> T) rethrows -> T {
        cacheGate.wait()
        defer { cacheGate.signal() }
        return try body()
    }

    /// The headroom under the free-run ceiling now, less a quarter for other writers on the
    /// machine; 0 when /proc/vmstat cannot be read (then every large copy on a local disk goes
    /// by direct I/O, as in the durable mode).
    public static func fromKernel(copies: Int = 0, vmstat: String = "/proc/vmstat") -> CacheBudget {
        guard let bytes = try? Sys.readFile(vmstat, limit: 1 << 20) else {
            return CacheBudget(bytes: 0, copies: copies)
        }
        let page = Int64(sysconf(Int32(_SC_PAGESIZE)))
        let room = headroom(vmstat: String(decoding: bytes, as: UTF8.self), pageSize: page > 0 ? page : 4096)
        return CacheBudget(bytes: room, copies: copies)
    }

    /// The headroom in bytes, from the text of /proc/vmstat (counted in pages). Pure, for tests.
    static func headroom(vmstat text: String, pageSize: Int64) -> Int64 {
        var v: [Substring: Int64] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, let n = Int64(f[1]) { v[f[0]] = n }
        }
        guard let hard = v["nr_dirty_threshold"], let bg = v["nr_dirty_background_threshold"] else { return 0 }
        let ceiling = (hard + bg) / 2
        let used = (v["nr_dirty"] ?? 0) + (v["nr_writeback"] ?? 0)
        return max(0, (ceiling - used) * 3 / 4) * pageSize
    }

    /// A large copy starts (whatever way it then goes): one fewer waiting.
    func begin() { state.withLock { $0.waiting = max(0, $0.waiting - 1) } }

    /// The way for a copy of `n` bytes that could go either: direct while fewer than
    /// `directSlots` direct copies run, else the cache while the budget lasts, else direct.
    /// A `.direct` route is ended with `finish`.
    func route(_ n: Int64) -> Route {
        state.withLock { s in
            if s.direct >= directSlots && n <= s.left {
                s.left -= n
                return .cache
            }
            s.direct += 1
            return .direct
        }
    }

    /// Verification of every package is over (whatever its verdict): its CPU is free.
    public func verificationDone() { state.withLock { $0.verified = true } }

    /// Asked by a direct copy between its writes: true (and the budget taken) when no copy is
    /// left to start, verification is done and its `remaining` bytes fit in the cache — then it
    /// finishes there.
    func leaveDisk(remaining n: Int64) -> Bool {
        state.withLock { s in
            guard s.waiting == 0, s.verified, n <= s.left else { return false }
            s.left -= n
            return true
        }
    }

    /// A direct copy ended (done, moved to the cache, or failed).
    func finish() { state.withLock { $0.direct -= 1 } }

    /// Takes `n` bytes if that many are left. For tests.
    func take(_ n: Int64) -> Bool {
        state.withLock { s in
            guard n <= s.left else { return false }
            s.left -= n
            return true
        }
    }

    public var remaining: Int64 { state.withLock { $0.left } }
}
