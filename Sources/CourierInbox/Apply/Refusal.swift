import CourierCore
@preconcurrency import Glibc
import Logging

/// What happens to a package that cannot be applied: refused (quarantine, with a reason), or —
/// when the failure is the machine's and not the package's — left in the inbox and tried again.
extension InboxProcessor {
    /// Codes that a file still being written (truncated, half rewritten) can produce. Before a
    /// file is refused for one of them, it is given a moment to show a writer or a change.
    static let unsettledCodes: Set<CourierError.Code> = [.malformed, .integrity, .signature, .unsafeEntry, .limit]

    /// A failure before the commit point: transient ones are retried, the rest refused.
    /// `package`: the signed manifest's facts, once verified (a refusal may then be recorded).
    func failed(
        _ path: String, _ e: CourierError, type: String?, revision: UInt64?, identity: InboxEntry.Identity?,
        package: Acceptance.Package? = nil
    ) -> Outcome {
        if Transient.isTransient(e) { return retryLater(path, e, type: type, revision: revision) }
        return refuse(
            path, e.code, Escape.line(e.message), type: type, revision: revision, identity: identity, package: package)
    }

    /// A failure while a verified package is built, tested or switched in. A `CourierError` from
    /// those steps is about the package (its tree failed a check, its delta did not fit, its
    /// command failed), so the refusal may be recorded against the revision (`Acceptance.counts`).
    /// Any other error is unexpected — the machine's or a bug's, perhaps transient — and says
    /// nothing about the revision: the package is quarantined as before, with the error kept as
    /// the cause, but the revision is not recorded as refused (senders would skip it until `--force`).
    func failedApplying(_ c: Candidate, _ error: any Error) -> Outcome {
        guard let e = error as? CourierError else {
            let e = CourierError(
                .applyFailed, "unexpected error while applying revision \(c.m.revision): \(error)", cause: error)
            return failed(c.path, e, type: c.m.type, revision: c.m.revision, identity: c.identity)
        }
        return failed(c.path, e, type: c.m.type, revision: c.m.revision, identity: c.identity, package: c.facts)
    }

    /// Leaves the package in the inbox and schedules another try: 1 s, doubling, at most a minute.
    func retryLater(_ path: String, _ e: CourierError, type: String?, revision: UInt64? = nil) -> Outcome {
        let name = String(path.split(separator: "/").last!)
        var r = retrying[name] ?? Retry(attempt: 0, due: 0, type: type)
        r.attempt += 1
        if let type { r.type = type }
        let delay = Transient.backoff(attempt: r.attempt)
        r.due = Sys.monotonicSeconds() + Double(delay)
        retrying[name] = r
        let reason =
            "\(Escape.line(e.message)); a transient error: left in the inbox, will retry in \(delay) s (attempt \(r.attempt))"
        if let t = r.type, rowAllowed(t) {
            status.types[t, default: .init()].lastError = .init(
                at: now(), package: name, code: CourierError.Code.io.name, reason: reason)
        }
        logger.warning("\(Escape.text(name)): \(reason)")
        // on_error once per package and error streak, not at every backoff step.
        if r.attempt == 1 {
            runHook(
                .error, type: r.type, package: name, path: path, code: CourierError.Code.io.name, reason: reason,
                revision: revision)
        }
        return .retrying(reason)
    }

    /// Quarantines the package with a reason — unless it is not a finished file: a writer holds
    /// it (a second copy over the first), or it changed since it was first looked at, or (for a
    /// failure a half-written file causes) it changes or gains a writer within `settleSeconds`.
    /// Such a file is left alone: its writer's close brings it back.
    /// `package`: the signed manifest's facts, when the package verified; a refusal about the
    /// revision itself (`Acceptance.counts`) is then recorded under `refused` in `status.json`.
    func refuse(
        _ path: String, _ code: CourierError.Code, _ reason: String, type: String?, revision: UInt64?,
        identity: InboxEntry.Identity? = nil, package: Acceptance.Package? = nil
    ) -> Outcome {
        let name = String(path.split(separator: "/").last!)
        /// nil when the file is settled; else why not, and whether only a change (no writer) says so.
        func unsettled() -> (why: String, changedOnly: Bool)? {
            let (kind, now) = InboxEntry.inspect(path)
            if kind == .missing { return ("it is gone", false) }
            if InboxEntry.hasWriter(path) { return ("a process has it open for writing", false) }
            if let identity, kind == .regular, now != identity { return ("it changed while it was read", true) }
            return nil
        }
        func leave(_ u: (why: String, changedOnly: Bool)) -> Outcome {
            guard u.changedOnly else {
                // A writer's close (IN_CLOSE_WRITE) brings it back; a vanished file is done.
                logger.info("\(Escape.text(name)) not refused (\(u.why)); it is taken again once written")
                return .skipped
            }
            // Rewritten and closed already, or only touched (no event may follow): look again soon.
            retrying[name] = Retry(attempt: 0, due: Sys.monotonicSeconds() + settleSeconds, type: type)
            logger.info("\(Escape.text(name)) not refused (\(u.why)); looked at again in \(settleSeconds) s")
            return .retrying("\(u.why)")
        }
        if let u = unsettled() { return leave(u) }
        if identity != nil, Self.unsettledCodes.contains(code) {
            usleep(UInt32(settleSeconds * 1_000_000))
            if let u = unsettled() { return leave(u) }
        }
        var whereNow = path
        do {
            whereNow = try quarantine.put(path, code: code, reason: reason, type: type, revision: revision)
            enforceQuarantineCaps()
        } catch let e as CourierError where Transient.isTransient(e) {
            logger.error("could not quarantine \(Escape.text(name)): \(e)")
            return retryLater(path, e, type: type)
        } catch {
            logger.error("could not quarantine \(Escape.text(name)): \(error)")
        }
        if let t = type, rowAllowed(t) {
            status.types[t, default: .init()].lastError = .init(
                at: now(), package: name, code: code.name, reason: reason)
        }
        if let p = package, Acceptance.counts(code, delta: p.isDelta), rowAllowed(p.type) {
            let r = ClientStatus.Refused(
                revision: p.revision, code: code.name, reason: reason, at: now(), package: name)
            status.types[p.type, default: .init()].refused = Acceptance.recording(
                r, in: status.types[p.type]?.refused ?? [])
        }
        appendHistory(
            .init(at: now(), type: type ?? "", event: "refused", revision: revision, package: name, reason: reason))
        logger.error("refused \(Escape.text(name)): \(reason)", metadata: ["code": "\(code)"])
        runHook(
            .refused, type: type, package: name, path: whereNow, code: code.name, reason: reason, revision: revision)
        return .refused(reason)
    }

    /// Something other than a regular file under a package name: a symbolic link (moved itself,
    /// never followed), a FIFO (never opened), a directory, socket or device.
    func refuseEntry(_ name: String, _ kind: InboxEntry.Kind) -> Outcome {
        waiting[name] = nil
        retrying[name] = nil
        let reason =
            "\(Escape.text(name)) is a \(kind.noun), not a regular file: copy the package itself into the inbox (a symbolic link is never followed, a FIFO never read)"
        return refuse(config.inbox + "/" + name, .malformed, reason, type: nil, revision: nil)
    }
}

extension InboxProcessor {
    /// Keeps the quarantine within its caps after each refusal (and at start-up); what was
    /// evicted is counted in `status.json` (`quarantine.evicted`) and logged. A failure to
    /// evict is logged and tried again at the next refusal: it never changes an outcome.
    func enforceQuarantineCaps() {
        do {
            let r = try quarantine.enforce()
            var q = status.quarantine ?? .init()
            q.files = r.files
            q.bytes = r.bytes
            q.evicted += r.evicted.count
            status.quarantine = q
            for (name, why) in r.failed {
                logger.error(
                    "quarantine: could not evict \(Escape.text(name)): \(why); tried again at the next refusal")
            }
            if !r.evicted.isEmpty {
                logger.info(
                    "quarantine over its caps: evicted \(r.evicted.count) oldest (\(r.evicted.prefix(3).map { Escape.text($0) }.joined(separator: ", "))\(r.evicted.count > 3 ? ", …" : ""))"
                )
            }
        } catch {
            logger.error("could not keep the quarantine within its caps: \(error)")
        }
    }
}
