import ArgumentParser
import CourierCLI
import CourierCore
import CourierStage
@preconcurrency import Glibc

/// `courier-stage diagnose`: one archive with what support asks a staging server for
/// (docs/OPERATIONS.md, "Diagnose"). Reads only; safe while a run holds the lock.
public struct DiagnoseCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "diagnose",
        abstract:
            "Write one archive for support: config (secrets redacted), versions, logs, last run, outbox index, lock, free space.",
        discussion: """
            Reads only; safe beside a running cycle. Prints the archive's path. Secrets (proxy \
            password, URL user:password@, headers, private keys) are removed before anything is \
            written (docs/OPERATIONS.md, "Diagnose"); look at the files before sending them.

            Examples:
              courier-stage diagnose --config /etc/courier/stage.toml
              courier-stage diagnose --config stage.toml \\
                  --log-file /var/log/courier/stage.log --output /tmp/stager.tar.gz
            """)

    @Option(help: ArgumentHelp("The configuration file (docs/STAGE.md).", valueName: "FILE"))
    var config: String = "/etc/courier/stage.toml"
    @Option(
        help: ArgumentHelp(
            "The Prometheus textfile the runs write (their --metrics-file). Default: the shipped unit's, when it exists.",
            valueName: "FILE"))
    var metricsFile: String?
    @OptionGroup var common: DiagnoseOptions

    public init() {}

    public func run() throws {
        try mapErrors("courier-stage diagnose") {
            let logs = common.logs(defaults: ["/var/log/courier/stage.log"])
            try common.run(program: "courier-stage", defaultLogs: ["/var/log/courier/stage.log"]) { b in
                b.addFile(
                    "config/stage.toml", path: config, about: "the configuration file, secrets redacted",
                    redact: .config)
                let metrics = metricsFile ?? "/var/lib/node_exporter/textfile_collector/courier_stage.prom"
                if metricsFile != nil || Sys.exists(metrics) {
                    b.addFile(
                        "state/metrics.prom", path: metrics, about: "the last run's Prometheus metrics (--metrics-file)"
                    )
                }
                b.add(
                    "state/last-run.txt", lastSummaries(logs),
                    about: "the last runs' summary lines from the log file(s)")
                guard let cfg = b.checkConfig({ try StageConfig.load(config) }) else { return }
                Self.collect(cfg, into: b, logs: logs)
            }
        }
    }

    /// The `summary:` lines a run appends to its --log-file, the last five.
    func lastSummaries(_ logs: [String]) -> String {
        var found: [String] = []
        for l in logs {
            let lines = (try? Sys.tailLines(l, lines: 20_000, maxBytes: 16 << 20)) ?? []
            found += lines.filter { $0.contains("] summary: ") }
        }
        return found.isEmpty
            ? "no summary line found in the log file(s) (runs write one with --log-file)\n"
            : found.suffix(5).map(Escape.line).joined(separator: "\n") + "\n"
    }

    static func sourceText(_ s: StageConfig.SourceSpec) -> (String, String?) {
        switch s {
        case .dirRevisions(let p, _): return ("dir (revisions) \(Escape.text(p))", p)
        case .dirSnapshot(let p, _): return ("dir (snapshot) \(Escape.text(p))", p)
        case .url(let u): return ("url \(Escape.text(([u.url] + u.urls).joined(separator: " ")))", nil)
        case .tuf(let t):
            return (
                "tuf \(Escape.text(t.metadataURL)) targets \(Escape.text(t.targetsURL)), root \(Escape.text(t.trustedRoot))",
                nil
            )
        }
    }

    static func collect(_ cfg: StageConfig, into b: DiagnoseBundle, logs: [String]) {
        var eff = """
            config: \(Escape.text(cfg.path))
            outbox: \(Escape.text(cfg.outbox))
            state_dir: \(Escape.text(cfg.stateDir))
            keys: \(cfg.keys.map(Escape.text).joined(separator: ", "))
            verify_keys: \(cfg.verifyKeys.map(Escape.text).joined(separator: ", "))
            package_lifetime: \(cfg.lifetime) s, compression: \(cfg.compression.rawValue), delta_format: \(cfg.deltaFormat), max_cycles: \(cfg.maxCycles)
            http.proxy: \(cfg.http.proxy.map(Escape.text) ?? "none"), proxy_user: \(cfg.http.proxyUser.map(Escape.text) ?? "none")\(cfg.http.proxyPassword == nil ? "" : " (with a proxy password)")
            hold_from: \(cfg.holdFrom.map(Escape.text) ?? "none")

            """
        var dirs: [(label: String, path: String)] = [("outbox", cfg.outbox), ("state_dir", cfg.stateDir)]
        for t in cfg.types {
            let (text, path) = sourceText(t.source)
            eff +=
                "type \(Escape.text(t.name)): \(text); keep_revisions \(t.keepRevisions), deltas \(t.deltas), hold \(t.hold)\n"
            if let p = path { dirs.append(("source \(t.name)", p)) }
        }
        b.add(
            "config/effective.txt", eff, about: "the paths and settings the stager uses, after defaults (URLs redacted)"
        )
        b.add(
            "keys/signing.txt", b.signingKeys(cfg.keys),
            about: "the signing keys' ids and public halves (never the private key)")
        b.add(
            "keys/verify.txt", cfg.verifyKeys.map { b.trustKeys($0) }.joined(),
            about: "verify_keys: ids and public key lines")

        var last = "# \(Escape.text(cfg.stateDir))/last-success\n"
        if let bytes = try? Sys.readFile(cfg.stateDir + "/last-success", limit: 64),
            let t = Int64(String(decoding: bytes, as: UTF8.self).trimming(" \n"))
        {
            last += "last run without failures: \(RFC3339.format(t)) (\(Int64(time(nil)) - t) s ago)\n"
        } else {
            last += "no run without failures recorded (file missing or unreadable)\n"
        }
        b.add("state/last-success.txt", last, about: "when a run last finished without failures")
        b.add(
            "state/lock.txt", SystemFacts.lockHolder(cfg.stateDir + "/lock"),
            about: "the run lock (flock on state_dir/lock; the file holds the running pid) and its holder")
        var state = b.listing(cfg.stateDir)
        for t in cfg.types where Sys.isDirectory(cfg.stateDir + "/" + t.name) {
            state += "\n" + b.listing(cfg.stateDir + "/" + t.name, limit: 100)
            for f in ["source.json", "settle.json"] where Sys.exists(cfg.stateDir + "/" + t.name + "/" + f) {
                b.addFile(
                    "state/\(t.name)/\(f)", path: cfg.stateDir + "/" + t.name + "/" + f,
                    about: "the \(t.name) source's state (ETag, last check, settle)")
            }
        }
        b.add("state/listing.txt", state, about: "the state directory and each type's state")

        let saved = b.fileLimit
        b.fileLimit = 64 << 10
        b.addFile(
            "outbox/index.json", path: cfg.outbox + "/index.json", about: "the outbox index (its first 64 KiB)",
            optional: true)
        b.fileLimit = saved
        let outbox = Outbox(root: cfg.outbox)
        var pubs = ""
        for t in cfg.types {
            let revs = (try? outbox.revisions(t.name)) ?? []
            pubs +=
                "\(Escape.text(t.name)): latest \(outbox.latest(t.name).map(String.init) ?? "none"), link \(outbox.latestLink(t.name).map(String.init) ?? "none"), \(revs.count) revision(s): \(revs.suffix(10).map(String.init).joined(separator: " "))\n"
        }
        b.add(
            "outbox/types.txt", pubs + "\n" + b.listing(cfg.outbox),
            about: "per type: latest revision, the latest link, revisions published")
        for l in logs {
            if let slash = l.lastIndex(of: "/") { dirs.append(("log", String(l[..<slash]))) }
        }
        b.add("disk.txt", SystemFacts.diskUsage(dirs), about: "free space and inodes of every configured directory")
    }
}
