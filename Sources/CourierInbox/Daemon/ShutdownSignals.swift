import CourierCore
@preconcurrency import Glibc
import SystemPackage

/// SIGTERM and SIGINT for a daemon that runs no Swift tasks. The signals are blocked in the
/// calling thread before any other thread exists (threads inherit the mask), and one thread
/// waits for them in `sigwait`: no handler runs in a random thread, no timer, no wake-up while
/// nothing happens. On a signal the flag is set and the registered actions run once (the daemon
/// stops its watcher there, which ends its blocking wait).
public final class ShutdownSignals: Sendable {
    private struct State {
        var set = false
        var signal: Int32 = 0
        var actions: [@Sendable () -> Void] = []
    }
    private let state = Locked(State())

    public static let handled: [Int32] = [SIGTERM, SIGINT]

    private init() {}

    private static func handledSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for s in handled { sigaddset(&set, s) }
        return set
    }

    /// Blocks the signals in the calling thread and starts the waiting thread. Call first thing,
    /// before the daemon starts its watcher's thread.
    public static func install() throws -> ShutdownSignals {
        do { try Sys.blockSignals(handled) } catch let e as CourierError {
            throw CourierError(
                .daemon, "cannot block SIGTERM/SIGINT: \(e.cause.map { "\($0)" } ?? e.message)", cause: e.cause)
        }
        let me = ShutdownSignals()
        let waiter = try WatchThread.start {
            WatchThread.nameCurrentThread("courier-signals")
            var wait = handledSet()
            while true {
                var sig: Int32 = 0
                if sigwait(&wait, &sig) == 0 { me.trigger(signal: sig) }
            }
        }
        waiter.detach()
        return me
    }

    /// For the daemon's own reasons to stop, and for tests.
    public static func manual() -> ShutdownSignals { ShutdownSignals() }

    public var isSet: Bool { state.withLock { $0.set } }

    /// The signal received, 0 when none (or `trigger()` without one).
    public var received: Int32 { state.withLock { $0.signal } }

    /// Runs `action` when the stop comes, or now if it already came.
    public func onStop(_ action: @escaping @Sendable () -> Void) {
        let now: Bool = state.withLock { s in
            if s.set { return true }
            s.actions.append(action)
            return false
        }
        if now { action() }
    }

    public func trigger(signal: Int32 = 0) {
        let actions: [@Sendable () -> Void] = state.withLock { s in
            if s.set { return [] }
            s.set = true
            s.signal = signal
            defer { s.actions = [] }
            return s.actions
        }
        for a in actions { a() }
    }
}
