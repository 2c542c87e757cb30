#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Synchronization

/// Runs `body(i)` for every `i` in `0..<count` on up to `jobs` threads of our own, and returns
/// when all are done. Own threads, not the cooperative pool or libdispatch's: the work blocks in
/// `copy_file_range`, `fsync` and `rename` on slow or remote file systems, and a blocked
/// cooperative pool (2 threads here) would stall everything else.
public enum Parallel {
    private final class Shared: Sendable {
        let next = Mutex(0)
        let count: Int
        let body: @Sendable (Int) -> Void
        init(count: Int, body: @escaping @Sendable (Int) -> Void) { self.count = count; self.body = body }
        func work() {
            while true {
                let i = next.withLock { n -> Int in defer { n += 1 }; return n }
                if i >= count { return }
                body(i)
            }
        }
    }

    public static func forEach(count: Int, jobs: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let shared = Shared(count: count, body: body)
        let threads = max(1, min(jobs, count))
        if threads == 1 { shared.work(); return }
        var ids: [pthread_t] = []
        for _ in 0..<threads {
            let ctx = Unmanaged.passRetained(shared).toOpaque()
            var tid = pthread_t()
            let rc = pthread_create(&tid, nil, { p in
                Unmanaged<Shared>.fromOpaque(p!).takeRetainedValue().work()
                return nil
            }, ctx)
            if rc != 0 {
                // Out of threads: run the rest on the threads we have (or this one).
                Unmanaged<Shared>.fromOpaque(ctx).release()
                break
            }
            ids.append(tid)
        }
        if ids.isEmpty { shared.work() }
        for t in ids { pthread_join(t, nil) }
    }
}
