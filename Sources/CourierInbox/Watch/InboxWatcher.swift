import CourierCore
@preconcurrency import Glibc
import Logging
import SystemPackage

/// Watches an inbox directory with inotify and turns the kernel's events into `WatchSignal`s.
///
/// Only two events name a finished file: `IN_CLOSE_WRITE` (a writer closed it — `cp`, `install`,
/// a slow writer, `:>` from a shell) and `IN_MOVED_TO` (renamed into place — `mv`, rsync,
/// Ansible, courier-deliver). `IN_CREATE` becomes the weaker `.created`: a file created is not a
/// file written (`cp` creates, then writes), but a hard link (`ln`, `cp -l`), a symlink or a FIFO
/// produces nothing else. The daemon takes a `.created` name only when no writer holds it.
///
/// The signals start with `.rescan`, added *after* the watch, so a file that lands between the
/// daemon's start and its listing is seen by one or the other (perhaps both; the daemon is
/// idempotent over names). `IN_Q_OVERFLOW` becomes `.rescan` too.
///
/// If the inbox directory is deleted, moved away or its file system unmounted, the watcher removes
/// the stale watch and watches the parent directory for the inbox's name to come back (no polling);
/// when it does, it watches it again and sends `.rescan`. If the parent cannot be watched either,
/// the watcher ends (`nextSignal` returns `.ended`) and `failure` says why.
///
/// Signals are computed lazily as the consumer asks for them: nothing is buffered here beyond the
/// events of one kernel read, so a slow consumer leaves events in the kernel's bounded queue.
///
/// @unchecked Sendable, and why that is true: the `let`s are immutable (and `Inotify` is checked
/// Sendable); every `var` is read and written only while holding `state`.
public final class InboxWatcher: InboxWatching, @unchecked Sendable {
    /// What the inbox watch asks for. `IN_Q_OVERFLOW`, `IN_IGNORED` and `IN_UNMOUNT` come without
    /// being asked. `IN_ONLYDIR` makes a plain file at the inbox path an error instead of a watch on it.
    public static let inboxMask: UInt32 =
        InotifyMask.closeWrite | InotifyMask.movedTo | InotifyMask.create
        | InotifyMask.deleteSelf | InotifyMask.moveSelf | InotifyMask.onlyDir

    /// What the parent watch asks for while the inbox is missing: its name appearing (mkdir or a
    /// rename), or the parent itself going away (then there is nothing left to wait on).
    static let parentMask: UInt32 =
        InotifyMask.create | InotifyMask.movedTo
        | InotifyMask.deleteSelf | InotifyMask.moveSelf | InotifyMask.onlyDir

    public let directory: String
    private let parent: String
    private let basename: [UInt8]
    private let inotify: Inotify
    private let logger: Logger
    private let state = ConditionLock()

    // Guarded by `state`. Only the consumer's `next()` mutates them, but `failure` is read elsewhere.
    private var pending: [WatchSignal] = []
    private var inboxWd: Int32?
    private var parentWd: Int32?
    private var ended = false
    private var failureStore: CourierError?

    /// Starts watching `directory`, which must exist and be a directory. Throws `.daemon` when it
    /// cannot be watched, with an explanation for the inotify limits (ENOSPC, EMFILE).
    public init(directory: String, logger: Logger = Logger(label: "courier.inboxd.watch")) throws {
        self.directory = directory
        self.logger = logger
        let path = FilePath(directory)
        let parentPath = path.removingLastComponent()
        parent = parentPath.isEmpty ? "." : parentPath.string
        basename = Array((path.lastComponent?.string ?? directory).utf8)
        inotify = try Inotify()
        do {
            inboxWd = try inotify.addWatch(directory, mask: Self.inboxMask)
        } catch let error as CourierError {
            inotify.stop()
            if let e = error.cause as? Errno, e == .noSuchFileOrDirectory || e == .notDirectory {
                throw CourierError(
                    .daemon, "\(directory): the inbox directory does not exist or is not a directory", cause: e)
            }
            throw error
        }
        pending = [.rescan("start-up")]
    }

    deinit { inotify.stop() }

    public var failure: CourierError? { state.withLock { failureStore } }

    /// True until the inotify reader thread has exited.
    public var isRunning: Bool { inotify.isReaderRunning }

    /// The reader thread's kernel id, for operators and for the idle test (no wake-ups).
    public var readerThreadID: Int32? { inotify.readerThreadID }

    public func stop() {
        inotify.stop()
    }

    public func nextSignal(deadlineNanos: UInt64?) -> WatchNext {
        while true {
            let (signal, over): (WatchSignal?, Bool) = state.withLock {
                if !pending.isEmpty { return (pending.removeFirst(), false) }
                return (nil, ended)
            }
            if let signal { return .signal(signal) }
            if over { return .ended }
            switch inotify.nextEvent(deadlineNanos: deadlineNanos) {
            case .event(let event): handle(event)
            case .timeout: return .timeout
            case .ended:
                state.withLock {
                    ended = true
                    if failureStore == nil, let f = inotify.failure { failureStore = f }
                }
                return .ended
            }
        }
    }

    /// Adds `signal` unless the same one is already waiting; a second `.rescan` waiting behind a
    /// first adds nothing, since one listing covers both.
    private func enqueueLocked(_ signal: WatchSignal) {
        if case .rescan = signal,
            pending.contains(where: {
                if case .rescan = $0 { return true }
                return false
            })
        {
            return
        }
        if !pending.contains(signal) { pending.append(signal) }
    }

    private func handle(_ event: InotifyEvent) {
        state.lock()
        defer { state.unlock() }
        if event.has(InotifyMask.queueOverflow) {
            logger.warning("inotify queue overflowed; events were lost, rescanning \(directory)")
            enqueueLocked(.rescan("inotify queue overflow (IN_Q_OVERFLOW)"))
            return
        }
        if let wd = inboxWd, event.wd == wd {
            if event.has(InotifyMask.deleteSelf | InotifyMask.moveSelf | InotifyMask.unmount | InotifyMask.ignored) {
                inboxGoneLocked(event)
                return
            }
            guard event.has(InotifyMask.closeWrite | InotifyMask.movedTo | InotifyMask.create),
                !event.has(InotifyMask.isDir)
            else { return }
            if InboxNames.isCandidate(bytes: event.nameBytes), let name = event.name {
                enqueueLocked(event.has(InotifyMask.create) ? .created(name) : .file(name))
            } else {
                logger.trace("ignoring \(InotifyMask.describe(event.mask)) for \(Escape.quotedBytes(event.nameBytes))")
            }
            return
        }
        if let wd = parentWd, event.wd == wd {
            if event.has(InotifyMask.deleteSelf | InotifyMask.moveSelf | InotifyMask.unmount | InotifyMask.ignored) {
                failLocked(
                    CourierError(
                        .daemon,
                        "\(directory): the inbox directory is gone and so is its parent \(parent); cannot wait for it to come back"
                    ))
                return
            }
            if event.nameBytes == basename && event.has(InotifyMask.isDir) {
                _ = reattachLocked()
            }
            return
        }
        // Events for a watch already replaced (the IN_IGNORED of an old inbox watch): nothing to do.
    }

    /// The inbox watch is dead or follows a directory that is no longer at `directory`.
    private func inboxGoneLocked(_ event: InotifyEvent) {
        guard let old = inboxWd else { return }
        inboxWd = nil
        // After IN_MOVE_SELF the watch still follows the moved directory (now elsewhere): drop it.
        // After IN_DELETE_SELF/IN_UNMOUNT the kernel removes it itself (IN_IGNORED follows).
        if !event.has(InotifyMask.ignored) { inotify.removeWatch(old) }
        logger.warning(
            "\(directory): inbox directory gone (\(InotifyMask.describe(event.mask))); waiting for it to reappear")
        if reattachLocked() { return }
        do {
            parentWd = try inotify.addWatch(parent, mask: Self.parentMask)
        } catch {
            let why = (error as? CourierError)?.message ?? "\(error)"
            failLocked(
                CourierError(
                    .daemon,
                    "\(directory): the inbox directory is gone and its parent cannot be watched: \(why)",
                    cause: error as? CourierError))
            return
        }
        // It may have come back between the first try and the parent watch; the watch only sees later events.
        _ = reattachLocked()
    }

    /// Watches the inbox again if it exists; true when the watcher is whole again (or has failed).
    private func reattachLocked() -> Bool {
        guard inboxWd == nil, Sys.isDirectory(directory) else { return inboxWd != nil }
        do {
            inboxWd = try inotify.addWatch(directory, mask: Self.inboxMask)
        } catch let error as CourierError {
            if let e = error.cause as? Errno, e == .noSuchFileOrDirectory || e == .notDirectory {
                return false  // gone again already; the parent watch will tell
            }
            failLocked(error)
            return true
        } catch {
            return false
        }
        if let p = parentWd {
            inotify.removeWatch(p)
            parentWd = nil
        }
        logger.notice("\(directory): inbox directory is back; rescanning")
        enqueueLocked(.rescan("inbox directory reappeared"))
        return true
    }

    private func failLocked(_ error: CourierError) {
        logger.error("\(error)")
        if failureStore == nil { failureStore = error }
        ended = true
        // Stopping the reader makes every later nextEvent return `.ended` (none is pending: the
        // consumer's turn is ours while we hold it).
        inotify.stop()
    }
}
