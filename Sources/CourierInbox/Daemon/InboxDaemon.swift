import CCourierShim
import CourierCore
import Logging

/// The client daemon: recovery, then one pass over the inbox (what arrived while it was down),
/// then one apply per watcher signal, all on the calling thread.
///
/// No Swift tasks and no libdispatch queues: once libdispatch's worker pool exists, its monitor
/// wakes the process every second for good (measured: 30 wake-ups in 30 idle seconds). Here the
/// daemon thread blocks in the kernel (a condition variable fed by the inotify thread, which
/// blocks in `poll`), the signal thread in `sigwait`. A timed wait exists only while a delta waits
/// for its base, or with `exitWhenIdle`. On SIGTERM the watcher stops, the apply in progress
/// finishes (the processor checks the flag between packages), and `run` returns.
public final class InboxDaemon: @unchecked Sendable {
    public struct Options: Sendable {
        /// Process what is in the inbox, then return.
        public var once = false
        /// Return after this many seconds without any package to process.
        public var exitWhenIdle: Double? = nil
        public init() {}
    }

    let config: InboxConfig
    let logger: Logger
    let options: Options
    public private(set) var processor: InboxProcessor?

    public init(config: InboxConfig, logger: Logger, options: Options = Options()) {
        self.config = config
        self.logger = logger
        self.options = options
    }

    /// Runs a processor call under the state lock (so `pin`, `rollback` and `status` beside a
    /// running daemon see a consistent state).
    func locked<T>(_ body: () throws -> T) throws -> T {
        try StateLock.with(config.stateDir) { try body() }
    }

    public func run(stop: ShutdownSignals) throws {
        let p = try InboxProcessor(config: config, logger: logger)
        processor = p
        p.shouldStop = { stop.isSet }
        try locked {
            // A command the killed daemon left running would work on a tree recovery may remove.
            let ended = CommandRecord.endOrphans(CommandRecord.path(stateDir: config.stateDir))
            if ended > 0 { logger.warning("ended \(ended) process(es) of a test or apply command left by a daemon that died") }
            try p.recover()
        }
        if options.once {
            let results = try locked { p.processInbox(closed: [], rescan: true) }
            let refused = results.values.filter { if case .refused = $0 { return true }; return false }.count
            if refused > 0 {
                throw CourierError(.partial, "\(refused) package(s) refused; reasons in \(config.quarantine)/*.reason.json")
            }
            let retrying = results.values.filter { if case .retrying = $0 { return true }; return false }.count
            if retrying > 0 {
                throw CourierError(.io, "\(retrying) package(s) left in the inbox to be tried again (a transient error such as a full disk or a read-only file system, or a file that changed while it was read); see the log, then run again")
            }
            return
        }
        let watcher: any InboxWatching = config.poll > 0
            ? try PollWatcher(directory: config.inbox, period: .seconds(config.poll), logger: logger)
            : try InboxWatcher(directory: config.inbox, logger: logger)
        defer { watcher.stop() }
        stop.onStop { watcher.stop() }
        logger.info("watching \(config.inbox) (\(config.poll > 0 ? "polling every \(config.poll) s" : "inotify"))")

        // When to wake without a signal: a waiting delta's deadline, a retry after a transient
        // error, a repair of the state files, or the idle limit.
        func deadline() -> UInt64? {
            var wait: Double? = p.nextDeadline.map { $0 + 0.05 }
            if let idle = options.exitWhenIdle { wait = min(wait ?? idle, idle) }
            return wait.map { ConditionLock.monotonicNanos() + UInt64(max($0, 0.01) * 1e9) }
        }
        var until = deadline()
        loop: while !stop.isSet {
            let next = watcher.nextSignal(deadlineNanos: until)
            switch next {
            case .signal(.file(let name)), .signal(.created(let name)):
                // A burst (mv of many files) is one pass: take every signal already there, so
                // the pass's closing status write is paid once, not per package.
                var names: Set<String> = [], created: Set<String> = []
                if case .signal(.created) = next { created.insert(name) } else { names.insert(name) }
                var rescan: String? = nil
                drain: while names.count + created.count < 4096 {
                    switch watcher.nextSignal(deadlineNanos: 0) {
                    case .signal(.file(let n)): names.insert(n)
                    case .signal(.created(let n)): created.insert(n)
                    case .signal(.rescan(let why)): rescan = why; break drain
                    case .timeout, .ended: break drain
                    }
                }
                if let why = rescan { logger.info("scanning the inbox: \(why)") }
                _ = try? locked { p.processInbox(closed: names, created: created.subtracting(names), rescan: rescan != nil) }
            case .signal(.rescan(let why)):
                logger.info("scanning the inbox: \(why)")
                _ = try? locked { p.processInbox(closed: [], rescan: true) }
            case .timeout:
                if p.hasTimedWork {
                    _ = try? locked { p.processInbox(closed: [], rescan: false) }
                } else if let idle = options.exitWhenIdle {
                    logger.info("idle for \(idle) s: exiting")
                    break loop
                }
            case .ended:
                break loop
            }
            // Going back to sleep: hand the pass's freed heap (archive buffers, manifests, JSON)
            // back to the kernel, so an idle daemon holds only what it still uses. glibc keeps
            // freed memory otherwise; measured after 20 applies: 2.6 MiB of heap, 0.1 MiB trimmed.
            _ = courier_release_free_memory()
            until = deadline()
        }
        if !stop.isSet, let f = watcher.failure { throw f }
    }
}
