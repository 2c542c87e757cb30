import ArgumentParser
import CourierCLI
import CourierCore
import CourierDeliver
@preconcurrency import Glibc

public struct PushCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Copy the right package (delta or full) into every client inbox, atomically and in parallel.",
        discussion: """
            For each inbox and type, push reads the client's status.json and sends the delta whose \
            base the client holds, else the full package; nothing when the client has that revision, \
            when a package of it already waits in the inbox, when the client is pinned elsewhere, or \
            when it holds a newer revision (a rollback needs a pin on the client). Every package is \
            verified once, beside the copies: one that fails is renamed into no inbox (its \
            temporary copies are removed), so a broken outbox does not spread. A package that \
            passed is remembered (--verify-cache) and not verified again while the file and the \
            trust store are unchanged; its expiry is checked each time.

            Copies go to a dot-named temporary file in the inbox (reflink; else the blocks reserved \
            first, so a full disk fails at once, then direct I/O on a local disk, the page cache \
            with --no-sync, copy_file_range, or read/write; a hard link with --link), mode 0644; \
            each file system is flushed once (syncfs) \
            before the renames: a client never sees a half-written package, nor one whose bytes are \
            not on disk. Leftovers of an interrupted push are removed at the next one. \
            A failing inbox (missing, read-only, full, permission denied) is reported; the others go on.

            --no-sync skips both flushes: every package is still verified before any rename, \
            written under a dot-name and renamed, so no client sees a partial file while the machine \
            runs; but the bytes reach the disk only with the kernel's write-back (within about 30 s). \
            After a power loss before that, an inbox may hold a package that is empty, truncated or \
            partly zeros (or lack it): its client's daemon refuses it on verification (malformed or \
            integrity), moves it to quarantine/ with a reason and keeps its current revision, and \
            the next push sends that revision again (the full package, for a delta the client names \
            in last_error). For inboxes made durable by a later step (sync, a snapshot) or on tmpfs.

            Client limits: push refuses for an inbox a package its client would refuse under its \
            max_tree_bytes or delta_window (inboxd.toml): a policy file gives them per group (or \
            for all groups at its top), --max-tree-bytes and --delta-window for the inboxes named \
            by --inbox and --inboxes-from; courier-inboxd's defaults otherwise. A delta over the \
            client's delta_window is replaced by the full package; a package over its limits is \
            not copied, and that inbox is reported FAILED with the package, the limit and the size.

            Examples:
              courier-deliver push --outbox /srv/courier/outbox \\
                  --trust /etc/courier/trust --inbox '/mnt/clients/*/inbox'
              courier-deliver push --outbox /srv/courier/outbox \\
                  --trust /etc/courier/trust --policy /etc/courier/policy.toml --dry-run

            Exit codes: 0 every target done, 16 done with errors (see the FAILED lines), 2 bad policy \
            file, 7 bad trust store, 12 outbox unreadable, 64 usage.
            """)

    @OptionGroup var source: OutboxOptions
    @OptionGroup var trust: TrustOptions
    @OptionGroup var inboxOptions: InboxOptions
    @OptionGroup(title: "Client limits (of the inboxes named by --inbox and --inboxes-from)")
    var clientLimits: ClientLimitOptions
    @Flag(help: "Print the plan (what would go where, delta or full, and why); copy nothing.")
    var dryRun = false
    @Option(help: "Inboxes handled at once.")
    var jobs: Int = 8
    @Flag(
        help:
            "Hard-link packages from the outbox instead of copying them (same file system; outbox packages are immutable). Falls back to a copy where a link is impossible."
    )
    var link = false
    @Flag(
        help:
            "Do not flush the copies to disk (no syncfs) before renaming them into place; still verified first, still atomic while the machine runs. A power loss may leave torn packages, which clients quarantine (see above)."
    )
    var noSync = false
    @Option(
        help: ArgumentHelp(
            "Remember here which packages verified, so that the next push of the same unchanged file does not verify it again.",
            discussion:
                "Default: $XDG_CACHE_HOME/courier/verified or ~/.cache/courier/verified. The directory must be yours and writable by nobody else. A record is tied to the file's inode, size and change time and to the trust store; expiry is checked again every time.",
            valueName: "dir"))
    var verifyCache: String?
    @Flag(help: "Verify every package, remembering nothing.")
    var noVerifyCache = false
    @Option(
        help: ArgumentHelp(
            "Cap the bandwidth of the whole run at RATE bytes per second, shared by all its parallel copies: 500K, 2M, 1G (a bare number is KiB/s, as rsync's).",
            discussion:
                "Under a cap every copy goes through the page cache in accounted writes: no reflink, copy_file_range or direct I/O (whose bytes a cap cannot pace); --link is not paced (a hard link moves no bytes). Verification reads the outbox locally and is not counted.",
            valueName: "RATE"))
    var bwlimit: String?
    @Option(
        help: ArgumentHelp(
            "Spread the inboxes' copies over this window (90s, 15m, 1h): each inbox is copied, flushed and renamed at its own slot, so clients do not all receive and reload at once.",
            discussion:
                "Slots are evenly spaced and ordered by a hash of the inbox path, so a rerun gives every inbox the same slot. Packages are then verified before the first copy, and each inbox is flushed on its own. At its slot each client is decided again from its status.json and inbox: one that meanwhile got the revision gets nothing, and one that now needs another package is reported 'changed' (push again).",
            valueName: "DURATION"))
    var stagger: String?
    @Flag(
        help: ArgumentHelp(
            "Send a revision the client refused before (status.json's refused list: its test or apply command failed on it); without it such a client is skipped with code 'refused'."
        ))
    var force = false
    @Flag(help: "One JSON object per inbox and type, one per line.")
    var json = false
    @Flag(help: "Print only failures and the summary.")
    var quiet = false

    public init() {}

    public func validate() throws {
        if !inboxOptions.given { throw ValidationError("name the inboxes: --inbox, --inboxes-from or --policy") }
        if jobs < 1 || jobs > 256 { throw ValidationError("--jobs must be from 1 to 256") }
        if noVerifyCache && verifyCache != nil {
            throw ValidationError("--verify-cache and --no-verify-cache exclude each other")
        }
        _ = try bandwidthCap()
        _ = try staggerWindow()
        if clientLimits.given && inboxOptions.inboxes.isEmpty && inboxOptions.inboxesFrom == nil {
            throw ValidationError(
                "--max-tree-bytes and --delta-window apply to --inbox and --inboxes-from; a policy file sets max_tree_bytes and delta_window per group"
            )
        }
        if inboxOptions.policy != nil && source.revision != nil {
            throw ValidationError("--revision does not go with --policy: the policy names the revisions")
        }
    }

    public func run() throws {
        var failedCount = 0
        try mapErrors("courier-deliver push") {
            let catalog = try source.catalog()
            let targets = try inboxOptions.targets(
                types: source.types, spec: source.spec, limits: try clientLimits.limits())
            // Verified once under the loosest limits; each inbox's own are checked per inbox.
            let verify = try trust.verifyOptions(limits: Limits.loosest(targets.map(\.limits)))
            var p = Pusher(
                catalog: catalog, verify: verify,
                defaultTypes: source.types.isEmpty ? catalog.types.keys.sorted() : source.types)
            p.defaultSpec = source.spec
            p.jobs = jobs
            p.method = link ? .link : .copy
            p.dryRun = dryRun
            p.sync = !noSync
            p.targets = targets
            p.verifiedCache = try openVerifyCache()
            p.force = force
            p.throttle = try bandwidthCap().map { Throttle(bytesPerSecond: $0) }
            p.stagger = Double(try staggerWindow())
            if p.targets.isEmpty { throw CourierError(.usage, "no inbox to deliver to") }
            let summary = p.run()
            print(render(summary), terminator: "")
            failedCount = summary.failed
        }
        if failedCount > 0 { throw ExitCode(ExitStatus.partial.rawValue) }
    }

    /// `--bwlimit` in bytes per second, or nil; a bad value is a usage error naming the option.
    func bandwidthCap() throws -> Int64? {
        guard let bwlimit else { return nil }
        do { return try Throttle.parseRate(bwlimit, what: "--bwlimit") } catch let e as CourierError {
            throw ValidationError(e.message)
        }
    }

    /// `--stagger` in seconds (0: none).
    func staggerWindow() throws -> Int64 {
        guard let stagger else { return 0 }
        return try parseDuration(stagger, option: "--stagger")
    }

    /// The verification cache: the one named (an unsafe one is an error), else the default (an
    /// unsafe or uncreatable one only costs a warning: every package is then verified).
    func openVerifyCache() throws -> VerifiedCache? {
        if noVerifyCache || dryRun { return nil }
        if let dir = verifyCache { return try VerifiedCache(dir: Sys.absolutePath(dir)) }
        let env = ["XDG_CACHE_HOME", "HOME"].reduce(into: [String: String]()) { e, k in
            if let v = getenv(k) { e[k] = String(cString: v) }
        }
        guard let dir = VerifiedCache.defaultDirectory(environment: env) else { return nil }
        do { return try VerifiedCache(dir: dir) } catch {
            printError("courier-deliver push: warning: not remembering verifications: \(error)")
            return nil
        }
    }

    func render(_ s: Pusher.Summary) -> String {
        var out = ""
        for o in s.outcomes {
            if json {
                out += DeliverJSON.push(o) + "\n"
                continue
            }
            for c in o.cleaned { out += "cleaned   \(o.inbox)/\(c) (left by an interrupted push)\n" }
            if quiet && o.state != .failed { continue }
            guard let d = o.decision else {
                if o.state == .failed { out += "FAILED    \(o.inbox)  \(o.error ?? "")\n" }
                continue
            }
            let what = "\(d.type) \(d.revision.map(String.init) ?? "?")"
            let group = o.group.map { "[\($0)] " } ?? ""
            switch o.state {
            case .copied:
                let kind = d.action == .delta ? "delta from \(d.base!)" : "full"
                out +=
                    "copied    \(group)\(o.inbox)  \(what)  \(kind), \(human(o.bytes)) by \(o.how ?? "copy") — \(d.reason)\n"
            case .planned:
                let kind = d.action == .delta ? "delta from \(d.base!)" : "full"
                out += "would copy \(group)\(o.inbox)  \(what)  \(kind), \(human(o.bytes)) — \(d.reason)\n"
            case .skipped:
                out += "nothing   \(group)\(o.inbox)  \(what)  \(d.code): \(d.reason)\n"
            case .failed:
                out += "FAILED    \(group)\(o.inbox)  \(what)  \(o.error ?? d.reason)\n"
            }
        }
        if json { return out }
        let inboxes = Set(s.outcomes.map(\.inbox)).count
        var counts: [String: Int] = [:]
        for o in s.outcomes where o.state == .skipped { if let d = o.decision { counts[d.code, default: 0] += 1 } }
        let skipped = counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        let planned = s.outcomes.filter { $0.state == .planned }
        let verb =
            dryRun
            ? "\(planned.count) would be copied (\(human(planned.reduce(0) { $0 + $1.bytes })))"
            : "\(s.copied) copied (\(human(s.bytes)))"
        let flushed = noSync && !dryRun && s.copied > 0 ? " (not flushed to disk: --no-sync)" : ""
        let checked = s.verified + s.remembered
        let verified =
            checked == 0
            ? ""
            : ", \(checked) package\(checked == 1 ? "" : "s") verified"
                + (s.remembered == 0 ? "" : " (\(s.remembered) remembered from an earlier push)")
        out +=
            "push: \(inboxes) inbox\(inboxes == 1 ? "" : "es"), \(verb)\(flushed)\(skipped.isEmpty ? "" : ", nothing to do: " + skipped)\(verified), \(s.failed) failed, in \(String(format3: s.seconds)) s\n"
        return out
    }

}
