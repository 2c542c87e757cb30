import ArgumentParser
import CourierCLI
import CourierCore
import CourierInbox
@preconcurrency import Glibc
import Logging

public struct InboxRunCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Watch the inbox and apply every package that lands in it.",
        discussion: """
            Recovers from any interrupted apply, processes what is already in the inbox, then waits \
            (inotify, or --poll for NFS/SMB inboxes) and applies each package as it is closed or moved \
            in. SIGTERM lets the apply in progress finish, then exits 0. On any exit it logs one \
            line: why it stopped, how long it ran, how many packages it applied and refused.

            Examples:
              courier-inboxd run --config /etc/courier/inboxd.toml
              courier-inboxd run --config inboxd.toml --once    # apply what is there, exit
              # until nothing arrives for 30 s:
              courier-inboxd run --config inboxd.toml --exit-when-idle 30s
              courier-inboxd run --config inboxd.toml --verbose \\
                  --log-file /var/log/courier/inboxd.log
            """)

    @Option(help: ArgumentHelp("The configuration file (docs/INBOXD.md).", valueName: "FILE"))
    var config: String = "/etc/courier/inboxd.toml"
    @Flag(help: "Process what is in the inbox, then exit.")
    var once = false
    @Option(help: ArgumentHelp("Exit after this long without anything to do (e.g. 30s).", valueName: "DURATION"))
    var exitWhenIdle: String?
    @Option(
        help: ArgumentHelp(
            "Poll the inbox every SECONDS instead of inotify (NFS/SMB: inotify cannot see writes from other hosts).",
            valueName: "SECONDS"))
    var poll: Int64?
    @Option(help: ArgumentHelp("Append the log to this file.", valueName: "FILE"))
    var logFile: String?
    @Flag(help: "Log only warnings and errors.")
    var quiet = false
    @Flag(
        help:
            "Log debug lines too (why the daemon woke, each package's outcome, the next wake-up), to stderr and the log file."
    )
    var verbose = false

    public init() {}

    public func validate() throws {
        if quiet && verbose { throw ValidationError("--quiet and --verbose contradict each other: give one") }
    }

    public func run() throws {
        let idle = try exitWhenIdle.map { try parseDuration($0, option: "--exit-when-idle") }
        try mapErrors("courier-inboxd run") {
            // Before any thread exists, so that every thread inherits the blocked mask.
            let signals = try ShutdownSignals.install()
            var cfg = try InboxConfig.load(config)
            if let p = poll { cfg.poll = p }
            let file = try logFile.map { try LineLogHandler.LogFile($0) }
            // --verbose lowers both levels: the file is where a daemon's debug lines are read.
            let level: Logger.Level = verbose ? .debug : .info
            let handler = LineLogHandler(
                program: "courier-inboxd", level: level, stderrLevel: quiet ? .warning : level, file: file)
            let logger = Logger(label: "courier-inboxd", factory: { _ in handler })
            var opts = InboxDaemon.Options()
            opts.once = once
            opts.exitWhenIdle = idle.map(Double.init)
            let daemon = InboxDaemon(config: cfg, logger: logger, options: opts)
            // Synchronously, on this thread: no task is ever started (see InboxDaemon).
            try daemon.run(stop: signals)
        }
    }
}
