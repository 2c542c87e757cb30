import CourierCore
@preconcurrency import Glibc
import Logging
import SystemPackage

/// The `--poll SECONDS` fallback for inboxes on NFS or SMB, where inotify sees nothing written by
/// another host. Every period it lists the inbox and reports a candidate name once its size,
/// modification time and inode have been the same at two consecutive polls — a file another host
/// is still writing keeps growing, and is not reported until it stops.
///
/// Limits of the method, for the documentation: a writer that pauses for longer than the period
/// in the middle of a file looks finished. Copiers that write a temporary name and rename (rsync,
/// Ansible, courier-deliver) are safe whatever the period, since the temporary name is never a
/// candidate. The start-up `.rescan` makes the daemon list the inbox before anything is known to
/// be stable; pass `rescanAtStart: false` to have files already present reported by the stability
/// rule instead (one period later).
///
/// The listing runs on a thread of its own: `readdir` on a hung NFS server blocks in the kernel,
/// and `stop()` must still end the signals at once (it does not wait for that thread; the thread
/// leaves at its next check).
public final class PollWatcher: InboxWatching, Sendable {
    public let directory: String
    public let period: Duration
    private let shared = Shared()

    /// Starts polling `directory` (which must exist) every `period` (at least 10 ms).
    public init(
        directory: String, period: Duration, rescanAtStart: Bool = true,
        logger: Logger = Logger(label: "courier.inboxd.poll")
    ) throws {
        guard period >= .milliseconds(10) else {
            throw CourierError(.usage, "poll period must be at least 10 ms, not \(period)")
        }
        guard Sys.isDirectory(directory) else {
            throw CourierError(.daemon, "\(directory): the inbox directory does not exist or is not a directory")
        }
        self.directory = directory
        self.period = period
        let shared = self.shared
        if rescanAtStart { shared.deliver(.rescan("start-up")) }
        let nanos =
            UInt64(period.components.seconds) * 1_000_000_000 + UInt64(period.components.attoseconds / 1_000_000_000)
        let dir = directory
        let thread = try WatchThread.start {
            Self.pollLoop(directory: dir, periodNanos: nanos, shared: shared, logger: logger)
        }
        thread.detach()
    }

    deinit { stop() }

    public var failure: CourierError? { nil }  // a failing listing is logged and retried, never fatal

    /// True until the polling thread has left its loop.
    public var isRunning: Bool { shared.lock.withLock { shared.running } }

    /// Ends the signals now and lets the thread exit at its next check (at once if it is sleeping).
    public func stop() {
        shared.requestStop()
    }

    public func nextSignal(deadlineNanos: UInt64?) -> WatchNext {
        let l = shared.lock
        l.lock()
        defer { l.unlock() }
        while true {
            if !shared.queue.isEmpty { return .signal(shared.queue.removeFirst()) }
            if shared.stopRequested { return .ended }
            if let d = deadlineNanos {
                if ConditionLock.monotonicNanos() >= d { return .timeout }
                l.wait(untilMonotonicNanos: d)
            } else {
                l.wait()
            }
        }
    }

    /// What the consumer, `stop()` and the polling thread share.
    /// @unchecked Sendable, and why that is true: every `var` is read and written only while holding
    /// `lock`.
    final class Shared: @unchecked Sendable {
        let lock = ConditionLock()
        var stopRequested = false  // guarded by lock
        var running = true  // guarded by lock
        var queue: [WatchSignal] = []  // guarded by lock

        /// Queues a signal unless the same one is already waiting.
        func deliver(_ s: WatchSignal) {
            lock.withLock {
                if !queue.contains(s) { queue.append(s) }
                lock.broadcast()
            }
        }

        func requestStop() {
            lock.withLock {
                stopRequested = true
                lock.broadcast()
            }
        }
    }

    /// What identifies one version of a file: a rename-over (new inode) or any write (size, mtime)
    /// makes it another.
    struct Observation: Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var mtimeSeconds: Int
        var mtimeNanos: Int
    }

    /// Pure core of the stability rule, kept apart from the I/O for tests: given the previous and
    /// the current observations and what was already reported, the names to report now and the
    /// updated report set. A name is reported when it was seen identical at two consecutive polls
    /// and that version was not reported before.
    static func stable(
        previous: [String: Observation], current: [String: Observation],
        reported: [String: Observation]
    ) -> (report: [String], reported: [String: Observation]) {
        var report: [String] = []
        var nowReported: [String: Observation] = [:]
        for (name, obs) in current {
            if reported[name] == obs {
                nowReported[name] = obs
            } else if previous[name] == obs {
                report.append(name)
                nowReported[name] = obs
            }
        }
        return (report.sorted(), nowReported)
    }

    /// Lists the candidates of `directory` with their observation (`lstat`: a link is never
    /// followed). Directories are left out; symlinks and FIFOs are not, so that the daemon
    /// quarantines them instead of leaving them pending for ever.
    static func observe(_ directory: String) throws -> [String: Observation] {
        let dirfd = try OwnedFD.openDirectory(directory)
        var out: [String: Observation] = [:]
        for entry in try Sys.listDirectory(dirfd.raw, display: directory) where InboxNames.isCandidate(entry.name) {
            guard let st = try? Sys.lstatat(dirfd.raw, entry.name, display: directory + "/" + entry.name),
                (st.st_mode & S_IFMT) != S_IFDIR
            else { continue }
            out[entry.name] = Observation(
                device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                mtimeSeconds: Int(st.st_mtim.tv_sec), mtimeNanos: Int(st.st_mtim.tv_nsec))
        }
        return out
    }

    static func pollLoop(directory: String, periodNanos: UInt64, shared: Shared, logger: Logger) {
        WatchThread.nameCurrentThread("courier-poll")
        var previous: [String: Observation] = [:]
        var reported: [String: Observation] = [:]
        var failing = false
        var deadline = ConditionLock.monotonicNanos()
        while true {
            if shared.lock.withLock({ shared.stopRequested }) { break }
            do {
                let current = try observe(directory)
                if failing { logger.notice("\(directory): listing works again") }
                failing = false
                let (report, nowReported) = stable(previous: previous, current: current, reported: reported)
                previous = current
                reported = nowReported
                for name in report { shared.deliver(.file(name)) }
            } catch {
                // A vanished mount or a network error: keep what is known and try again next period.
                if !failing { logger.warning("\(directory): cannot list the inbox, will retry: \(error)") }
                failing = true
            }
            // Sleep until the next period (fixed rate, no drift), or until stop.
            deadline += periodNanos
            let now = ConditionLock.monotonicNanos()
            if deadline < now { deadline = now }
            shared.lock.lock()
            while !shared.stopRequested && ConditionLock.monotonicNanos() < deadline {
                shared.lock.wait(untilMonotonicNanos: deadline)
            }
            shared.lock.unlock()
        }
        shared.lock.withLock { shared.running = false }
    }
}
