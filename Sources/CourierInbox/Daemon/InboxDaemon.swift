import CourierCore
import Dispatch
import Logging
import ServiceLifecycle
import Synchronization

/// The client daemon as a swift-service-lifecycle `Service`: recovery, then one pass over the
/// inbox (what arrived while it was down), then one apply per watcher signal. No timers while
/// idle: a timer exists only while a delta waits for its base, or with `exitWhenIdle`. On
/// SIGTERM the watcher stops, the apply in progress finishes, and `run()` returns.
public final class InboxDaemon: Service, @unchecked Sendable {
    public struct Options: Sendable {
        /// Process what is in the inbox, then return.
        public var once = false
        /// Return after this many seconds without any package to process.
        public var exitWhenIdle: Double? = nil
        public init() {}
    }

    enum Event: Sendable { case signal(WatchSignal), timer(Int), ended }

    let config: InboxConfig
    let logger: Logger
    let options: Options
    let queue = DispatchQueue(label: "courier.inboxd.apply")
    public private(set) var processor: InboxProcessor?

    public init(config: InboxConfig, logger: Logger, options: Options = Options()) {
        self.config = config
        self.logger = logger
        self.options = options
    }

    /// Runs a processor call on the serial apply queue, under the state lock.
    func onQueue<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let dir = config.stateDir
        return try await withCheckedThrowingContinuation { c in
            queue.async {
                c.resume(with: Result { try StateLock.with(dir) { try body() } })
            }
        }
    }

    public func run() async throws {
        let p = try InboxProcessor(config: config, logger: logger)
        processor = p
        let stopping = StopFlag()
        p.shouldStop = { stopping.isSet }
        try await onQueue { try p.recover() }
        if options.once {
            let results = try await onQueue { p.processInbox(closed: [], rescan: true) }
            let refused = results.values.filter { if case .refused = $0 { return true }; return false }.count
            if refused > 0 {
                throw CourierError(.partial, "\(refused) package(s) refused; reasons in \(config.quarantine)/*.reason.json")
            }
            return
        }
        let watcher: any InboxWatching = config.poll > 0
            ? try PollWatcher(directory: config.inbox, period: .seconds(config.poll), logger: logger)
            : try InboxWatcher(directory: config.inbox, logger: logger)
        logger.info("watching \(config.inbox) (\(config.poll > 0 ? "polling every \(config.poll) s" : "inotify"))")

        let (events, sink) = AsyncStream.makeStream(of: Event.self)
        let forward = Task {
            for await s in watcher.signals { sink.yield(.signal(s)) }
            sink.yield(.ended)
        }
        var timer: Task<Void, Never>? = nil
        var timerID = 0
        func arm(after seconds: Double) {
            timer?.cancel()
            timerID += 1
            let id = timerID
            timer = Task {
                try? await Task.sleep(nanoseconds: UInt64(max(seconds, 0.01) * 1e9))
                if !Task.isCancelled { sink.yield(.timer(id)) }
            }
        }
        func rearm() {
            var wait: Double? = p.nextDeadline.map { $0 + 0.05 }
            if let idle = options.exitWhenIdle { wait = min(wait ?? idle, idle) }
            if let w = wait { arm(after: w) } else { timer?.cancel(); timer = nil }
        }

        await withGracefulShutdownHandler {
            loop: for await e in events {
                switch e {
                case .signal(.file(let name)):
                    _ = try? await onQueue { p.processInbox(closed: [name], rescan: false) }
                case .signal(.rescan(let why)):
                    logger.info("scanning the inbox: \(why)")
                    _ = try? await onQueue { p.processInbox(closed: [], rescan: true) }
                case .timer(let id):
                    guard id == timerID else { continue }
                    if p.hasWaiting {
                        _ = try? await onQueue { p.processInbox(closed: [], rescan: false) }
                    } else if options.exitWhenIdle != nil {
                        logger.info("idle for \(options.exitWhenIdle!) s: exiting")
                        break loop
                    }
                case .ended:
                    break loop
                }
                rearm()
            }
        } onGracefulShutdown: {
            stopping.set()
            watcher.stop()
        }
        watcher.stop()
        timer?.cancel()
        forward.cancel()
        if let f = watcher.failure { throw f }
    }
}

/// Set once on graceful shutdown; read by the apply queue between packages.
final class StopFlag: Sendable {
    private let flag = Mutex(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}
