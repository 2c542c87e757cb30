import CourierCore
@preconcurrency import Glibc
import Logging

/// `status.json` and `history.jsonl` are derived from the store: `current` is the truth. These
/// functions make the state say what the store holds — at start-up after a crash, at the start
/// of every pass after a failed state write, and whenever the status is written.
extension InboxProcessor {
    /// Makes `status` agree with `store.current(t)` for every type, and makes sure history has an
    /// `applied` line for a revision that became current (once: the tail of history is checked).
    /// At start-up (`startup`), the apply command runs for such a revision: a crash may have
    /// come before it ran, or before it finished. In a pass it ran already: only the state failed.
    func reconcile(startup: Bool) {
        flushOwedHistory()
        var appeared: [(type: String, revision: UInt64, previous: UInt64?)] = []
        let types = Set((try? store.types()) ?? []).union(status.types.keys)
        for t in types.sorted() {
            let cur = store.current(t)
            guard var ts = status.types[t] ?? (cur != nil ? .init() : nil) else { continue }
            if cur != ts.installed {
                if let cur {
                    logger.warning(
                        "state said \(ts.installed.map(String.init) ?? "nothing") for \(Escape.text(t)), current is \(cur): \(startup ? "completing the interrupted apply" : "repairing the state")"
                    )
                    let prev = ts.installed
                    ts.previous = prev
                    ts.installed = cur
                    ts.appliedAt = now()
                    ts.contentCreated = storedManifest(t, cur)?.created
                    if startup, let tc = config.typeConfig(t), let cmd = tc.applyCommand {
                        do {
                            let out = try CommandRunner.run(
                                cmd, environment: env(t, cur, store.revisionDir(t, cur), prev),
                                timeout: tc.applyTimeout, record: commandRecord)
                            if !out.ok {
                                logger.error(
                                    "apply command for \(t) \(cur) failed after recovery (exit \(out.status)): \(Escape.text(out.output))"
                                )
                            }
                        } catch { logger.error("apply command for \(t) \(cur) could not run after recovery: \(error)") }
                    }
                    appeared.append((t, cur, prev))
                } else {
                    logger.warning(
                        "state said \(ts.installed.map(String.init) ?? "nothing") for \(Escape.text(t)), but nothing is current in the store: recording nothing installed"
                    )
                    ts.installed = nil
                    ts.appliedAt = nil
                    ts.contentCreated = nil
                }
            }
            status.types[t] = ts
        }
        if !appeared.isEmpty {
            let tail = state.historyTail()
            for a in appeared {
                let seen = tail.contains { $0.event == "applied" && $0.type == a.type && $0.revision == a.revision }
                if !seen {
                    appendHistory(
                        .init(
                            at: now(), type: a.type, event: "applied", revision: a.revision, previous: a.previous,
                            reason: startup
                                ? "recorded at start-up: current was switched before an interruption"
                                : "recorded late: the state could not be written at the time"))
                }
                if startup {
                    appendHistory(
                        .init(at: now(), type: a.type, event: "recovered", revision: a.revision, previous: a.previous))
                }
            }
        }
        updateKept()
        pruneRows()
    }

    /// The manifest kept beside a revision, for its `created` time.
    func storedManifest(_ t: String, _ r: UInt64) -> Manifest? {
        guard let b = try? Sys.readFile(store.manifestPath(t, r), limit: config.limits.maxManifestBytes) else {
            return nil
        }
        return try? Manifest.decode(b)
    }

    /// `kept` from the store's directories: the complete revisions other than `current`.
    func updateKept() {
        for t in status.types.keys {
            let installed = store.current(t)
            let kept = ((try? store.revisions(t)) ?? []).filter { $0 != installed }
            if status.types[t]?.kept != kept { status.types[t]?.kept = kept }
        }
    }

    /// A type may have a row only when it is configured, something of it is installed (a
    /// verified apply), or the operator pinned it. Inbox file names and refused packages never
    /// create one: anyone can name a file, and a row with nothing installed reads as a stale
    /// client in `courier-deliver report`.
    func rowAllowed(_ t: String) -> Bool {
        config.types[t] != nil || store.current(t) != nil || status.types[t]?.pinned != nil
    }

    func pruneRows() {
        for t in status.types.keys where !rowAllowed(t) {
            logger.info("status: dropping the row of \(Escape.text(t)), a type neither configured nor installed")
            status.types[t] = nil
        }
    }

    /// Pending package names, for the types that have (or may have) a row.
    func updatePending() {
        let names = ((try? Sys.listDirectory(config.inbox)) ?? []).filter { InboxNames.isCandidate($0) }.sorted()
        for t in status.types.keys { status.types[t]?.pending = [] }
        for n in names {
            if let p = Names.parsePackageFileName(n), rowAllowed(p.type) {
                status.types[p.type, default: .init()].pending.append(n)
            }
        }
    }

    /// Appends a history line; one that cannot be written is kept (logged once, with why) and
    /// appended at the next pass.
    func appendHistory(_ e: StateFiles.HistoryEntry) {
        // Owed lines go first, so the file keeps its order.
        guard historyOwed.isEmpty else {
            historyOwed.append(e)
            return
        }
        do { try state.appendHistoryLine(e) } catch {
            historyOwed.append(e)
            stateWriteFailed(state.historyPath, error)
        }
    }

    /// At the start of each pass: the lines owed since a failed append, in order. A failure again
    /// is logged and the repair put off (backoff), so a history that stays unwritable neither
    /// wakes the daemon in a loop nor goes unnoticed.
    func flushOwedHistory() {
        while let e = historyOwed.first {
            do { try state.appendHistoryLine(e) } catch {
                stateWriteFailed(state.historyPath, error)
                return
            }
            historyOwed.removeFirst()
        }
    }

    /// A state file could not be written: logged with the file and the reason, and a pass
    /// scheduled to repair it (1 s, doubling, at most a minute), so the state catches up with
    /// `current` without an event. For status.json, which file stays on disk is remembered: until
    /// another program replaces it, the next pass keeps the status in memory — what the failed
    /// write would have said (refusals, errors, counts) — rather than reading the stale file.
    func stateWriteFailed(_ path: String, _ error: any Error) {
        let attempt = (stateRepair?.attempt ?? 0) + 1
        let delay = Transient.backoff(attempt: attempt)
        stateRepair = (attempt, Sys.monotonicSeconds() + Double(delay))
        if path == state.statusPath { unwrittenStatus = UnwrittenStatus(onDisk: state.statusFileID()) }
        lastStateFailure = "\(path): \(error)"
        logger.error(
            "could not write \(Escape.text(path)): \(Escape.text("\(error)")); the store is what counts: the state is repaired from it in \(delay) s"
        )
    }

    /// The status to work from at the start of a pass. An operator's `rollback`/`pin` may have
    /// rewritten status.json since (the lock is held now): read it — unless the last write of
    /// ours failed and the file is still the one that was there then, which is older than
    /// `status`. Either way `reconcile` then makes it agree with the store.
    func reloadStatus() {
        if let u = unwrittenStatus, state.statusFileID() == u.onDisk { return }
        unwrittenStatus = nil
        if let onDisk = state.readStatus() { status = onDisk }
    }

    /// Writes status.json, with the packages waiting for a retry listed per type.
    public func writeStatus(durable: Bool = true) throws {
        status.updated = now()
        var marks: [String: [String]] = [:]
        for (name, r) in retrying { if let t = r.type, status.types[t] != nil { marks[t, default: []].append(name) } }
        try state.writeStatus(status, retrying: marks.mapValues { $0.sorted() }, durable: durable)
        unwrittenStatus = nil
    }

    /// The state is written in full again: no repair due, nothing to report.
    func stateRepaired() {
        guard historyOwed.isEmpty, unwrittenStatus == nil, stateRepair != nil else { return }
        stateRepair = nil
        lastStateFailure = nil
        logger.info("state files written again: \(Escape.text(state.statusPath)) agrees with the store")
    }
}
