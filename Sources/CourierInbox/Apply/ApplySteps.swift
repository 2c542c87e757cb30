import CourierCore
@preconcurrency import Glibc
import Logging

/// One package through the pipeline, step by step: read and verify → decide (`Acceptance`) →
/// build the tree → test → switch → commit (`committed`). Each step either hands the next what
/// it needs or ends with the package's outcome; the steps before the switch change nothing the
/// client runs on, so any of them can stop without undoing anything.
extension InboxProcessor {
    /// A package read and verified, with its type's settings and what the store has installed.
    struct Candidate {
        let name: String
        let path: String
        /// The inbox entry when first looked at: a refusal checks that it did not change since.
        let identity: InboxEntry.Identity?
        let reader: PackageReader
        let tc: InboxConfig.TypeConfig
        let installed: UInt64?
        /// When the package was first read (monotonic): the apply's duration in history.
        let t0: Double
        var m: Manifest { reader.manifest }
        /// The signed manifest's facts, as the acceptance rule takes them.
        var facts: Acceptance.Package {
            .init(type: m.type, revision: m.revision, base: m.kind == .delta ? m.base : nil)
        }
    }

    /// A step's result: go on with a value, or stop with the package's outcome.
    enum Step<T> {
        case next(T)
        case done(Outcome)
    }

    func judge(_ name: String) -> Outcome {
        let c: Candidate
        switch read(name) {
        case .done(let o): return o
        case .next(let v): c = v
        }
        if let o = decide(c) { return o }
        let tmp = store.tempDir(c.m.type, c.m.revision)
        do {
            try build(c, into: tmp)
            if let o = try test(c, tree: tmp) { return o }
            try switchIn(c, from: tmp)
        } catch {
            try? Sys.removeTree(tmp)
            return failedApplying(c, error)
        }
        // The commit point is passed: `current` names the new tree. Nothing below refuses the
        // package (except a failed apply command that switched back), and no failure to write
        // the state undoes it: the state is derived from `current` and repaired (`reconcile`).
        return committed(c.path, c.name, c.m, installed: c.installed, tc: c.tc, t0: c.t0)
    }

    /// Step 1: what the name is (only a regular file is read), the package verified (signature,
    /// expiry, limits), its type configured.
    func read(_ name: String) -> Step<Candidate> {
        let path = config.inbox + "/" + name
        let (kind, id0) = InboxEntry.inspect(path)
        switch kind {
        case .missing:
            forget(name)
            return .done(.skipped)
        case .regular: break
        default: return .done(refuseEntry(name, kind))
        }
        let t0 = Sys.monotonicSeconds()
        var opts = VerifyOptions(trust: trust, limits: config.limits)
        opts.clockSkew = config.clockSkew
        let reader: PackageReader
        do { reader = try PackageReader(path: path, options: opts) } catch let e as CourierError {
            return .done(failed(path, e, type: nil, revision: nil, identity: id0))
        } catch {
            return .done(failed(path, CourierError(.malformed, "\(error)"), type: nil, revision: nil, identity: id0))
        }
        let m = reader.manifest
        guard let tc = config.typeConfig(m.type) else {
            return .done(
                refuse(
                    path, .wrongType,
                    "content type '\(m.type)' is not configured on this client (add [types.\(m.type)] to \(config.path))",
                    type: m.type, revision: m.revision))
        }
        return .next(
            Candidate(
                name: name, path: path, identity: id0, reader: reader, tc: tc,
                installed: store.current(m.type), t0: t0))
    }

    /// Step 2: accept, or stop as a duplicate, a refusal (quarantined as `rollback`), or a delta
    /// waiting for its base (kept in the inbox; refused after `delta_wait`).
    func decide(_ c: Candidate) -> Outcome? {
        let first = waiting[c.name] ?? Sys.monotonicSeconds()
        let over = Sys.monotonicSeconds() - first >= Double(config.deltaWait)
        // The rule with this client's facts (`Acceptance.Client.onClient`: a refused revision that
        // arrives again is tried again).
        switch Acceptance.decide(c.facts, .onClient(status.types[c.m.type], installed: c.installed, baseWaitOver: over))
        {
        case .accept:
            waiting[c.name] = nil
            return nil
        case .duplicate:
            waiting[c.name] = nil
            warnIfCorruptDuplicate(c)
            return duplicate(c.path, c.m.type, c.m.revision)
        case .wait(let why):
            waiting[c.name] = first
            return .waiting(why)
        case .refuse(let rule, var why):
            waiting[c.name] = nil
            if rule == .baseMissing && over { why += " after waiting \(config.deltaWait) s" }
            return refuse(c.path, .rollback, why, type: c.m.type, revision: c.m.revision)
        }
    }

    /// A duplicate is removed whatever its payload holds (the installed tree is what counts), but
    /// a copy that fails verification says that a copier or a disk corrupts packages: that is
    /// logged as a warning rather than removed in silence. Not while a writer still holds the
    /// file (`duplicate` leaves it then, and a half-written copy is no sign of corruption).
    func warnIfCorruptDuplicate(_ c: Candidate) {
        guard !InboxEntry.hasWriter(c.path) else { return }
        do { try c.reader.verifyPayload() } catch {
            logger.warning(
                "\(Escape.text(c.name)): \(c.m.type) \(c.m.revision) is already installed, but this copy is corrupt (\(error)); removing it: check the copier and the disk that delivered it"
            )
        }
    }

    /// Step 3: the new tree under `<revision>.tmp` — a full package extracted, a delta applied on
    /// a copy of the current tree — and checked against the manifest.
    func build(_ c: Candidate, into tmp: String) throws {
        let t = c.m.type
        try Sys.mkdirs(store.typeDir(t))
        try Sys.removeTree(tmp)
        if c.m.kind == .full {
            try Sys.mkdir(tmp)
            try SafeExtractor.extract(c.reader, into: tmp, durable: false)
            // Every byte was hashed on its way into a file created here (O_EXCL, empty
            // directory): the check is for the set of files, their sizes and modes.
            try TreeChecker.check(tmp, against: c.m.files, limits: config.limits, hashes: false)
        } else {
            try DeltaApplier.apply(
                c.reader, base: store.revisionDir(t, c.installed!), to: tmp,
                copyMode: c.tc.hardlinkUnchanged ? .hardlink : .copy, durable: false)
        }
        try faults.hit("after-extract")
    }

    /// Step 4: the type's test command on the new tree; a failure refuses the package (and
    /// records the revision as refused: the content failed, whichever package carried it).
    func test(_ c: Candidate, tree tmp: String) throws -> Outcome? {
        guard let cmd = c.tc.testCommand else { return nil }
        let t = c.m.type
        let out = try CommandRunner.run(
            cmd, environment: env(t, c.m.revision, tmp, c.installed), timeout: c.tc.testTimeout, record: commandRecord)
        if out.ok { return nil }
        try? Sys.removeTree(tmp)
        let why = out.timedOut ? "timed out after \(c.tc.testTimeout) s" : "exited \(out.status)"
        return refuse(
            c.path, .applyFailed,
            "test command \(why); kept revision \(c.installed.map(String.init) ?? "none")\(out.output.isEmpty ? "" : ": " + Escape.text(out.output))",
            type: t, revision: c.m.revision, package: c.facts)
    }

    /// Step 5: the tree renamed into place and `current` switched to it: the commit point.
    func switchIn(_ c: Candidate, from tmp: String) throws {
        let t = c.m.type
        let final = store.revisionDir(t, c.m.revision)
        try store.removeRevision(t, c.m.revision)
        try Sys.writeFileAtomically(store.manifestPath(t, c.m.revision), c.reader.manifestBytes, durable: false)
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
        try store.switchCurrent(t, to: c.m.revision, durable: false, faults: faults)
    }
}
