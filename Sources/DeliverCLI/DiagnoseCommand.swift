import ArgumentParser
import CourierCLI
import CourierCore
import CourierDeliver
@preconcurrency import Glibc

/// `courier-deliver diagnose`: one archive for support about a delivery host. courier-deliver
/// has no configuration file and no lock of its own; what it can know is what its command
/// lines name: the policy, the outbox, the trust, the inboxes, the verification cache.
public struct DiagnoseCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "diagnose",
        abstract:
            "Write one archive for support: policy (secrets redacted), versions, outbox index, trust, inboxes and their clients' status, free space.",
        discussion: """
            Give the options your push or report uses (--policy, --outbox, --trust, --inbox). Reads \
            only; prints the archive's path. Secrets are removed before anything is written \
            (docs/OPERATIONS.md, "Diagnose"); look at the files before sending them.

            Examples:
              courier-deliver diagnose --policy /etc/courier/policy.toml \\
                  --outbox /srv/courier/outbox --trust /etc/courier/trust
              courier-deliver diagnose --inbox '/srv/clients/*/inbox' \\
                  --output /tmp/deliver.tar.gz
            """)

    @Option(help: ArgumentHelp("The policy file push and report use (docs/DELIVER.md).", valueName: "FILE"))
    var policy: String?
    @Option(help: ArgumentHelp("The outbox courier-stage writes.", valueName: "DIR"))
    var outbox: String?
    @Option(help: ArgumentHelp("The trust push verifies with (a .pub file or a directory).", valueName: "PATH"))
    var trust: String?
    @Option(
        name: .customLong("inbox"), help: ArgumentHelp("An inbox directory or glob (repeatable).", valueName: "DIR"))
    var inboxes: [String] = []
    @Option(help: ArgumentHelp("Where a client's status.json is, {inbox} being its inbox.", valueName: "TEMPLATE"))
    var statusPath: String?
    @Option(help: ArgumentHelp("push's --verify-cache directory (default: push's default).", valueName: "DIR"))
    var verifyCache: String?
    @Option(help: ArgumentHelp("Clients' status files to include, at most.", valueName: "N"))
    var maxClients: Int = 20
    @OptionGroup var common: DiagnoseOptions

    public init() {}

    public func run() throws {
        try mapErrors("courier-deliver diagnose") {
            try common.run(program: "courier-deliver", defaultLogs: ["/var/log/courier/deliver.log"]) { b in collect(b)
            }
        }
    }

    func collect(_ b: DiagnoseBundle) {
        var dirs: [(label: String, path: String)] = []
        var patterns = inboxes
        var template = statusPath ?? TargetList.defaultStatusTemplate
        if let p = policy {
            b.addFile("config/policy.toml", path: p, about: "the policy file, secrets redacted", redact: .config)
            do {
                let pol = try Policy.load(p)
                if statusPath == nil { template = pol.statusTemplate }
                patterns += pol.groups.flatMap(\.inboxes)
                let groups = pol.groups.map { g in
                    "group \(Escape.text(g.name)): inboxes \(g.inboxes.map(Escape.text).joined(separator: " ")); types \(g.types.map { "\(Escape.text($0.type))=\($0.spec)" }.joined(separator: " "))"
                }
                b.add(
                    "config/check.txt",
                    "policy loads: ok\nstatus_path: \(Escape.text(pol.statusTemplate))\n"
                        + groups.joined(separator: "\n"),
                    about: "whether the policy loads, and its groups")
            } catch let e as CourierError {
                b.add("config/check.txt", "policy does not load: \(e.description)\n", about: "whether the policy loads")
                b.note("the policy does not load: \(e.message)")
            } catch {}
        } else {
            b.add(
                "config/check.txt", "no --policy given (courier-deliver has no configuration file of its own)\n",
                about: "the policy, if any")
        }
        if let o = outbox {
            dirs.append(("outbox", o))
            let saved = b.fileLimit
            b.fileLimit = 64 << 10
            b.addFile(
                "outbox/index.json", path: o + "/index.json", about: "the outbox index (its first 64 KiB)",
                optional: true)
            b.fileLimit = saved
            b.add("outbox/listing.txt", b.listing(o), about: "the outbox's top level")
        }
        if let t = trust {
            dirs.append(("trust", t))
            b.add("keys/trust.txt", b.trustKeys(t), about: "the trusted public keys: key ids and public key lines")
        }
        let cacheDir =
            verifyCache
            ?? VerifiedCache.defaultDirectory(
                environment: ["XDG_CACHE_HOME", "HOME"].reduce(into: [String: String]()) { e, k in
                    if let v = getenv(k) { e[k] = String(cString: v) }
                })
        if let c = cacheDir {
            var text = "verify cache: \(Escape.text(c))\n"
            if let st = try? Sys.lstat(c) {
                text +=
                    "owner uid \(st.st_uid) (this user: \(Sys.effectiveUserID())), mode \(String(st.st_mode & 0o7777, radix: 8)) (push ignores it unless 0700 and yours)\n"
                text += "\(((try? Sys.listDirectory(c)) ?? []).count) record(s)\n"
            } else {
                text += "not present (push creates it on first use)\n"
            }
            b.add("verify-cache.txt", text, about: "push's verification cache: owner, mode, number of records")
        }
        // Inboxes: each matched directory once, the first maxClients with their status files.
        var seen: Set<String> = []
        var list = "# inbox patterns: \(patterns.map(Escape.text).joined(separator: " "))\n"
        var statuses = ""
        for pat in patterns {
            let matched = TargetList.expand(pat)
            if matched.isEmpty { list += "\(Escape.text(pat)): matches no directory\n" }
            for inbox in matched where seen.insert(inbox).inserted {
                let entries = (try? Sys.listDirectory(inbox)) ?? []
                let temps = entries.filter { $0.hasPrefix(".") }.count
                list +=
                    "\(Escape.text(inbox)): \(entries.count) entr\(entries.count == 1 ? "y" : "ies"), \(temps) dot-name temporar\(temps == 1 ? "y" : "ies")\(Sys.isDirectory(inbox) ? "" : " (not a readable directory)")\n"
                if seen.count <= maxClients {
                    dirs.append(("inbox", inbox))
                    let sp = TargetList.statusPath(template, inbox: inbox)
                    let text =
                        (try? Sys.readFile(sp, limit: 256 << 10)).map { String(decoding: $0, as: UTF8.self) }
                        ?? "(not present or not readable)"
                    statuses += "## \(Escape.text(sp))\n" + Escape.lines(text.trimming("\n")) + "\n\n"
                }
            }
        }
        if seen.count > maxClients { list += "… status files of the first \(maxClients) only (--max-clients)\n" }
        b.add("inboxes/listing.txt", list, about: "every inbox the patterns match: entries and leftover temporaries")
        b.add(
            "inboxes/status.txt", statuses.isEmpty ? "no inbox given\n" : statuses,
            about: "the clients' status.json (first \(maxClients))")
        b.add("disk.txt", SystemFacts.diskUsage(dirs), about: "free space and inodes of the outbox, trust and inboxes")
    }
}
