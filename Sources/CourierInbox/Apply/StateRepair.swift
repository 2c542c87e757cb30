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

    /// Appends a history line; one that cannot be written is kept and appended at the next pass.
    func appendHistory(_ e: StateFiles.HistoryEntry) {
        // Owed lines go first, so the file keeps its order.
        if historyOwed.isEmpty && state.appendHistory(e) { return }
        let first = historyOwed.isEmpty
        historyOwed.append(e)
        if first { stateWriteFailed("history.jsonl", CourierError(.io, "\(state.historyPath): append failed")) }
    }

    func flushOwedHistory() {
        while let e = historyOwed.first {
            guard state.appendHistory(e) else { return }
            historyOwed.removeFirst()
        }
    }

    /// A state file could not be written: logged, and a pass scheduled to repair it (1 s,
    /// doubling, at most a minute), so the state catches up with `current` without an event.
    func stateWriteFailed(_ what: String, _ error: any Error) {
        let attempt = (stateRepair?.attempt ?? 0) + 1
        let delay = Transient.backoff(attempt: attempt)
        stateRepair = (attempt, Sys.monotonicSeconds() + Double(delay))
        logger.error("could not write \(what): \(error); the store is what counts, the state is repaired in \(delay) s")
    }

    /// Writes status.json, with the packages waiting for a retry listed per type.
    public func writeStatus(durable: Bool = true) throws {
        status.updated = now()
        var marks: [String: [String]] = [:]
        for (name, r) in retrying { if let t = r.type, status.types[t] != nil { marks[t, default: []].append(name) } }
        try state.writeStatus(status, retrying: marks.mapValues { $0.sorted() }, durable: durable)
    }
}
