@preconcurrency import Glibc
import SystemPackage

/// Plain threads of our own, for work that blocks in the kernel (copies, fsync, `poll`, `read`
/// on a hung NFS server) and must not sit on Swift's cooperative pool: it has one thread per
/// core — two on small machines — and a thread parked there in a syscall is one nobody else can use.
public enum Threads {
    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// Starts `body` on a new joinable thread that blocks every asynchronous signal (so SIGTERM and
    /// SIGINT go to the program's own handling, never interrupt the worker). `stackBytes`: nil for
    /// the default (8 MiB of address space), less for loops that need little.
    public static func start(stackBytes: Int? = nil, _ body: @escaping @Sendable () -> Void) throws -> pthread_t {
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        if let s = stackBytes { pthread_attr_setstacksize(&attr, s) }
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        var handle = pthread_t()
        let rc = pthread_create(
            &handle, &attr,
            { raw in
                let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                var all = sigset_t()
                sigfillset(&all)
                pthread_sigmask(SIG_BLOCK, &all, nil)
                box.body()
                return nil
            }, context)
        if rc != 0 {
            Unmanaged<Box>.fromOpaque(context).release()
            throw CourierError(
                .io, "cannot start a thread: \(Errno(rawValue: rc).description)", cause: Errno(rawValue: rc))
        }
        return handle
    }
}

/// Runs `body(i)` for every `i` in `0..<count` on up to `jobs` threads of our own (`Threads`), and
/// returns when all are done.
public enum Parallel {
    private final class Shared: Sendable {
        let next = Locked(0)
        let count: Int
        let body: @Sendable (Int) -> Void
        init(count: Int, body: @escaping @Sendable (Int) -> Void) {
            self.count = count
            self.body = body
        }
        func work() {
            while true {
                let i = next.withLock { n -> Int in
                    defer { n += 1 }
                    return n
                }
                if i >= count { return }
                body(i)
            }
        }
    }

    public static func forEach(count: Int, jobs: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let shared = Shared(count: count, body: body)
        let threads = max(1, min(jobs, count))
        if threads == 1 {
            shared.work()
            return
        }
        var ids: [pthread_t] = []
        for _ in 0..<threads {
            // Out of threads: the rest runs on the threads we have (or this one).
            guard let t = try? Threads.start({ shared.work() }) else { break }
            ids.append(t)
        }
        if ids.isEmpty { shared.work() }
        for t in ids { pthread_join(t, nil) }
    }
}
