@preconcurrency import Glibc

/// A value behind a pthread mutex: `Synchronization.Mutex`'s `withLock`, for state shared between
/// threads. Why not `Mutex` itself: on Linux its lock is a futex driven by atomics inside the
/// uninstrumented libswiftSynchronization, so ThreadSanitizer sees no synchronization at all and
/// reports every access made under it as a race (`make test-tsan`, docs/RELIABILITY.md) — which
/// would leave TSan blind to the real ones. TSan intercepts `pthread_mutex_lock`/`unlock` and
/// knows this lock; the cost is the same uncontended.
///
/// @unchecked Sendable, and why that is true: `value` is read and written only inside
/// `withLock`, with `mutex` held; the values given in and taken out are `sending`, as with `Mutex`.
public final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ initialValue: sending Value) {
        value = initialValue
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the lock held and the value lent to it.
    @inline(__always)
    public func withLock<Result, E: Error>(_ body: (inout sending Value) throws(E) -> sending Result) throws(E)
        -> sending Result
    {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
