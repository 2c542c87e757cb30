import ArgumentParser
import CourierCLI
import CourierCore
import CourierInbox

/// `courier-inboxd diagnose`: one archive with what support asks a client for (docs/OPERATIONS.md,
/// "Diagnose"). Reads only; works beside a running daemon and on a broken installation.
public struct DiagnoseCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "diagnose",
        abstract:
            "Write one archive for support: config (secrets redacted), versions, logs, status, quarantine reasons, lock, free space.",
        discussion: """
            Reads only; safe beside a running daemon. Prints the archive's path. Secrets are removed \
            before anything is written (docs/OPERATIONS.md, "Diagnose"); look at the files before \
            sending them.

            Examples:
              courier-inboxd diagnose --config /etc/courier/inboxd.toml
              courier-inboxd diagnose --config inboxd.toml \\
                  --log-file /var/log/courier/inboxd.log --output /tmp/client.tar.gz
            """)

    @Option(help: ArgumentHelp("The configuration file (docs/INBOXD.md).", valueName: "FILE"))
    var config: String = "/etc/courier/inboxd.toml"
    @OptionGroup var common: DiagnoseOptions

    public init() {}

    public func run() throws {
        try mapErrors("courier-inboxd diagnose") {
            try common.run(program: "courier-inboxd", defaultLogs: ["/var/log/courier/inboxd.log"]) { b in
                b.addFile(
                    "config/inboxd.toml", path: config, about: "the configuration file, secrets redacted",
                    redact: .config)
                guard let cfg = b.checkConfig({ try InboxConfig.load(config) }) else { return }
                Self.collect(cfg, into: b, lines: common.lines)
            }
        }
    }

    static func collect(_ cfg: InboxConfig, into b: DiagnoseBundle, lines: Int) {
        // Paths only (StateFiles would create the directory: diagnose changes nothing).
        let statusPath = cfg.stateDir + "/status.json"
        let historyPath = cfg.stateDir + "/history.jsonl"
        let pinsPath = cfg.stateDir + "/pins.json"
        b.add("config/effective.txt", effective(cfg), about: "the paths and settings the daemon uses, after defaults")
        b.addFile(
            "status/status.json", path: statusPath, about: "status.json: what the client holds, per type",
            optional: true)
        let history: String
        if let tail = try? Sys.tailLines(historyPath, lines: lines) {
            history =
                "# last \(tail.count) line(s) of \(Escape.text(historyPath))\n"
                + tail.map(Escape.line).joined(separator: "\n")
        } else {
            history = "# \(Escape.text(historyPath)): not present or not readable\n"
        }
        b.add("status/history.tail", history, about: "the last \(lines) lines of history.jsonl")
        b.addFile("status/pins.json", path: pinsPath, about: "pins.json: revisions pinned locally", optional: true)
        b.add(
            "status/lock.txt", SystemFacts.lockHolder(cfg.stateDir + "/lock"),
            about: "the state lock (flock on state_dir/lock, held only during a pass) and its holder")
        b.add("quarantine/listing.txt", b.listing(cfg.quarantine), about: "the quarantine directory")
        b.add(
            "quarantine/reasons.txt", reasons(cfg.quarantine, limit: 200),
            about: "every *.reason.json (newest 200), one block each")
        b.add(
            "inbox/listing.txt", b.listing(cfg.inbox),
            about: "what waits in the inbox (dot-names are copiers' temporaries)")
        var store = b.listing(cfg.store)
        for t in ((try? Sys.listDirectory(cfg.store)) ?? []).sorted() where Sys.isDirectory(cfg.store + "/" + t) {
            store += "\n" + b.listing(cfg.store + "/" + t, limit: 50)
        }
        b.add("store/listing.txt", store, about: "store/<type>/: revisions kept and where current points")
        b.add("keys/trust.txt", b.trustKeys(cfg.trust), about: "the trusted public keys: key ids and public key lines")
        b.add(
            "disk.txt",
            SystemFacts.diskUsage([
                ("inbox", cfg.inbox), ("store", cfg.store), ("state_dir", cfg.stateDir),
                ("quarantine", cfg.quarantine), ("trust", cfg.trust),
            ]),
            about: "free space and inodes of every configured directory")
    }

    static func effective(_ c: InboxConfig) -> String {
        var out = """
            config: \(Escape.text(c.path))
            inbox: \(Escape.text(c.inbox))
            store: \(Escape.text(c.store))
            state_dir: \(Escape.text(c.stateDir))
            quarantine: \(Escape.text(c.quarantine))
            trust: \(Escape.text(c.trust)) (threshold \(c.threshold))
            clock_skew: \(c.clockSkew) s, delta_wait: \(c.deltaWait) s, poll: \(c.poll == 0 ? "inotify" : "\(c.poll) s")
            accept_unknown_types: \(c.acceptUnknownTypes)

            """
        for (name, t) in c.types.sorted(by: { $0.key < $1.key }) {
            out +=
                "type \(Escape.text(name)): keep \(t.keep), test_command \(t.testCommand == nil ? "none" : "set") (timeout \(t.testTimeout) s), apply_command \(t.applyCommand == nil ? "none" : "set") (timeout \(t.applyTimeout) s), rollback_on_apply_failure \(t.rollbackOnApplyFailure)\n"
        }
        return out
    }

    /// The reason files, newest first by name order of their time stamps (they carry `at`).
    static func reasons(_ dir: String, limit: Int) -> String {
        guard let names = try? Sys.listDirectory(dir) else {
            return "# \(Escape.text(dir)): not present or not readable\n"
        }
        let files = names.filter { $0.hasSuffix(".reason.json") || $0.hasSuffix(".reason") }
        let dated = files.map { n -> (String, Int64) in
            (n, (try? Sys.lstat(dir + "/" + n)).map { Int64($0.st_mtim.tv_sec) } ?? 0)
        }.sorted { $0.1 > $1.1 }
        var out = "# \(files.count) reason file(s) in \(Escape.text(dir))\n"
        for (n, _) in dated.prefix(limit) {
            let text =
                (try? Sys.readFile(dir + "/" + n, limit: 64 << 10)).map { String(decoding: $0, as: UTF8.self) }
                ?? "(not readable)"
            out += "\n## \(Escape.text(n))\n" + Escape.lines(text.trimming("\n")) + "\n"
        }
        if files.count > limit { out += "\n… \(files.count - limit) older reason file(s) not included\n" }
        return out
    }
}
