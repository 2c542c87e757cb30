import ArgumentParser
import CourierCLI
import CourierCore
import CourierInbox
import CourierPull

/// `courier-pull diagnose`: one archive with what support asks a pull client or a relay for
/// (docs/OPERATIONS.md, "Diagnose"). Reads only; safe beside a running pass, and on a broken
/// installation. One command for both roles: `--config` names a pull.toml or a relay.toml,
/// told apart by loading (``Role/load(_:)``), so the operator need not say which.
public struct PullDiagnoseCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "diagnose",
        abstract:
            "Write one archive for support: config (secrets redacted), versions, logs, pull or relay state, lock, free space.",
        discussion: """
            Reads only; safe beside a running pass. Prints the archive's path. --config names a \
            pull.toml (then the inboxd.toml it names, the client's inbox and status, the cached \
            index.json and its validators are included) or a relay.toml (then the mirror \
            directory's index.json and revisions). Secrets (proxy password, URL user:password@, \
            tokens) are removed before anything is written (docs/OPERATIONS.md, "Diagnose"); look \
            at the files before sending them.

            Examples:
              courier-pull diagnose --config /etc/courier/pull.toml
              courier-pull diagnose --config /etc/courier/relay.toml \\
                  --log-file /var/log/courier-relay/relay.log --output /tmp/relay.tar.gz
            """)

    @Option(
        help: ArgumentHelp("A pull.toml or a relay.toml (docs/DELIVER.md, \"Pull\" and \"Relays\").", valueName: "FILE")
    )
    var config: String = "/etc/courier/pull.toml"
    @OptionGroup var common: DiagnoseOptions

    public init() {}

    /// What `--config` turned out to be.
    enum Role {
        case pull(PullConfig)
        case relay(RelayConfig)
        case broken(CourierError, relay: Bool)

        /// A pull.toml needs `inboxd_config`, a relay.toml `root` and `upstream`; the two key
        /// sets are disjoint, so whichever loads is the role. When neither loads, the error shown
        /// is the one of the role the file's top-level keys suggest.
        static func load(_ path: String) -> Role {
            do { return .pull(try PullConfig.load(path)) } catch let pullError as CourierError {
                do { return .relay(try RelayConfig.load(path)) } catch let relayError as CourierError {
                    return looksLikeRelay(path) ? .broken(relayError, relay: true) : .broken(pullError, relay: false)
                } catch { return .broken(CourierError(.config, "\(path): \(error)"), relay: false) }
            } catch { return .broken(CourierError(.config, "\(path): \(error)"), relay: false) }
        }

        /// A top-level `upstream =` or `root =` line (before any table header).
        static func looksLikeRelay(_ path: String) -> Bool {
            guard let bytes = try? Sys.readFile(path, limit: 1 << 20) else { return false }
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
                let t = line.trimming(" \t")
                if t.hasPrefix("[") { break }
                if t.hasPrefix("upstream") || t.hasPrefix("root") { return true }
            }
            return false
        }
    }

    public func run() throws {
        try mapErrors("courier-pull diagnose") {
            let role = Role.load(config)
            let isRelay: Bool
            switch role {
            case .pull: isRelay = false
            case .relay: isRelay = true
            case .broken(_, let r): isRelay = r
            }
            // The relay unit's log (its own LogsDirectory=), then the cron line's; those that exist are read.
            let defaultLogs =
                isRelay
                ? ["/var/log/courier-relay/relay.log", "/var/log/courier/relay.log"] : ["/var/log/courier/pull.log"]
            let logs = common.logs(defaults: defaultLogs)
            try common.run(program: "courier-pull", defaultLogs: defaultLogs) { b in
                b.addFile(
                    isRelay ? "config/relay.toml" : "config/pull.toml", path: config,
                    about: "the configuration file (\(isRelay ? "a relay's" : "a pull client's")), secrets redacted",
                    redact: .config)
                b.add(
                    "state/last-run.txt", Self.lastSummaries(logs),
                    about: "the last passes' summary lines from the log file(s)")
                switch role {
                case .broken(let e, _):
                    b.add(
                        "config/check.txt", "configuration does not load: \(e.description)\n",
                        about: "whether the configuration loads")
                    b.note("the configuration does not load, so its directories are not examined: \(e.message)")
                case .pull(let cfg):
                    b.add(
                        "config/check.txt", "configuration loads: ok (a pull client's pull.toml)\n",
                        about: "whether the configuration loads")
                    Self.collect(cfg, into: b, logs: logs)
                case .relay(let cfg):
                    b.add(
                        "config/check.txt", "configuration loads: ok (a relay's relay.toml)\n",
                        about: "whether the configuration loads")
                    Self.collect(cfg, into: b, logs: logs)
                }
            }
        }
    }

    /// The `summary:` lines `run` and `mirror` append to their --log-file, the last five.
    static func lastSummaries(_ logs: [String]) -> String {
        var found: [String] = []
        for l in logs {
            let lines = (try? Sys.tailLines(l, lines: 20_000, maxBytes: 16 << 20)) ?? []
            found += lines.filter { $0.contains("] summary: ") }
        }
        return found.isEmpty
            ? "no summary line found in the log file(s) (passes write one with --log-file)\n"
            : found.suffix(5).map(Escape.line).joined(separator: "\n") + "\n"
    }

    static func http(_ h: PullHTTP) -> String {
        "http.proxy: \(h.proxy.map(Escape.text) ?? "none"), proxy_user: \(h.proxyUser.map(Escape.text) ?? "none")\(h.proxyPassword == nil ? "" : " (with a proxy password)")\n"
            + "http: connect_timeout \(h.connectTimeout) s, read_timeout \(h.readTimeout) s, retry_for \(h.retryFor) s, max_bytes \(h.maxBytes), ca_file \(h.caFile.map(Escape.text) ?? "none"), ca_dir \(h.caDir.map(Escape.text) ?? "none"), ca_mode \(h.caMode)\n"
    }

    /// The fetcher's and the conditional GET's state files: what it remembers between passes.
    static func addState(_ dir: String, into b: DiagnoseBundle) {
        b.add("state/listing.txt", b.listing(dir), about: "the pull/relay state directory")
        b.addFile(
            "state/index.state.json", path: dir + "/index.state.json",
            about: "the cached index.json's validators (ETag, Last-Modified) and the mirror that sent it",
            optional: true)
        let saved = b.fileLimit
        b.fileLimit = 64 << 10
        b.addFile(
            "state/index.json", path: dir + "/index.json",
            about: "the cached index.json of the last pass (its first 64 KiB)", optional: true)
        b.fileLimit = saved
        for (f, what) in [
            ("cooldown.json", "hosts in a cool-down (Retry-After, 429/503) and until when"),
            ("mirrors.json", "mirrors demoted after a failure, and until when"),
            ("contact.json", "when each host last answered"),
        ] {
            b.addFile("state/\(f)", path: dir + "/" + f, about: "the fetcher's \(f): \(what)", optional: true)
        }
        b.add(
            "state/lock.txt", SystemFacts.lockHolder(dir + "/lock"),
            about: "the pass lock (flock on <state_dir>/lock, held only during a pass) and its holder")
    }

    static func logDirs(_ logs: [String]) -> [(label: String, path: String)] {
        logs.compactMap { l in l.lastIndex(of: "/").map { ("log", String(l[..<$0])) } }
    }

    static func collect(_ cfg: PullConfig, into b: DiagnoseBundle, logs: [String]) {
        var eff = """
            config: \(Escape.text(cfg.path))
            role: pull client
            inboxd_config: \(Escape.text(cfg.inboxdConfig))
            mirrors: \(cfg.mirrors.map(Escape.text).joined(separator: " "))
            types: \(cfg.types.isEmpty ? "those of inboxd.toml" : cfg.types.map(Escape.text).joined(separator: ", "))
            bwlimit: \(cfg.bwlimit.map { "\($0) bytes/s" } ?? "none"), splay: \(cfg.splay) s

            """
        eff += http(cfg.http)
        b.addFile(
            "config/inboxd.toml", path: cfg.inboxdConfig,
            about: "the client's inboxd.toml that pull.toml names, secrets redacted", redact: .config)
        let inbox: InboxConfig
        do {
            inbox = try InboxConfig.load(cfg.inboxdConfig)
        } catch {
            let message = (error as? CourierError)?.description ?? "\(error)"
            eff += "inboxd.toml does not load: \(message)\n"
            b.add(
                "config/effective.txt", eff,
                about: "the paths and settings the pull uses, after defaults (URLs redacted)")
            b.note("the inboxd.toml that pull.toml names does not load, so the client's directories are not examined")
            if let s = cfg.stateDir { addState(s, into: b) }
            return
        }
        let stateDir = cfg.stateDir ?? inbox.stateDir + "/pull"
        eff += "state_dir: \(Escape.text(stateDir))\(cfg.stateDir == nil ? " (default: inboxd state_dir/pull)" : "")\n"
        eff +=
            "inbox: \(Escape.text(inbox.inbox)), inboxd state_dir: \(Escape.text(inbox.stateDir)), trust: \(Escape.text(inbox.trust)) (threshold \(inbox.threshold))\n"
        b.add(
            "config/effective.txt", eff, about: "the paths and settings the pull uses, after defaults (URLs redacted)")
        addState(stateDir, into: b)
        b.addFile(
            "client/status.json", path: inbox.stateDir + "/status.json",
            about: "the client's status.json, from which the pull chooses delta or full", optional: true)
        b.add(
            "client/inbox.txt", b.listing(inbox.inbox),
            about: "what waits in the inbox (.<name>.part: a download in progress or to resume)")
        b.add(
            "keys/trust.txt", b.trustKeys(inbox.trust),
            about: "the client's trusted public keys: key ids and public key lines")
        b.add(
            "disk.txt",
            SystemFacts.diskUsage(
                [("inbox", inbox.inbox), ("state_dir", stateDir), ("inboxd state_dir", inbox.stateDir)] + logDirs(logs)),
            about: "free space and inodes of the inbox, the pull state and the client's state")
    }

    static func collect(_ cfg: RelayConfig, into b: DiagnoseBundle, logs: [String]) {
        var eff = """
            config: \(Escape.text(cfg.path))
            role: relay
            root: \(Escape.text(cfg.root))
            upstream: \(cfg.upstream.map(Escape.text).joined(separator: " "))
            trust: \(Escape.text(cfg.trust)) (threshold \(cfg.threshold)), clock_skew: \(cfg.clockSkew) s
            types: \(cfg.types.isEmpty ? "every type upstream lists" : cfg.types.map(Escape.text).joined(separator: ", ")), revisions: \(cfg.revisions)
            state_dir: \(Escape.text(cfg.stateDir))
            bwlimit: \(cfg.bwlimit.map { "\($0) bytes/s" } ?? "none")

            """
        eff += http(cfg.http)
        b.add(
            "config/effective.txt", eff, about: "the paths and settings the relay uses, after defaults (URLs redacted)")
        addState(cfg.stateDir, into: b)
        let saved = b.fileLimit
        b.fileLimit = 64 << 10
        b.addFile(
            "mirror/index.json", path: cfg.root + "/index.json",
            about: "the mirror directory's index.json as served (its first 64 KiB)", optional: true)
        b.fileLimit = saved
        var tree = b.listing(cfg.root)
        for t in ((try? Sys.listDirectory(cfg.root)) ?? []).sorted()
        where !t.hasPrefix(".") && Sys.isDirectory(cfg.root + "/" + t) {
            tree += "\n" + b.listing(cfg.root + "/" + t, limit: 100)
        }
        b.add(
            "mirror/listing.txt", tree,
            about: "the mirror directory and each type's revisions (dot-names: a pass in progress)")
        b.add(
            "keys/trust.txt", b.trustKeys(cfg.trust),
            about: "the relay's trusted public keys: key ids and public key lines")
        b.add(
            "disk.txt",
            SystemFacts.diskUsage([("mirror root", cfg.root), ("state_dir", cfg.stateDir)] + logDirs(logs)),
            about: "free space and inodes of the mirror directory and the relay state")
    }
}
