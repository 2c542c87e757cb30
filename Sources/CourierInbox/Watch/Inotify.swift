import CourierCore
@preconcurrency import Glibc
import SystemPackage

/// An inotify instance with its own reader thread, delivering parsed events to one consumer on a
/// plain thread (the daemon's), which blocks in `nextEvent(deadlineNanos:)`.
///
/// Why a thread of its own: the reader sleeps in `poll()` for as long as nothing happens — hours.
/// Why `poll()` on two fds: the inotify fd, and the read end of a pipe that `stop()` writes to,
/// so shutdown wakes the reader at once instead of waiting for an event that may never come.
/// While idle the process makes no system calls at all: no timers, no periodic wake-ups.
///
/// Back-pressure: the reader hands one batch (one `read()`) to the consumer and reads the next only
/// when the consumer has taken all of it. Events then wait in the kernel's queue, which is bounded
/// (fs.inotify.max_queued_events) and reports its own overflow with `IN_Q_OVERFLOW` — so memory
/// stays bounded however slow the consumer, and nothing is lost without the consumer being told.
public final class Inotify: Sendable {
    /// 64 KiB holds about a thousand events with typical names; the kernel needs at least
    /// `InotifyParser.minimumReadSize`.
    public static let defaultReadBufferSize = 64 * 1024

    let core: Core  // internal: tests read the descriptor numbers (InotifyDescriptorTests)

    /// Creates the instance and starts its reader thread. Throws `.daemon` with an explanation when
    /// the per-user instance limit is reached.
    public init(readBufferSize: Int = Inotify.defaultReadBufferSize) throws {
        let fd = try WatchSys.inotifyInit()
        let wake = try WatchSys.pipe()  // on failure, `fd` is closed as it goes out of scope
        core = Core(inotify: fd, wake: wake, bufferSize: max(readBufferSize, InotifyParser.minimumReadSize))
        do {
            let core = self.core
            core.thread = try WatchThread.start { core.readLoop() }
            // Wait until the reader has named itself, so that `readerThreadID` is known as soon as
            // the watcher exists (operators and the idle tests look it up at once).
            core.lock.withLock { while !core.readerStarted { core.lock.wait() } }
        } catch {
            core.closeDescriptors()
            throw error
        }
    }

    deinit { stop() }

    /// Adds (or updates) a watch; returns its watch descriptor. Throws `.daemon`, with the
    /// `max_user_watches` explanation on ENOSPC.
    @discardableResult
    public func addWatch(_ path: String, mask: UInt32) throws -> Int32 {
        try core.lock.withLock {
            guard !core.closed else {
                throw CourierError(.daemon, "\(path): cannot watch: the inotify instance is stopped")
            }
            return try WatchSys.addWatch(core.fd, path, mask)
        }
    }

    /// Removes a watch. The kernel answers with an `IN_IGNORED` event for it.
    public func removeWatch(_ wd: Int32) {
        core.lock.withLock {
            if !core.closed { WatchSys.removeWatch(core.fd, wd) }
        }
    }

    /// What a wait for the next event ended with.
    public enum Next: Sendable, Equatable {
        case event(InotifyEvent)
        case timeout, ended
    }

    /// The next event: blocks (in the kernel, no wake-ups) until an event, `deadlineNanos` of
    /// CLOCK_MONOTONIC, or the end (`stop()` or a failure, see `failure`). One consumer at a time.
    /// Blocking, not async, on purpose: the daemon runs no Swift tasks, so libdispatch's worker
    /// pool, whose monitor wakes the process every second once started, is never started.
    public func nextEvent(deadlineNanos: UInt64?) -> Next { core.nextBlocking(deadline: deadlineNanos) }

    /// Why the reader stopped on its own (a failed `read` or `poll`); nil while running or after `stop()`.
    public var failure: CourierError? { core.lock.withLock { core.failure } }

    /// The kernel thread id of the reader (for /proc/self/task/<tid>); nil until it has started.
    public var readerThreadID: Int32? { core.lock.withLock { core.readerTID } }

    /// True until the reader thread has returned.
    public var isReaderRunning: Bool { core.lock.withLock { !core.readerDone } }

    /// Stops the reader and closes the descriptors. Idempotent; returns after the reader thread has
    /// exited (it is woken through the pipe, so this takes microseconds, never an event's wait).
    /// Pending and future `nextEvent` calls return `.ended`.
    public func stop() {
        let thread: WatchThread? = core.lock.withLock {
            if core.stopRequested { return nil }
            core.stopRequested = true
            core.lock.broadcast()
            return core.thread
        }
        guard let thread else { return }
        WatchSys.poke(core.wakeWrite)
        if thread.isCurrent { thread.detach() } else { thread.join() }
        core.closeDescriptors()
    }

    /// State shared by the reader thread, the consumer and `stop()`, all under `lock`.
    /// @unchecked Sendable, and why that is true: the descriptor numbers and the buffer size are
    /// immutable; `thread` is written once in `Inotify.init`, before the instance is shared and before
    /// that init takes `lock`, and read afterwards only under `lock`; the fields below only while
    /// holding `lock`.
    ///
    /// The descriptors: the owners live in `*Owner`, under `lock`, and are dropped by
    /// `closeDescriptors()`; the numbers (`fd`, `wakeRead`, `wakeWrite`) are copied out so that the
    /// reader thread can poll and read them without the lock. That is safe because the owners are
    /// dropped only after the reader has returned (`stop()` joins it first) or before it ever ran
    /// (a failed `init`), and `addWatch`/`removeWatch` check `closed` under the lock.
    final class Core: @unchecked Sendable {
        let fd: Int32
        let wakeRead: Int32
        let wakeWrite: Int32
        let bufferSize: Int
        let lock = ConditionLock()
        var thread: WatchThread?

        // Guarded by `lock`.
        var batch: [InotifyEvent] = []
        var index = 0
        var stopRequested = false
        var readerDone = false
        var closed = false
        var failure: CourierError?
        var readerTID: Int32?
        var readerStarted = false
        private var fdOwner: OwnedFD?
        private var wakeReadOwner: OwnedFD?
        private var wakeWriteOwner: OwnedFD?

        init(inotify: consuming OwnedFD, wake: consuming PipeEnds, bufferSize: Int) {
            self.fd = inotify.raw
            self.wakeRead = wake.read.raw
            self.wakeWrite = wake.write.raw
            self.bufferSize = bufferSize
            self.fdOwner = consume inotify
            let read = wake.read
            let write = wake.write
            self.wakeReadOwner = consume read
            self.wakeWriteOwner = consume write
        }

        /// Closes the three descriptors, once: inotify, then the wake pair's read and write ends.
        func closeDescriptors() {
            lock.withLock {
                guard !closed else { return }
                closed = true
                fdOwner = nil
                wakeReadOwner = nil
                wakeWriteOwner = nil
            }
        }

        /// Takes the next event of the current batch; wakes the reader when the batch is used up.
        private func takeLocked() -> InotifyEvent? {
            guard index < batch.count else { return nil }
            let e = batch[index]
            index += 1
            if index == batch.count {
                batch = []
                index = 0
                lock.broadcast()
            }
            return e
        }

        /// The consumer's wait (see `nextEvent(deadlineNanos:)`).
        func nextBlocking(deadline: UInt64?) -> Next {
            lock.lock()
            defer { lock.unlock() }
            while true {
                if stopRequested { return .ended }
                if let e = takeLocked() { return .event(e) }
                if readerDone { return .ended }
                if let d = deadline {
                    if ConditionLock.monotonicNanos() >= d { return .timeout }
                    lock.wait(untilMonotonicNanos: d)
                } else {
                    lock.wait()
                }
            }
        }

        /// Runs on the reader thread until stop or a fatal error.
        func readLoop() {
            WatchThread.nameCurrentThread("courier-inotify")
            let tid = WatchThread.currentThreadID()
            lock.withLock {
                readerTID = tid
                readerStarted = true
                lock.broadcast()
            }
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 8)
            defer { buffer.deallocate() }
            var have = 0  // bytes of an incomplete record kept at the front of `buffer`
            var fds = [
                pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
            ]
            var error: CourierError?
            loop: while true {
                // Back-pressure: wait until the consumer took the previous batch.
                lock.lock()
                while !stopRequested && index < batch.count { lock.wait() }
                let stopping = stopRequested
                lock.unlock()
                if stopping { break }

                fds[0].revents = 0
                fds[1].revents = 0
                do { _ = try WatchSys.poll(&fds) } catch let e as CourierError {
                    error = e
                    break
                } catch { break }
                if fds[1].revents != 0 { break }  // stop() poked the pipe
                let revents = Int32(fds[0].revents)
                if revents & Int32(POLLIN) == 0 {
                    if revents & Int32(POLLERR | POLLHUP | POLLNVAL) != 0 {
                        error = CourierError(.daemon, "inotify descriptor failed (poll revents \(revents))")
                        break
                    }
                    continue
                }
                let n: Int?
                do {
                    n = try WatchSys.readNonBlocking(fd, buffer + have, bufferSize - have, display: "inotify")
                } catch let e as CourierError {
                    error = e
                    break
                } catch { break }
                guard let n else { continue }  // spurious readiness
                if n == 0 {
                    error = CourierError(.daemon, "inotify descriptor returned end of file")
                    break
                }
                have += n
                let (events, consumed) = InotifyParser.parse(UnsafeRawBufferPointer(start: buffer, count: have))
                if consumed > 0 && consumed < have {
                    buffer.copyMemory(from: buffer + consumed, byteCount: have - consumed)
                }
                have -= consumed
                if have == bufferSize {
                    error = CourierError(
                        .daemon, "inotify returned a record larger than the read buffer (\(bufferSize) bytes)")
                    break
                }
                if events.isEmpty { continue }

                lock.lock()
                if stopRequested {
                    lock.unlock()
                    break loop
                }
                batch = events
                index = 0
                lock.broadcast()  // the consumer waits on the lock's condition
                lock.unlock()
            }
            lock.lock()
            readerDone = true
            if !stopRequested { failure = error ?? CourierError(.daemon, "inotify reader stopped") }
            lock.broadcast()
            lock.unlock()
        }
    }
}
