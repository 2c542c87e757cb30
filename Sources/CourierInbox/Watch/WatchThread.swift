import CourierCore
@preconcurrency import Glibc
import SystemPackage

/// A mutex with a condition variable (pthread), for state shared between a watcher's own thread
/// and its consumer. `Synchronization.Mutex` has no condition variable, and the watcher threads
/// need one: they sleep until the consumer has taken what they produced, or until stop.
///
/// The condition variable uses CLOCK_MONOTONIC so a timed wait is not stretched or cut short when
/// the wall clock is set (NTP steps, a VM resumed).
///
/// @unchecked Sendable, and why that is true: the two pointers never change after `init`, and what
/// they point to is a pthread mutex and condition variable, which exist to be shared by threads.
final class ConditionLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        cond = .allocate(capacity: 1)
        cond.initialize(to: pthread_cond_t())
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    @inline(__always)
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    /// Waits for a `broadcast`; the lock must be held. Callers loop on their predicate (spurious wake-ups).
    func wait() { pthread_cond_wait(cond, mutex) }

    /// Waits for a `broadcast` or until `deadline` (nanoseconds of CLOCK_MONOTONIC); the lock must be held.
    func wait(untilMonotonicNanos deadline: UInt64) {
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        _ = pthread_cond_timedwait(cond, mutex, &ts)
    }

    func broadcast() { pthread_cond_broadcast(cond) }

    static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// A watcher's blocking loop on a thread of its own (`Threads.start`, CourierCore), with the
/// handle kept to join or detach it, and the helpers to name it and find its kernel id.
struct WatchThread: Sendable {
    let handle: pthread_t

    /// Starts `body` on a new joinable thread with a 512 KiB stack (the loops need little, and the
    /// default 8 MiB is address space the daemon does not need to reserve). Signals are blocked
    /// there, so SIGTERM reaches the daemon's own handling and never interrupts the watcher.
    static func start(_ body: @escaping @Sendable () -> Void) throws -> WatchThread {
        do { return WatchThread(handle: try Threads.start(stackBytes: 512 * 1024, body)) } catch let e as CourierError {
            throw CourierError(
                .daemon, "cannot start the watcher thread: \((e.cause as? Errno)?.description ?? e.message)",
                cause: e.cause)
        }
    }

    /// Names the calling thread (at most 15 bytes) so an operator can tell the watcher from the
    /// daemon's other threads in `top -H`, `ps -L`, gdb (`Sys.nameCurrentThread`).
    static func nameCurrentThread(_ name: String) { Sys.nameCurrentThread(name) }

    /// The kernel's id of the calling thread (what /proc/self/task/ lists).
    static func currentThreadID() -> Int32? { Sys.threadID() }

    /// True when called on this thread (joining oneself would deadlock).
    var isCurrent: Bool { pthread_equal(pthread_self(), handle) != 0 }

    func join() { pthread_join(handle, nil) }
    func detach() { pthread_detach(handle) }
}
