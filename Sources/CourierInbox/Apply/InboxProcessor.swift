import CCourierShim
import CourierCore
import Logging
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Applies what is in the inbox, one package at a time, in a safe order. Not thread-safe: the
/// daemon calls it from its one main thread, between waits on the watcher.
///
/// For each package: verify (signature, expiry, type configured) → refuse rollback unless pinned →
/// extract into `<revision>.tmp` (a delta on a copy of the current tree) → check the tree against
/// the manifest → test command → rename into place → switch `current` → apply command (switch
/// back on failure) → state → retention → remove from the inbox. Refusals go to quarantine.
public final class InboxProcessor: @unchecked Sendable {
    public enum Outcome: Equatable, Sendable { case applied(UInt64), duplicate, refused(String), waiting(String), skipped }

    public let config: InboxConfig
    public let store: Store
    public let state: StateFiles
    let quarantine: Quarantine
    let logger: Logger
    public var faults = FaultPoints.fromEnvironment()
    private(set) public var status: ClientStatus
    private var trust: TrustStore
    /// Deltas waiting for their base: name → first seen (monotonic seconds).
    private var waiting: [String: Double] = [:]
    /// Asked between packages: a graceful shutdown finishes the apply in progress, not the batch.
    public var shouldStop: @Sendable () -> Bool = { false }
    /// Types that applied something in this batch; retention runs for them at its end.
    private var retentionDue = Set<String>()

    public init(config: InboxConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        store = Store(root: config.store)
        state = try StateFiles(dir: config.stateDir)
        quarantine = Quarantine(dir: config.quarantine)
        trust = try TrustStore.load(config.trust, threshold: config.threshold)
        status = state.readStatus() ?? .empty(host: Sys.hostName())
        try Sys.mkdirs(config.inbox)
        try Sys.mkdirs(config.store)
    }

    /// Start-up: remove half-built trees, and reconcile the state with `current` (the commit
    /// point) — after a crash between the switch and the state write, the apply command may not
    /// have run, so it runs now.
    public func recover() throws {
        for r in try store.recover() { logger.info("removed leftover \(r)") }
        // Temporaries of atomic writes interrupted by a crash (status, pins, quarantine reasons).
        for dir in [config.stateDir, config.quarantine] where Sys.isDirectory(dir) {
            for n in try Sys.listDirectory(dir) where n.hasPrefix(".") && n.contains(".tmp-") { try? Sys.unlink(dir + "/" + n) }
        }
        for t in try store.types() {
            let cur = store.current(t)
            var ts = status.types[t] ?? .init()
            if cur != ts.installed, let cur {
                logger.warning("state said \(ts.installed.map(String.init) ?? "nothing") for \(t), current is \(cur): completing the interrupted apply")
                ts.previous = ts.installed
                ts.installed = cur
                ts.appliedAt = RFC3339.format(Int64(time(nil)))
                status.types[t] = ts
                if let tc = config.typeConfig(t), let cmd = tc.applyCommand {
                    let out = try CommandRunner.run(cmd, environment: env(t, cur, store.revisionDir(t, cur), ts.previous), timeout: tc.applyTimeout, record: commandRecord)
                    if !out.ok { logger.error("apply command for \(t) \(cur) failed after recovery (exit \(out.status)): \(out.output)") }
                }
                state.appendHistory(.init(at: now(), type: t, event: "recovered", revision: cur, previous: ts.previous))
            }
        }
        refreshPins()
        try writeStatus()
    }

    func refreshPins() {
        let pins = state.readPins()
        for t in Set(status.types.keys).union(pins.keys) { status.types[t, default: .init()].pinned = pins[t] }
    }

    /// Seconds until the earliest waiting delta times out; nil when nothing waits (no timer).
    public var nextDeadline: Double? {
        guard let first = waiting.values.min() else { return nil }
        return max(0, first + Double(config.deltaWait) - Sys.monotonicSeconds())
    }

    public var hasWaiting: Bool { !waiting.isEmpty }

    /// Processes the inbox. `closed` are names the watcher saw closed or moved in; any other
    /// candidate is only taken if no process has it open for writing (a copier still at work).
    @discardableResult
    public func processInbox(closed: Set<String> = [], rescan: Bool = true) -> [String: Outcome] {
        // An operator's `rollback`/`pin` may have changed the state since (we hold the lock now).
        if let onDisk = state.readStatus() { status = onDisk }
        refreshPins()
        var ready: [String] = []
        if rescan {
            let names = ((try? Sys.listDirectory(config.inbox)) ?? []).filter { InboxNames.isCandidate($0) }
            for n in names {
                if closed.contains(n) || waiting[n] != nil || InboxProcessor.isQuiescent(config.inbox + "/" + n) { ready.append(n) }
                else { logger.debug("\(n) is still open for writing; waiting for it to be closed") }
            }
        } else {
            // Only what the watcher named, and deltas waiting for a base: no listing, no probing.
            ready = Array(Set(closed.filter { InboxNames.isCandidate($0) }).union(waiting.keys))
        }
        var results: [String: Outcome] = [:]
        // Revision order per type, full before deltas of the same revision; unparseable names last.
        let ordered = ready.sorted { a, b in
            let pa = Names.parsePackageFileName(a), pb = Names.parsePackageFileName(b)
            switch (pa, pb) {
            case let (x?, y?):
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
            do {
                let removed = try store.applyRetention(t, keep: keep)
                if !removed.isEmpty { logger.info("\(t): removed old revision(s) \(removed.map(String.init).joined(separator: ", "))") }
            } catch { logger.error("\(t): retention failed: \(error)") }
        }
        retentionDue = []
        var touched = Set<String>()
        for n in results.keys { if let p = Names.parsePackageFileName(n) { touched.insert(p.type) } }
        updatePending(touched: touched)
        try? writeStatus()
        return results
    }

    /// True when nobody has the file open for writing. Root can ask the kernel directly: a read
    /// lease is refused while a writer holds the file. Otherwise (or where leases are not
    /// supported, as on NFS) the file must not have changed for two seconds.
    static func isQuiescent(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if courier_probe_read_lease(fd) == 0 { return true }
        if errno == EAGAIN { return false }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return false }
        return Int(time(nil)) - Int(st.st_mtim.tv_sec) >= 2
    }

    func processOne(_ name: String) -> Outcome {
        let path = config.inbox + "/" + name
        guard Sys.exists(path) else { waiting[name] = nil; return .skipped }
        let t0 = Sys.monotonicSeconds()
        var opts = VerifyOptions(trust: trust)
        opts.clockSkew = config.clockSkew
        opts.limits = config.limits
        let reader: PackageReader
        do { reader = try PackageReader(path: path, options: opts) }
        catch let e as CourierError { return refuse(path, e.code, e.message, type: nil, revision: nil) }
        catch { return refuse(path, .malformed, "\(error)", type: nil, revision: nil) }
        let m = reader.manifest
        let t = m.type
        guard let tc = config.typeConfig(t) else {
            return refuse(path, .wrongType, "content type '\(t)' is not configured on this client (add [types.\(t)] to \(config.path))", type: t, revision: m.revision)
        }
        let installed = store.current(t)
        let pin = status.types[t]?.pinned
        if let pin, m.revision != pin {
            if m.revision == installed { return duplicate(path, t, m.revision) }
            return refuse(path, .rollback, "\(t) is pinned to revision \(pin); revision \(m.revision) refused (courier-inboxd unpin --type \(t) to accept it)", type: t, revision: m.revision)
        }
        if let inst = installed, m.revision <= inst, pin != m.revision || m.revision == inst {
            if m.revision == inst { return duplicate(path, t, m.revision) }
            return refuse(path, .rollback, "revision \(m.revision) is not newer than the installed \(inst): rollback refused (pin it to allow)", type: t, revision: m.revision)
        }
        if m.kind == .delta, let base = m.base, base != installed {
            if let inst = installed, base < inst {
                return refuse(path, .rollback, "base revision \(base) not installed (installed: \(inst)); send the full package", type: t, revision: m.revision)
            }
            let first = waiting[name] ?? Sys.monotonicSeconds()
            waiting[name] = first
            if Sys.monotonicSeconds() - first >= Double(config.deltaWait) {
                waiting[name] = nil
                return refuse(path, .rollback, "base revision \(base) not installed (waited \(config.deltaWait) s; installed: \(installed.map(String.init) ?? "none"))", type: t, revision: m.revision)
            }
            return .waiting("base revision \(base) not installed yet")
        }
        waiting[name] = nil

        let tmp = store.tempDir(t, m.revision)
        do {
            try Sys.mkdirs(store.typeDir(t))
            try Sys.removeTree(tmp)
            if m.kind == .full {
                try Sys.mkdir(tmp)
                try SafeExtractor.extract(reader, into: tmp, durable: false)
                // Every byte was hashed on its way into a file created here (O_EXCL, empty
                // directory): the check is for the set of files, their sizes and modes.
                try TreeChecker.check(tmp, against: m.files, limits: config.limits, hashes: false)
            } else {
                try DeltaApplier.apply(reader, base: store.revisionDir(t, installed!), to: tmp,
                                       copyMode: tc.hardlinkUnchanged ? .hardlink : .copy, durable: false)
            }
            try faults.hit("after-extract")
            if let cmd = tc.testCommand {
                let out = try CommandRunner.run(cmd, environment: env(t, m.revision, tmp, installed), timeout: tc.testTimeout, record: commandRecord)
                if !out.ok {
                    try? Sys.removeTree(tmp)
                    let why = out.timedOut ? "timed out after \(tc.testTimeout) s" : "exited \(out.status)"
                    return refuse(path, .applyFailed, "test command \(why); kept revision \(installed.map(String.init) ?? "none")\(out.output.isEmpty ? "" : ": " + out.output)", type: t, revision: m.revision)
                }
            }
            let final = store.revisionDir(t, m.revision)
            try store.removeRevision(t, m.revision)
            try Sys.writeFileAtomically(store.manifestPath(t, m.revision), reader.manifestBytes, durable: false)
            // The one durability barrier of an apply: the new tree and its manifest reach the disk
            // before anything points at them. The renames after it need no fsync of their own: a
            // journaling file system commits metadata in order, so once the package's unlink is
            // durable, so are the switch and the status before it; a power cut earlier leaves the
            // previous complete tree current and the package in the inbox. (One syncfs instead of
            // an fsync per file and directory: 1 journal commit per apply instead of 7.)
            try Sys.syncFileSystem(store.typeDir(t))
            try faults.hit("before-rename")
            try Sys.rename(tmp, final)
            try faults.hit("before-switch")
            try store.switchCurrent(t, to: m.revision, durable: false, faults: faults)
            try faults.hit("after-switch")
            var ts = status.types[t] ?? .init()
            if let cmd = tc.applyCommand {
                let out = try CommandRunner.run(cmd, environment: env(t, m.revision, final, installed), timeout: tc.applyTimeout, record: commandRecord)
                if !out.ok {
                    let why = out.timedOut ? "timed out after \(tc.applyTimeout) s" : "exited \(out.status)"
                    if tc.rollbackOnApplyFailure, let prev = installed {
                        try store.switchCurrent(t, to: prev)
                        _ = try? CommandRunner.run(cmd, environment: env(t, prev, store.revisionDir(t, prev), m.revision), timeout: tc.applyTimeout, record: commandRecord)
                        try? store.removeRevision(t, m.revision)
                        return refuse(path, .applyFailed, "apply command \(why); switched back to \(prev)\(out.output.isEmpty ? "" : ": " + out.output)", type: t, revision: m.revision)
                    }
                    ts.lastError = .init(at: now(), package: name, code: CourierError.Code.applyFailed.name,
                                         reason: "apply command \(why) (content kept)\(out.output.isEmpty ? "" : ": " + out.output)")
                    logger.error("\(t) \(m.revision): apply command \(why); content kept (rollback_on_apply_failure = false)")
                }
            }
            if ts.lastError?.package != name { ts.lastError = nil }   // a good apply clears an old error
            ts.previous = installed
            ts.installed = m.revision
            ts.appliedAt = now()
            ts.contentCreated = m.created
            status.types[t] = ts
            try faults.hit("before-state")
            try writeStatus(durable: false)   // made durable by the next apply's barrier or the pass's end
            state.appendHistory(.init(at: now(), type: t, event: "applied", revision: m.revision, previous: installed,
                                      package: name, seconds: Sys.monotonicSeconds() - t0))
            retentionDue.insert(t)
            try faults.hit("before-unlink")
            try Sys.unlink(path)
            logger.info("applied \(t) \(m.revision) (\(m.kind.rawValue)\(m.base.map { " from \($0)" } ?? ""), \(m.files.count) files) in \(Int((Sys.monotonicSeconds() - t0) * 1000)) ms")
            return .applied(m.revision)
        } catch let e as CourierError {
            try? Sys.removeTree(tmp)
            return refuse(path, e.code, e.message, type: t, revision: m.revision)
        } catch {
            try? Sys.removeTree(tmp)
            return refuse(path, .applyFailed, "\(error)", type: t, revision: m.revision)
        }
    }

    /// Where a running command's process group is recorded (`CommandRecord`).
    var commandRecord: String { CommandRecord.path(stateDir: config.stateDir) }

    func env(_ t: String, _ rev: UInt64, _ path: String, _ previous: UInt64?) -> [String: String] {
        ["COURIER_TYPE": t, "COURIER_REVISION": String(rev), "COURIER_PATH": path,
         "COURIER_PREVIOUS_REVISION": previous.map(String.init) ?? ""]
    }

    func duplicate(_ path: String, _ t: String, _ rev: UInt64) -> Outcome {
        try? Sys.unlink(path)
        state.appendHistory(.init(at: now(), type: t, event: "duplicate-removed", revision: rev, package: String(path.split(separator: "/").last!)))
        logger.info("\(t) \(rev) is already installed; removed the copy from the inbox")
        return .duplicate
    }

    func refuse(_ path: String, _ code: CourierError.Code, _ reason: String, type: String?, revision: UInt64?) -> Outcome {
        let name = String(path.split(separator: "/").last!)
        do { try quarantine.put(path, code: code, reason: reason, type: type, revision: revision) }
        catch { logger.error("could not quarantine \(name): \(error)") }
        if let t = type {
            status.types[t, default: .init()].lastError = .init(at: now(), package: name, code: code.name, reason: reason)
        }
        state.appendHistory(.init(at: now(), type: type ?? "", event: "refused", revision: revision, package: name, reason: reason))
        logger.error("refused \(name): \(reason)", metadata: ["code": "\(code)"])
        return .refused(reason)
    }

    func updatePending(touched: Set<String>) {
        let names = ((try? Sys.listDirectory(config.inbox)) ?? []).filter { InboxNames.isCandidate($0) }.sorted()
        for t in status.types.keys { status.types[t]?.pending = [] }
        for n in names {
            if let p = Names.parsePackageFileName(n) { status.types[p.type, default: .init()].pending.append(n) }
        }
        for t in touched where status.types[t] != nil {
            let installed = status.types[t]?.installed
            status.types[t]?.kept = ((try? store.revisions(t)) ?? []).filter { $0 != installed }
        }
    }

    public func writeStatus(durable: Bool = true) throws {
        status.updated = now()
        try state.writeStatus(status, durable: durable)
    }

    func now() -> String { RFC3339.format(Int64(time(nil))) }
}
