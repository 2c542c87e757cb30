import CCourierShim
import CourierCore
@preconcurrency import Glibc
import Logging

/// Applies what is in the inbox, one package at a time, in a safe order. Not thread-safe: the
/// daemon calls it from its one main thread, between waits on the watcher.
///
/// For each package (`judge`, its steps in ApplySteps.swift): verify (signature, expiry, type
/// configured) → the acceptance rule (`Acceptance`: duplicate, pin, rollback, delta base — the
/// rule senders apply too) → extract into `<revision>.tmp` (a delta on a copy of the current tree) → check the tree against
/// the manifest → test command → rename into place → switch `current` → apply command (switch
/// back on failure) → state → retention → remove from the inbox. Refusals go to quarantine;
/// transient failures (disk full, read-only, out of descriptors) leave the package in the inbox
/// for a later try. Once `current` is switched the package is applied, whatever fails after.
///
/// Not `Sendable`, on purpose: its `var`s (status, timers, owed history) have no lock, and the
/// compiler keeps it on the thread that made it — the daemon's, or a test's.
public final class InboxProcessor {
    public enum Outcome: Equatable, Sendable {
        case applied(UInt64)
        case duplicate
        case refused(String)
        case waiting(String)
        /// Left in the inbox after a transient error; tried again after a backoff.
        case retrying(String)
        case skipped
    }

    public let config: InboxConfig
    public let store: Store
    public let state: StateFiles
    let quarantine: Quarantine
    let logger: Logger
    public var faults = FaultPoints.fromEnvironment()
    public internal(set) var status: ClientStatus
    var trust: TrustStore
    /// Deltas waiting for their base: name → first seen (monotonic seconds).
    var waiting: [String: Double] = [:]
    /// Packages left in the inbox after a transient error: name → next try.
    struct Retry {
        var attempt: Int
        var due: Double
        var type: String?
    }
    var retrying: [String: Retry] = [:]
    /// A state write (status or history) failed after a commit: when the next pass repairs it.
    var stateRepair: (attempt: Int, due: Double)?
    /// The last status.json write failed; `onDisk` is the file left there (`reloadStatus`).
    struct UnwrittenStatus {
        var onDisk: StateFiles.FileID?
    }
    var unwrittenStatus: UnwrittenStatus?
    /// The state write that failed last ("path: why"), until the state is written in full again;
    /// `--once` reports it, having no later pass to repair it.
    public internal(set) var lastStateFailure: String?
    /// History lines that could not be appended; appended at the next pass.
    var historyOwed: [StateFiles.HistoryEntry] = []
    /// Asked between packages: a graceful shutdown finishes the apply in progress, not the batch.
    public var shouldStop: @Sendable () -> Bool = { false }
    /// Types that applied something in this batch; retention runs for them at its end.
    var retentionDue = Set<String>()
    /// How long a file that failed to read as a package is left alone before it is refused, to
    /// see whether a writer is still at it (a second `cp` over the first).
    var settleSeconds = 1.0

    public init(config: InboxConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        store = Store(root: config.store)
        state = try StateFiles(dir: config.stateDir)
        quarantine = Quarantine(dir: config.quarantine, caps: config.quarantineCaps)
        trust = try TrustStore.load(config.trust, threshold: config.threshold)
        status = state.readStatus() ?? .empty(host: Sys.hostName())
        try Sys.mkdirs(config.inbox)
        try Sys.mkdirs(config.store)
    }

    /// Start-up: remove half-built trees, reconcile the state with `current` (the commit point;
    /// after a crash between the switch and the state write the apply command may not have run,
    /// so it runs now), and run retention for every type (a crash may have come before it).
    public func recover() throws {
        for r in try store.recover() { logger.info("removed leftover \(Escape.text(r))") }
        // Temporaries of atomic writes interrupted by a crash (status, pins, quarantine reasons).
        for dir in [config.stateDir, config.quarantine] where Sys.isDirectory(dir) {
            for n in try Sys.listDirectory(dir) where n.hasPrefix(".") && n.contains(".tmp-") {
                // Harmless if it fails: readers skip dot-names, and the next start tries again.
                try? Sys.unlink(dir + "/" + n)
            }
        }
        refreshPins()
        reconcile(startup: true)
        enforceQuarantineCaps()
        for t in try store.types() {
            guard let keep = config.typeConfig(t)?.keep else { continue }
            retain(t, keep: keep)
        }
        updateKept()
        // Not fatal: the store is right, and the first pass repairs the state (stateWriteFailed).
        do { try writeStatus() } catch { stateWriteFailed(state.statusPath, error) }
    }

    /// A pins file that cannot be read keeps the pins of the last good read (in status.json), said
    /// at each pass until it is fixed.
    func refreshPins() {
        let pins: [String: UInt64]
        do { pins = try state.readPins() } catch {
            logger.error("\(Escape.text("\(error)")); keeping the pins last read")
            return
        }
        for t in Set(status.types.keys).union(pins.keys) { status.types[t, default: .init()].pinned = pins[t] }
    }

    /// Seconds until the next timed work: a waiting delta's timeout, a retry after a transient
    /// error, a repair of the state files. nil when there is none (no timer at all).
    public var nextDeadline: Double? {
        var due = waiting.values.map { $0 + Double(config.deltaWait) }
        due += retrying.values.map(\.due)
        if let r = stateRepair { due.append(r.due) }
        guard let first = due.min() else { return nil }
        return max(0, first - Sys.monotonicSeconds())
    }

    public var hasWaiting: Bool { !waiting.isEmpty }
    /// Anything the daemon must wake up for without an event (see `nextDeadline`).
    public var hasTimedWork: Bool { !waiting.isEmpty || !retrying.isEmpty || stateRepair != nil }

    /// Processes the inbox. `closed` are names the watcher saw closed or moved in; `created`
    /// names it saw created (a hard link, a symlink, a FIFO — or a copier that just opened its
    /// file); any candidate other than `closed` is only taken if no process has it open for
    /// writing (a copier still at work).
    @discardableResult
    public func processInbox(closed: Set<String> = [], created: Set<String> = [], rescan: Bool = true) -> [String:
        Outcome]
    {
        reloadStatus()
        refreshPins()
        reconcile(startup: false)
        var results: [String: Outcome] = [:]
        let now = Sys.monotonicSeconds()
        let candidates: Set<String>
        if rescan {
            do { candidates = Set(try Sys.listDirectory(config.inbox)) } catch {
                // Nothing to take this pass (the watcher reports an inbox that is gone); said.
                logger.error("could not list the inbox: \(Escape.text("\(error)"))")
                candidates = []
            }
        } else {
            // Only what the watcher named, waiting deltas and due retries: no listing.
            candidates = closed.union(created).union(waiting.keys).union(retrying.filter { $0.value.due <= now }.keys)
        }
        var ready: [String] = []
        for n in candidates.sorted() where InboxNames.isCandidate(n) {
            let path = config.inbox + "/" + n
            let (kind, id) = InboxEntry.inspect(path)
            switch kind {
            case .missing:
                forget(n)
                continue
            case .regular:
                break
            default:
                results[n] = refuseEntry(n, kind)
                continue
            }
            let event = closed.contains(n) || created.contains(n)
            if let r = retrying[n], r.due > now, !event { continue }  // backing off
            if closed.contains(n) || waiting[n] != nil {
                ready.append(n)
            } else if (id?.size ?? 0) > 0 || !created.contains(n), InboxProcessor.isQuiescent(path) {
                ready.append(n)
            } else {
                logger.debug("\(Escape.text(n)) is still open for writing; waiting for it to be closed")
            }
        }
        // Revision order per type, full before deltas of the same revision; unparseable names last.
        let ordered = ready.sorted { a, b in
            let pa = Names.parsePackageFileName(a)
            let pb = Names.parsePackageFileName(b)
            switch (pa, pb) {
            case (let x?, let y?):
                if x.type != y.type { return x.type < y.type }
                if x.revision != y.revision { return x.revision < y.revision }
                if (x.base == nil) != (y.base == nil) { return x.base == nil }
                return a < b
            case (nil, _?): return false
            case (_?, nil): return true
            default: return a < b
            }
        }
        var progress = true
        var remaining = ordered
        // A delta may become applicable once an earlier package in this batch is installed.
        while progress && !remaining.isEmpty && !shouldStop() {
            progress = false
            var next: [String] = []
            for n in remaining {
                if shouldStop() { break }
                let o = processOne(n)
                results[n] = o
                if case .waiting = o { next.append(n) } else if case .applied = o { progress = true }
            }
            remaining = next
        }
        // Old revisions go once the batch is done, not inside each apply: removing trees right
        // after a sync is slow, and a burst should reach its newest revision first.
        for t in retentionDue.sorted() {
            guard let keep = config.typeConfig(t)?.keep else { continue }
            retain(t, keep: keep)
        }
        retentionDue = []
        try? faults.hit("after-retention")
        updatePending()
        updateKept()
        pruneRows()
        do {
            try writeStatus()
            stateRepaired()
        } catch { stateWriteFailed(state.statusPath, error) }
        return results
    }

    func retain(_ t: String, keep: Int) {
        do {
            let removed = try store.applyRetention(t, keep: keep)
            if !removed.isEmpty {
                logger.info("\(t): removed old revision(s) \(removed.map(String.init).joined(separator: ", "))")
            }
        } catch { logger.error("\(t): retention failed: \(error)") }
    }

    /// True when nobody has the file open for writing. Root can ask the kernel directly: a read
    /// lease is refused while a writer holds the file. Otherwise (or where leases are not
    /// supported, as on NFS) the file must not have changed for two seconds.
    static func isQuiescent(_ path: String) -> Bool {
        guard let fd = try? OwnedFD.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) else { return false }
        if courier_probe_read_lease(fd.raw) == 0 { return true }
        if errno == EAGAIN { return false }
        guard let st = try? Sys.fstat(fd.raw, display: path) else { return false }
        return Int(time(nil)) - Int(st.st_mtim.tv_sec) >= 2
    }

    /// One package, then the bookkeeping of timers: a final outcome ends its retries.
    func processOne(_ name: String) -> Outcome {
        let o = judge(name)
        switch o {
        case .retrying: break
        case .waiting: retrying[name] = nil
        default: retrying[name] = nil
        }
        return o
    }

    /// The name is gone from the inbox: no timers for it, and no "will retry" left in the status.
    func forget(_ name: String) {
        waiting[name] = nil
        if let r = retrying.removeValue(forKey: name), let t = r.type, status.types[t]?.lastError?.package == name,
            status.types[t]?.lastError?.code == CourierError.Code.io.name
        {
            status.types[t]?.lastError = nil
        }
    }

    func committed(
        _ path: String, _ name: String, _ m: Manifest, installed: UInt64?,
        tc: InboxConfig.TypeConfig, t0: Double
    ) -> Outcome {
        let t = m.type
        retrying[name] = nil  // applied: no `retrying` marker in the status written below
        try? faults.hit("after-switch")
        var applyError: ClientStatus.LastError? = nil
        if let cmd = tc.applyCommand {
            do {
                let out = try CommandRunner.run(
                    cmd, environment: env(t, m.revision, store.revisionDir(t, m.revision), installed),
                    timeout: tc.applyTimeout, record: commandRecord)
                if !out.ok {
                    let why = out.timedOut ? "timed out after \(tc.applyTimeout) s" : "exited \(out.status)"
                    let output = out.output.isEmpty ? "" : ": " + Escape.text(out.output)
                    if tc.rollbackOnApplyFailure, let prev = installed {
                        do {
                            try store.switchCurrent(t, to: prev)
                            _ = try? CommandRunner.run(
                                cmd, environment: env(t, prev, store.revisionDir(t, prev), m.revision),
                                timeout: tc.applyTimeout, record: commandRecord)
                            do { try store.removeRevision(t, m.revision) } catch {
                                // It stays in the store (listed in `kept`): said, not swallowed.
                                logger.warning(
                                    "\(t) \(m.revision): could not remove the refused tree: \(Escape.text("\(error)"))")
                            }
                            return refuse(
                                path, .applyFailed, "apply command \(why); switched back to \(prev)\(output)", type: t,
                                revision: m.revision,
                                package: .init(type: t, revision: m.revision, base: m.kind == .delta ? m.base : nil))
                        } catch {
                            logger.error(
                                "\(t) \(m.revision): apply command \(why), and switching back to \(prev) failed: \(error); the new content stays"
                            )
                        }
                    }
                    applyError = .init(
                        at: now(), package: name, code: CourierError.Code.applyFailed.name,
                        reason: "apply command \(why) (content kept)\(output)")
                    logger.error("\(t) \(m.revision): apply command \(why); content kept")
                }
            } catch {
                applyError = .init(
                    at: now(), package: name, code: CourierError.Code.applyFailed.name,
                    reason: "apply command could not run: \(error) (content kept)")
                logger.error("\(t) \(m.revision): apply command could not run: \(error); content kept")
            }
        }
        var ts = status.types[t] ?? .init()
        ts.lastError = applyError  // a good apply clears an old error
        ts.previous = installed
        ts.installed = m.revision
        ts.appliedAt = now()
        ts.contentCreated = m.created
        // A good revision supersedes the refusals of older ones (and of itself, when forced).
        let stillRefused = Acceptance.clearing(upTo: m.revision, in: ts.refused ?? [])
        ts.refused = stillRefused.isEmpty ? nil : stillRefused
        status.types[t] = ts
        if let e = applyError {
            runHook(
                .error, type: t, package: name, path: store.revisionDir(t, m.revision), code: e.code, reason: e.reason,
                revision: m.revision)
        }
        try? faults.hit("before-state")
        // History first: a crash before the status write leaves status ≠ current, which the
        // next start repairs, finding this line (so it is not written twice).
        appendHistory(
            .init(
                at: now(), type: t, event: "applied", revision: m.revision, previous: installed,
                package: name, seconds: Sys.monotonicSeconds() - t0))
        do { try writeStatus(durable: false) }  // made durable by the next apply's barrier or the pass's end
        catch { stateWriteFailed(state.statusPath, error) }
        retentionDue.insert(t)
        try? faults.hit("before-unlink")
        if InboxEntry.hasWriter(path) {
            // A second copy is being written over it: left alone, it is removed as a duplicate
            // once its writer closes it.
            logger.info("\(Escape.text(name)) is being written again; left for its writer to finish")
        } else {
            makeSwitchDurableBeforeUnlink(path, type: t)
            do { try Sys.unlink(path) } catch {
                logger.warning(
                    "applied \(t) \(m.revision) but could not remove \(Escape.text(name)) from the inbox: \(error)")
            }
        }
        logger.info(
            "applied \(t) \(m.revision) (\(m.kind.rawValue)\(m.base.map { " from \($0)" } ?? ""), \(m.resultFileCount) files) in \(Int((Sys.monotonicSeconds() - t0) * 1000)) ms"
        )
        return .applied(m.revision)
    }

    /// The package leaves the inbox only once the switch to its tree would survive a power cut.
    /// On one file system the journal commits metadata in order, so the unlink cannot reach the
    /// disk before the rename of `current` made before it (the barrier before the switch covers
    /// the tree). Across file systems nothing orders the two: the unlink in the inbox could be
    /// committed while the store still names the old tree, and a power cut between them would
    /// lose the package. Then the store's directory is fsynced first (one journal commit, only
    /// for that layout). Best effort: the apply is done either way, and a lost package shows as
    /// a client behind in `report` and is pushed again.
    func makeSwitchDurableBeforeUnlink(_ path: String, type t: String) {
        let typeDir = store.typeDir(t)
        guard let inboxStat = try? Sys.lstat(path), let storeStat = try? Sys.lstat(typeDir),
            inboxStat.st_dev != storeStat.st_dev
        else { return }
        Sys.fsyncDirectory(typeDir)
    }

    /// Where a running command's process group is recorded (`CommandRecord`).
    var commandRecord: String { CommandRecord.path(stateDir: config.stateDir) }

    func env(_ t: String, _ rev: UInt64, _ path: String, _ previous: UInt64?) -> [String: String] {
        [
            "COURIER_TYPE": t, "COURIER_REVISION": String(rev), "COURIER_PATH": path,
            "COURIER_PREVIOUS_REVISION": previous.map(String.init) ?? "",
        ]
    }

    func duplicate(_ path: String, _ t: String, _ rev: UInt64) -> Outcome {
        let name = String(path.split(separator: "/").last!)
        // Never remove what a writer still holds: it may be writing something else under the name.
        if InboxEntry.hasWriter(path) {
            logger.info("\(Escape.text(name)) is being written again; taken once its writer closes it")
            return .skipped
        }
        do { try Sys.unlink(path) } catch {
            logger.warning(
                "\(t) \(rev) is already installed, but its copy stays in the inbox: \(Escape.text("\(error)"))")
            return .duplicate
        }
        appendHistory(.init(at: now(), type: t, event: "duplicate-removed", revision: rev, package: name))
        logger.info("\(t) \(rev) is already installed; removed the copy from the inbox")
        return .duplicate
    }

    func now() -> String { RFC3339.format(Int64(time(nil))) }
}
