import CourierCore
@preconcurrency import Glibc

/// `courier-deliver push`: plan every target, verify every chosen package once, then copy in
/// parallel. A failing target is reported and the others go on.
public struct Pusher: Sendable {
    public var catalog: Catalog
    public var verify: VerifyOptions
    public var jobs = 8
    public var method = InboxCopier.Method.copy
    public var dryRun = false
    /// Flush each file system that received copies before the renames and again after them (the
    /// default). false (`--no-sync`): the verified copies are renamed once all are staged, as
    /// in the default, but with no flush before or after: they reach the disk with the kernel's
    /// write-back, whenever that comes. For inboxes made durable by a later step, or on tmpfs. Copies that fit under the kernel's dirty limit then
    /// go through the page cache (`CacheBudget`). docs/DELIVER.md says what a power loss does.
    public var sync = true
    /// Types delivered to targets that name none (from `--inbox`): `--type`, or all of the outbox.
    public var defaultTypes: [String]
    /// Revision for those targets: `--revision` or latest.
    public var defaultSpec = RevisionSpec.latest
    public var faults = FaultPoints.fromEnvironment()
    /// Verdicts remembered from earlier pushes (`--verify-cache`); nil: verify every package.
    public var verifiedCache: VerifiedCache?
    /// `--force`: send a revision a client refused before (its `status.json` lists it under
    /// `refused`); otherwise such a client is skipped with code `refused`.
    public var force = false
    /// `--bwlimit`: one cap for all the copies of the run, whatever `jobs` is; nil: none.
    public var throttle: Throttle?
    /// `--stagger`: the window in seconds over which the inboxes' copies start (`Stagger`,
    /// `runStaggered`); 0: all at once, as `jobs` allows.
    public var stagger: Double = 0

    /// Each inbox's own limits (`Target.limits`) checked against the packages chosen for it.
    public var limitCheck: ClientLimitCheck

    /// `verify`: how every package is verified once; its limits should admit every target's
    /// (`Limits.loosest`), each target's own being checked by `limitCheck`.
    public init(catalog: Catalog, verify: VerifyOptions, defaultTypes: [String]) {
        self.catalog = catalog
        self.verify = verify
        self.defaultTypes = defaultTypes
        self.limitCheck = ClientLimitCheck(options: verify)
    }

    /// One line of the result: one target and type (or the whole target when it failed early).
    public struct Outcome: Sendable {
        public enum State: String, Sendable { case copied, planned, skipped, failed }
        public var inbox: String
        public var group: String?
        public var decision: Decision?
        public var state: State
        public var bytes: Int64 = 0
        public var how: String?
        public var error: String?
        /// Leftover temporary files removed from this inbox (first outcome of the target only).
        public var cleaned: [String] = []
        /// The copy between staging and its rename (internal to `run`).
        var staged: InboxCopier.Staged?
    }

    public struct Summary: Sendable {
        public var outcomes: [Outcome]
        public var seconds: Double
        /// `syncfs` calls made (0 with `sync` off, or when nothing was copied).
        public var flushes = 0
        /// Packages verified (decompressed and hashed) by this push, and those whose earlier
        /// verdict was remembered (`VerifiedCache`).
        public var verified = 0
        public var remembered = 0
        public var failed: Int { outcomes.filter { $0.state == .failed }.count }
        public var copied: Int { outcomes.filter { $0.state == .copied }.count }
        /// Bytes delivered (a copy that failed after staging does not count).
        public var bytes: Int64 { outcomes.filter { $0.state == .copied }.reduce(0) { $0 + $1.bytes } }
    }

    struct Planned: Sendable {
        var target: Target
        var decisions: [Decision] = []
        var problem: String?
    }

    /// Phase 1: the decisions for one target, from its status file and inbox listing. Read-only.
    public func plan(_ t: Target) -> (decisions: [Decision], problem: String?) {
        if let p = t.problem { return ([], p) }
        // stat, not lstat: an inbox may well be a symlink to a mounted client volume.
        let s: stat
        do { s = try Sys.statFollowing(t.inbox) } catch {
            return ([], "\(t.inbox): inbox missing or unreachable: \(Sys.reason(error))")
        }
        if (s.st_mode & S_IFMT) != S_IFDIR { return ([], "\(t.inbox): not a directory") }
        let names: [String]
        do { names = try Self.waiting(in: t.inbox) } catch { return ([], "\(error)") }
        let wants = t.wants.isEmpty ? defaultTypes.map { (type: $0, spec: defaultSpec) } : t.wants
        let decided = Self.decide(wants, catalog: catalog, statusPath: t.statusPath, waiting: names, force: force)
        // What this client's limits refuse is decided here, before anything is copied.
        let who = t.group.map { "group \($0)" } ?? "--max-tree-bytes/--delta-window"
        return (decided.map { limitCheck.adjust($0, limits: t.limits, catalog: catalog, who: who) }, nil)
    }

    /// The decisions for one client: its status file read once, then `Planner.decide` per type.
    /// `push` and `select` both decide here.
    /// `force`: send revisions the client refused before (`--force`).
    public static func decide(
        _ wants: [(type: String, spec: RevisionSpec)], catalog: Catalog,
        statusPath: String, waiting: [String], force: Bool = false
    ) -> [Decision] {
        let (status, note) = readStatus(statusPath)
        return wants.map {
            Planner.decide(
                type: $0.type, want: $0.spec, catalog: catalog, status: status?.types[$0.type],
                statusNote: note, waiting: waiting, force: force)
        }
    }

    /// The names in an inbox that may be packages (dot-names are copiers' temporaries).
    public static func waiting(in inbox: String) throws -> [String] {
        try Sys.listDirectory(inbox).filter { !$0.hasPrefix(".") }
    }

    /// The client's status, or why there is none (then full packages are sent).
    public static func readStatus(_ path: String) -> (status: ClientStatus?, note: String?) {
        guard !path.isEmpty else { return (nil, "no status file given (a new client)") }
        do {
            if let s = try ClientStatus.load(path) { return (s, nil) }
            return (nil, "no status file at \(path) (a new client, or its daemon has not run yet)")
        } catch {
            return (nil, "its status file is unreadable (\(error))")
        }
    }

    /// What `verifyOnce` found: path → failure sentence for the packages that failed, and how
    /// many were verified and how many remembered.
    public struct Verdicts: Sendable {
        public var failures: [String: String] = [:]
        public var verified = 0
        public var remembered = 0
    }

    /// Phase 2: verifies each package once. `sources`: the packages as push holds them open for
    /// copying; each is verified through its own descriptor (`sameFileAs`), so that the file
    /// verified is the file copied even if its path is renamed over meanwhile. `cache`: a
    /// package whose verdict it remembers (same file, same trust) is not verified again; one
    /// that passes is remembered.
    public static func verifyOnce(
        _ decisions: [Decision], options opts: VerifyOptions, jobs: Int,
        sources: [String: PackageSource] = [:], cache: VerifiedCache? = nil
    ) -> Verdicts {
        var wanted: [String: Decision] = [:]
        for d in decisions { if let p = d.package { wanted[p] = d } }
        let list = wanted.sorted { $0.key < $1.key }
        let result = Locked(Verdicts())
        Parallel.forEach(count: list.count, jobs: jobs) { i in
            let (path, d) = list[i]
            var o = opts
            o.expectedType = d.type
            let fd = sources[path]?.fd
            do {
                let said: (revision: UInt64, base: UInt64?)
                let found = try fd.flatMap { fd in try cache?.lookup(fd: fd, path: path, options: o) }
                if case .hit(let r) = found {
                    said = (r.revision, r.base)
                    result.withLock { $0.remembered += 1 }
                } else {
                    var before: stat? = nil
                    if case .miss(let st) = found { before = st }
                    let m = try PackageVerifier.verify(path: path, options: o, sameFileAs: fd).manifest
                    said = (m.revision, m.base)
                    result.withLock { $0.verified += 1 }
                    if let cache, let fd { cache.remember(fd: fd, path: path, before: before, options: o, manifest: m) }
                }
                if said.revision != d.revision || said.base != d.base {
                    result.withLock {
                        $0.failures[path] =
                            "\(path): its manifest says revision \(said.revision)\(said.base.map { " from \($0)" } ?? ""), its name and place in the outbox another"
                    }
                }
            } catch {
                result.withLock { $0.failures[path] = "\(error)" }
            }
        }
        cache?.prune()
        return result.withLock { $0 }
    }

    /// Plan; verify every package while staging its copies; flush each file system once;
    /// rename what verified; flush again.
    ///
    /// Verification runs on a thread of its own beside the copies, not before them: a copy is
    /// disk-bound and verification CPU-bound, so on a 2-core machine the two together take the
    /// time of the longer. Nothing becomes visible before its package verified: the copies wait
    /// under their dot-names (which clients and copiers skip), and those of a package that fails
    /// are removed, never renamed. A crash meanwhile leaves only temporaries, which the next push
    /// removes. (`--dry-run` verifies first, as it copies nothing.)
    ///
    /// One `syncfs` per file system before the renames keeps the promise of fsync-then-rename (a
    /// client never sees a package whose bytes are not on disk) at the cost of one journal commit
    /// for all the copies, where an fsync per file serialises 1,000 commits. The second makes the
    /// renames durable before `push` reports success. With `sync` off, neither: the temporary
    /// name, the verification before any rename and the rename itself stay, so no client sees a
    /// partial file while the machine runs; only a power loss can expose one.
    public func run() -> Summary {
        let t0 = Sys.monotonicSeconds()
        let targets = self.targets
        let planned = Slots<Planned>(count: targets.count)
        Parallel.forEach(count: targets.count, jobs: jobs) { i in
            let (d, p) = plan(targets[i])
            planned[i] = Planned(target: targets[i], decisions: d, problem: p)
        }
        let plans = planned.values
        let decisions = plans.flatMap(\.decisions)
        let verify = self.verify
        let jobs = self.jobs
        if dryRun {
            let v = Self.verifyOnce(decisions, options: verify, jobs: jobs)
            let outcomes = plans.map { stageTarget($0, sources: [:], unopened: [:], badPackages: v.failures) }
            return Summary(
                outcomes: outcomes.flatMap { $0 }, seconds: Sys.monotonicSeconds() - t0,
                verified: v.verified, remembered: v.remembered)
        }
        if stagger > 0 { return runStaggered(plans, t0: t0) }
        let (sources, unopened) = Self.openSources(decisions)
        // --no-sync: how many large copies will start, so that a direct copy can tell when it
        // may finish in the cache (CacheBudget.leaveDisk). An estimate: a target that fails
        // before its copies only keeps direct copies on the disk longer.
        let large = decisions.filter { d in
            d.package.flatMap { sources[$0] }.map { $0.size >= PackageSource.directMinimum } ?? false
        }.count
        // Capped copies (--bwlimit) are all paced writes through the cache: nothing to budget.
        let cache = sync || throttle != nil ? nil : CacheBudget.fromKernel(copies: large)
        let verdict = Locked(Verdicts())
        let remembered = verifiedCache
        let verifyAll: @Sendable () -> Void = {
            let v = Self.verifyOnce(decisions, options: verify, jobs: jobs, sources: sources, cache: remembered)
            verdict.withLock { $0 = v }
            cache?.verificationDone()
        }
        // On its own thread, beside the copies; on this one first if no thread can be made.
        let verifier = try? Threads.start(verifyAll)
        if verifier == nil { verifyAll() }
        let staged = Slots<[Outcome]>(count: plans.count)
        Parallel.forEach(count: plans.count, jobs: jobs) { i in
            staged[i] = stageTarget(plans[i], sources: sources, unopened: unopened, badPackages: [:], cache: cache)
        }
        if let verifier { pthread_join(verifier, nil) }
        let verdicts = verdict.withLock { $0 }
        let bad = verdicts.failures
        var outcomes = staged.values
        for i in outcomes.indices {
            for j in outcomes[i].indices {
                guard let d = outcomes[i][j].decision, d.action == .full || d.action == .delta,
                    let src = d.package, let why = bad[src]
                else { continue }
                if let s = outcomes[i][j].staged { InboxCopier.discard(s) }
                outcomes[i][j].staged = nil
                outcomes[i][j].state = .failed
                outcomes[i][j].error = "not copied: the package failed verification: \(why)"
            }
        }
        var flushes = flush(
            &outcomes, sync: sync,
            then: { o in
                do {
                    try InboxCopier.commit(o.staged!, faults: faults)
                    return nil
                } catch {
                    InboxCopier.discard(o.staged!)
                    return "\(error)"
                }
            })
        if sync { flushes += flush(&outcomes, sync: true, then: nil) }
        for i in outcomes.indices { for j in outcomes[i].indices { outcomes[i][j].staged = nil } }
        return Summary(
            outcomes: outcomes.flatMap { $0 }, seconds: Sys.monotonicSeconds() - t0, flushes: flushes,
            verified: verdicts.verified, remembered: verdicts.remembered)
    }

    /// Opens (and maps) each chosen package once for all its copies. Returns the open ones and,
    /// for the others, why.
    static func openSources(_ decisions: [Decision]) -> ([String: PackageSource], [String: String]) {
        var opened: [String: PackageSource] = [:]
        var failed: [String: String] = [:]
        for d in decisions {
            guard let p = d.package, opened[p] == nil, failed[p] == nil else { continue }
            do { opened[p] = try PackageSource(path: p) } catch { failed[p] = "\(error)" }
        }
        return (opened, failed)
    }

    /// Flushes every file system that holds a staged copy (one `syncfs` each, in parallel), marks
    /// the copies on a file system that failed as failed, then runs `then` on the others (in
    /// parallel per target); `then` returns an error sentence or nil. With `sync` false, only
    /// runs `then`. Returns the number of file systems flushed.
    @discardableResult
    func flush(_ outcomes: inout [[Outcome]], sync: Bool, then: (@Sendable (Outcome) -> String?)?) -> Int {
        var byDevice: [UInt64: String] = [:]
        if sync {
            for list in outcomes {
                for o in list { if let s = o.staged, byDevice[s.device] == nil { byDevice[s.device] = s.inbox } }
            }
        }
        let devices = byDevice.sorted { $0.key < $1.key }
        let failures = Locked<[UInt64: String]>([:])
        Parallel.forEach(count: devices.count, jobs: jobs) { i in
            do { try Sys.syncFileSystem(devices[i].value) } catch {
                failures.withLock { $0[devices[i].key] = "\(error)" }
            }
        }
        let failed = failures.withLock { $0 }
        let snapshot = outcomes
        let results = Slots<[Outcome]>(count: snapshot.count)
        Parallel.forEach(count: snapshot.count, jobs: jobs) { i in
            var list = snapshot[i]
            for j in list.indices where list[j].staged != nil && list[j].state == .copied {
                if let why = failed[list[j].staged!.device] {
                    if then != nil { InboxCopier.discard(list[j].staged!) }
                    list[j].state = .failed
                    list[j].error = why
                } else if let then, let why = then(list[j]) {
                    list[j].state = .failed
                    list[j].error = why
                }
            }
            results[i] = list
        }
        outcomes = results.values
        return devices.count
    }

    public var targets: [Target] = []

    /// Phase 3 for one target: clean leftovers, then stage what was decided (temporary files).
    /// `badPackages`: those known to have failed verification (a dry run knows them beforehand).
    func stageTarget(
        _ p: Planned, sources: [String: PackageSource], unopened: [String: String],
        badPackages: [String: String], cache: CacheBudget? = nil
    ) -> [Outcome] {
        let t = p.target
        if let problem = p.problem {
            return [Outcome(inbox: t.inbox, group: t.group, decision: nil, state: .failed, error: problem)]
        }
        var out: [Outcome] = []
        var cleaned: [String] = []
        if !dryRun {
            do {
                let dfd = try OwnedFD.openDirectory(t.inbox)
                cleaned = InboxCopier.cleanLeftovers(inboxFD: dfd.raw, inbox: t.inbox)
            } catch {
                return [Outcome(inbox: t.inbox, group: t.group, decision: nil, state: .failed, error: "\(error)")]
            }
        }
        for d in p.decisions {
            var o = Outcome(inbox: t.inbox, group: t.group, decision: d, state: .skipped)
            switch d.action {
            case .none: break
            case .error:
                o.state = .failed
                o.error = d.reason
            case .full, .delta:
                let src = d.package!
                if let why = badPackages[src] {
                    o.state = .failed
                    o.error = "not copied: the package failed verification: \(why)"
                } else if dryRun {
                    o.state = .planned
                    o.bytes = Int64((try? Sys.lstat(src))??.st_size ?? 0)
                } else if let why = unopened[src] {
                    o.state = .failed
                    o.error = why
                } else if let source = sources[src] {
                    do {
                        let name = String(src[src.index(after: src.lastIndex(of: "/")!)...])
                        let s = try InboxCopier.stage(
                            source, name: name, inbox: t.inbox, method: method, cache: cache,
                            throttle: throttle, faults: faults)
                        o.state = .copied
                        o.bytes = s.bytes
                        o.how = s.how
                        o.staged = s
                    } catch {
                        o.state = .failed
                        o.error = "\(error)"
                    }
                }
            }
            out.append(o)
        }
        if out.isEmpty { out.append(Outcome(inbox: t.inbox, group: t.group, decision: nil, state: .skipped)) }
        out[0].cleaned = cleaned
        return out
    }
}

/// Fixed slots that worker threads fill, one slot per index, read once all workers have joined.
/// Sendable as the compiler checks it: the slots are behind `Locked` (the project's mutex, which
/// ThreadSanitizer understands — see Locked.swift), taken once per target, nothing beside a copy.
final class Slots<T: Sendable>: Sendable {
    private let slots: Locked<[T?]>
    init(count: Int) {
        slots = Locked([T?](repeating: nil, count: count))
    }
    subscript(i: Int) -> T? {
        get { slots.withLock { $0[i] } }
        set { slots.withLock { $0[i] = newValue } }
    }
    /// After all workers have joined.
    var values: [T] { slots.withLock { $0.compactMap { $0 } } }
}
