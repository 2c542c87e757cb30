import CCourierShim
import CourierCore
@preconcurrency import Glibc
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
///
/// Not `Sendable`: it and its processor live on the thread that calls `run`. What other threads
/// touch is Sendable on its own — the watcher (which `stop.onStop` stops from the signal thread)
/// and the stop flag the processor asks between packages.
public final class InboxDaemon {
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

    /// What the daemon did since it started, for its shutdown line.
    public struct Tally: Sendable, Equatable {
        public var applied = 0, refused = 0, duplicates = 0, passes = 0
        mutating func count(_ results: [String: InboxProcessor.Outcome]) {
            passes += 1
            for o in results.values {
                switch o {
                case .applied: applied += 1
                case .refused: refused += 1
                case .duplicate: duplicates += 1
                default: break
                }
            }
        }
    }
    public private(set) var tally = Tally()

    /// A pass that could not run — the state lock could not be taken (a read-only or full state
    /// directory, a lock held past its timeout) — is run again at `due` (1 s, doubling, at most
    /// a minute), as a full scan: the events it was woken for are spent.
    var passOwed: (attempt: Int, due: Double)?

    /// Runs the daemon, then logs one line saying why it stopped, how long it ran and what it
    /// did — on every way out, errors included, so that a log read after the fact says whether
    /// the daemon was stopped (SIGTERM from systemd, ^C), went idle, or failed.
    public func run(stop: ShutdownSignals) throws {
        let started = Sys.monotonicSeconds()
        var why = "stopped"
        defer {
            let ran = Sys.monotonicSeconds() - started
            let line =
                "exiting: \(why); ran \(Self.duration(ran)); \(tally.applied) applied, \(tally.refused) refused, \(tally.duplicates) duplicate(s) in \(tally.passes) pass(es)"
            if why.hasPrefix("error") { logger.error("\(line)") } else { logger.info("\(line)") }
        }
        do {
            why = try runLoop(stop: stop)
        } catch let e as CourierError {
            why = "error: \(e.message)"
            throw e
        } catch {
            why = "error: \(error)"
            throw error
        }
    }

    /// `90 s`, `1h02m03s`: short for a log line, exact enough to match a journal's time stamps.
    static func duration(_ s: Double) -> String {
        if s < 60 { return String(Int((s * 10).rounded()) / 10) + "." + String(Int((s * 10).rounded()) % 10) + " s" }
        let t = Int(s.rounded())
        let h = t / 3600
        let m = t / 60 % 60
        let sec = t % 60
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return h > 0 ? "\(h)h\(two(m))m\(two(sec))s" : "\(m)m\(two(sec))s"
    }

    static func signalName(_ s: Int32) -> String {
        switch s {
        case SIGTERM: return "SIGTERM"
        case SIGINT: return "SIGINT"
        case 0: return "a stop request"
        default: return "signal \(s)"
        }
    }

    /// The daemon proper; returns why it stopped.
    func runLoop(stop: ShutdownSignals) throws -> String {
        let p = try InboxProcessor(config: config, logger: logger)
        processor = p
        p.shouldStop = { stop.isSet }
        try locked {
            // A command the killed daemon left running would work on a tree recovery may remove.
            let ended = CommandRecord.endOrphans(CommandRecord.path(stateDir: config.stateDir))
            if ended > 0 {
                logger.warning("ended \(ended) process(es) of a test or apply command left by a daemon that died")
            }
            try p.recover()
        }
        if options.once {
            let results = try locked { p.processInbox(closed: [], rescan: true) }
            tally.count(results)
            // No later pass repairs it here: said in the exit status, not only in the log.
            if let failure = p.lastStateFailure {
                throw CourierError(
                    .io,
                    "could not write the state (\(Escape.text(failure))); the store is right: run again once it can be written, and the state is repaired from it (the history lines of this pass are not kept)"
                )
            }
            let refused = results.values.filter {
                if case .refused = $0 { return true }
                return false
            }.count
            if refused > 0 {
                throw CourierError(
                    .partial, "\(refused) package(s) refused; reasons in \(config.quarantine)/*.reason.json")
            }
            let retrying = results.values.filter {
                if case .retrying = $0 { return true }
                return false
            }.count
            if retrying > 0 {
                throw CourierError(
                    .io,
                    "\(retrying) package(s) left in the inbox to be tried again (a transient error such as a full disk or a read-only file system, or a file that changed while it was read); see the log, then run again"
                )
            }
            return "--once: the inbox was processed"
        }
        let watcher: any InboxWatching =
            config.poll > 0
            ? try PollWatcher(directory: config.inbox, period: .seconds(config.poll), logger: logger)
            : try InboxWatcher(directory: config.inbox, logger: logger)
        defer { watcher.stop() }
        stop.onStop { watcher.stop() }
        logger.info("watching \(config.inbox) (\(config.poll > 0 ? "polling every \(config.poll) s" : "inotify"))")

        // When to wake without a signal: a waiting delta's deadline, a retry after a transient
        // error, a repair of the state files, or the idle limit.
        func deadline() -> UInt64? {
            var wait: Double? = p.nextDeadline.map { $0 + 0.05 }
            if let owed = passOwed {
                let left = max(0, owed.due - Sys.monotonicSeconds())
                wait = min(wait ?? left, left)
            }
            if let idle = options.exitWhenIdle { wait = min(wait ?? idle, idle) }
            return wait.map { ConditionLock.monotonicNanos() + UInt64(max($0, 0.01) * 1e9) }
        }
        var until = deadline()
        var reason = "the watcher ended"
        loop: while !stop.isSet {
            let next = watcher.nextSignal(deadlineNanos: until)
            switch next {
            case .signal(.file(let name)), .signal(.created(let name)):
                // A burst (mv of many files) is one pass: take every signal already there, so
                // the pass's closing status write is paid once, not per package.
                var names: Set<String> = []
                var created: Set<String> = []
                if case .signal(.created) = next { created.insert(name) } else { names.insert(name) }
                var rescan: String? = nil
                drain: while names.count + created.count < 4096 {
                    switch watcher.nextSignal(deadlineNanos: 0) {
                    case .signal(.file(let n)): names.insert(n)
                    case .signal(.created(let n)): created.insert(n)
                    case .signal(.rescan(let why)):
                        rescan = why
                        break drain
                    case .timeout, .ended: break drain
                    }
                }
                if let why = rescan { logger.info("scanning the inbox: \(why)") }
                logger.debug(
                    "woken for \(names.count) closed and \(created.count) created name(s): \(names.union(created).sorted().prefix(20).map(Escape.text).joined(separator: " "))"
                )
                pass(p, closed: names, created: created.subtracting(names), rescan: rescan != nil)
            case .signal(.rescan(let why)):
                logger.info("scanning the inbox: \(why)")
                pass(p, closed: [], created: [], rescan: true)
            case .timeout:
                if p.hasTimedWork || passOwed != nil {
                    logger.debug("woken by a deadline (a waiting delta, a retry, a repair or a pass owed)")
                    pass(p, closed: [], created: [], rescan: false)
                } else if let idle = options.exitWhenIdle {
                    reason = "idle for \(Self.duration(idle)) (--exit-when-idle)"
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
            if let u = until {
                logger.debug(
                    "next wake-up in \(Self.duration(Double(u &- ConditionLock.monotonicNanos()) / 1e9)) unless a package arrives"
                )
            }
        }
        if stop.isSet { return "\(Self.signalName(stop.received)) received" }
        if let f = watcher.failure { throw f }
        return reason
    }

    /// One pass under the state lock, counted for the shutdown line; its outcomes at debug level.
    /// When the lock cannot be taken, nothing is processed: logged, and a full scan owed.
    func pass(_ p: InboxProcessor, closed: Set<String>, created: Set<String>, rescan: Bool) {
        let results: [String: InboxProcessor.Outcome]
        do {
            let scan = rescan || passOwed != nil
            results = try locked { p.processInbox(closed: closed, created: created, rescan: scan) }
        } catch {
            let attempt = (passOwed?.attempt ?? 0) + 1
            let delay = Transient.backoff(attempt: attempt)
            passOwed = (attempt, Sys.monotonicSeconds() + Double(delay))
            logger.error(
                "could not take the state lock: \(Escape.text("\(error)")); nothing was processed, the inbox is scanned again in \(delay) s"
            )
            return
        }
        if passOwed != nil { logger.info("the state lock was taken again; the inbox was scanned") }
        passOwed = nil
        tally.count(results)
        for (name, o) in results.sorted(by: { $0.key < $1.key }) { logger.debug("pass: \(Escape.text(name)): \(o)") }
    }
}
