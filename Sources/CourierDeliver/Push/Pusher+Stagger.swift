import CourierCore
@preconcurrency import Glibc

extension Pusher {
    /// `push --stagger`: every chosen package verified first, then each inbox handled at its own
    /// time (`Stagger.offsets` from the start of the copies): its copies staged, its file system
    /// flushed, renamed into place, flushed again — so a client's package arrives at its slot,
    /// not when the last inbox of the run has been written, and the clients' daemons apply and
    /// reload spread over the window.
    ///
    /// The difference from `run`: verification before the copies instead of beside them (a
    /// staggered copy is renamed as soon as it is written, so its verdict must be known), and a
    /// flush per inbox instead of one per file system (the copies are apart in time; one
    /// `syncfs` for all would mean holding every rename until the end of the window). With
    /// `sync` off, no flush: the copy is renamed as soon as it is written.
    func runStaggered(_ plans: [Planned], t0: Double) -> Summary {
        let decisions = plans.flatMap(\.decisions)
        let (sources, unopened) = Self.openSources(decisions)
        let v = Self.verifyOnce(decisions, options: verify, jobs: jobs, sources: sources, cache: verifiedCache)
        let offsets = Stagger.offsets(plans.map(\.target.inbox), window: stagger)
        // Taken in slot order, so a thread waiting for a slot never holds back an earlier one.
        let order = plans.indices.sorted { (offsets[$0], $0) < (offsets[$1], $1) }
        let start = Sys.monotonicSeconds()
        let done = Slots<[Outcome]>(count: plans.count)
        let flushes = Locked(0)
        Parallel.forEach(count: order.count, jobs: jobs) { k in
            let i = order[k]
            Stagger.sleep(until: start + offsets[i])
            var list = stageTarget(redecided(plans[i]), sources: sources, unopened: unopened, badPackages: v.failures)
            flushes.withLock { $0 += commitNow(&list) }
            done[i] = list
        }
        return Summary(
            outcomes: done.values.flatMap { $0 }, seconds: Sys.monotonicSeconds() - t0,
            flushes: flushes.withLock { $0 }, verified: v.verified, remembered: v.remembered)
    }

    /// The plan of one inbox made again at its slot, which can come up to the whole window
    /// after the plan: the client's status and inbox are read again and each type decided again
    /// (`plan`, with `force`), so a client that meanwhile installed the revision, was pinned or
    /// held, or got the package another way receives nothing (the new decision is reported). A
    /// package is still copied only if it is the one planned: only those were opened and verified
    /// before the slots; a different one now wanted is reported for the next push.
    func redecided(_ p: Planned) -> Planned {
        guard p.problem == nil else { return p }
        let (now, problem) = plan(p.target)
        if let problem { return Planned(target: p.target, problem: problem) }
        var out = p
        out.decisions = zip(p.decisions, now).map { was, d in
            guard d.action == .full || d.action == .delta, d.package != was.package else { return d }
            var n = d
            n.action = .none
            n.package = nil
            n.code = "changed"
            n.reason =
                "the client's status changed before its slot; it now needs \(d.package.map { String($0.split(separator: "/").last ?? "") } ?? "another package") (\(d.reason)), which this run did not verify: push again"
            return n
        }
        return out
    }

    /// One inbox's staged copies made visible: flush, rename each, flush again (without `sync`:
    /// rename only). A failed flush discards every copy of the inbox; a failed rename discards
    /// that copy. Returns the number of `syncfs` calls.
    func commitNow(_ list: inout [Outcome]) -> Int {
        let staged = list.indices.filter { list[$0].staged != nil && list[$0].state == .copied }
        guard let first = staged.first.flatMap({ list[$0].staged }) else { return 0 }
        var flushes = 0
        if sync {
            flushes += 1
            do { try Sys.syncFileSystem(first.inbox) } catch {
                for j in staged {
                    InboxCopier.discard(list[j].staged!)
                    list[j].state = .failed
                    list[j].error = "\(error)"
                    list[j].staged = nil
                }
                return flushes
            }
        }
        for j in staged {
            do { try InboxCopier.commit(list[j].staged!, faults: faults) } catch {
                InboxCopier.discard(list[j].staged!)
                list[j].state = .failed
                list[j].error = "\(error)"
            }
            list[j].staged = nil
        }
        if sync && list.contains(where: { $0.state == .copied }) {
            flushes += 1
            do { try Sys.syncFileSystem(first.inbox) } catch {
                // Renamed already: the copies are in place, only their durability is unknown.
                for j in staged where list[j].state == .copied {
                    list[j].state = .failed
                    list[j].error = "renamed, but the flush after it failed: \(error)"
                }
            }
        }
        return flushes
    }
}
