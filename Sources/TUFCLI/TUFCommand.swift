import ArgumentParser
import CourierCLI
import CourierCore
import CourierFetch
import CourierTUF
import Logging

/// `courier-tuf`: a TUF client speaking the tuf-conformance suite's client-under-test protocol
/// (`CLIENT-CLI.md`): `init`, `refresh`, `download`, with the options before or after the command.
///
/// Unlike Courier's other programs it does not map error codes to distinct exit statuses: the
/// protocol says 0 for full success and 1 for any failure, so that is all it returns (help and
/// `--version` aside).
public struct TUFCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "courier-tuf",
        abstract: "A TUF client: init, refresh, download (the tuf-conformance client protocol).",
        discussion: """
            COMMANDS
              init TRUSTED_ROOT
                  Copy TRUSTED_ROOT into --metadata-dir as root.json. No checks and
                  no network: the first refresh verifies it and trusts it.
              refresh
                  Update root (through N.root.json until a 404 or 403), timestamp,
                  snapshot and targets from --metadata-url, each verified against
                  what is already trusted; keep what was accepted in
                  --metadata-dir as root.json, timestamp.json, snapshot.json and
                  targets.json (the exact bytes received).
              download
                  Refresh, then for each --target-name in order: find it in the
                  targets metadata (following delegations) and, unless
                  --target-dir already holds it with matching hashes, download it
                  from --target-base-url, check its length and hashes, and store
                  it under its percent-encoded name. Stops at the first failure.

            EXAMPLES
              courier-tuf --metadata-dir md init ./root.json
              courier-tuf --metadata-dir md --metadata-url URL refresh
              courier-tuf --metadata-dir md --metadata-url URL \\
                  --target-name defs/virus.cvd --target-base-url TARGETS_URL \\
                  --target-dir defs download

            EXIT STATUS
              0 when the command succeeded fully, 1 on any failure (the reason is
              on standard error). Expiry is judged against the clock at start
              (libc time(), so faketime works). See docs/TUF.md.
            """,
        version: CourierVersion.string)

    @Option(
        name: .customLong("metadata-dir"),
        help: ArgumentHelp("Directory of trusted metadata (root.json, timestamp.json, …).", valueName: "dir"))
    var metadataDir: String

    @Option(
        name: .customLong("metadata-url"),
        help: ArgumentHelp("Base URL of the repository's metadata (refresh, download).", valueName: "url"))
    var metadataURL: String?

    @Option(
        name: .customLong("target-name"),
        help: ArgumentHelp("TUF target path to download; repeat for several, fetched in this order.", valueName: "path")
    )
    var targetNames: [String] = []

    @Option(
        name: .customLong("target-base-url"),
        help: ArgumentHelp("Base URL of the repository's targets (download).", valueName: "url"))
    var targetBaseURL: String?

    @Option(
        name: .customLong("target-dir"),
        help: ArgumentHelp("Directory the verified targets are stored in (download).", valueName: "dir"))
    var targetDir: String?

    @Flag(name: [.short, .long], help: "Log each request and decision (debug level).")
    var verbose = false

    @Argument(help: ArgumentHelp("init, refresh or download.", valueName: "command"))
    var command: String

    @Argument(help: ArgumentHelp("TRUSTED_ROOT for init.", valueName: "argument"))
    var arguments: [String] = []

    public init() {}

    public static let program = "courier-tuf"

    /// The entry point (instead of ArgumentParser's `main()`): parses and runs; every failure,
    /// parsing included, exits with 1 as the protocol asks.
    public static func conformanceMain() async {
        do {
            var cmd = try parseAsRoot()
            if var asyncCommand = cmd as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try cmd.run()
            }
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }
            if let e = error as? CourierError {
                printError("\(program): error: \(e.description)")
            } else {
                printError("\(program): error: \(message(for: error))")
                printError("\(program): see '\(program) --help'")
            }
            exit(withError: ExitCode(1))
        }
    }

    public func validate() throws {
        switch command {
        case "init":
            guard arguments.count == 1 else { throw ValidationError("init takes one argument: the trusted root.json") }
        case "refresh":
            guard arguments.isEmpty else { throw ValidationError("refresh takes no argument") }
            guard metadataURL != nil else { throw ValidationError("refresh needs --metadata-url") }
        case "download":
            guard arguments.isEmpty else {
                throw ValidationError("download takes no argument (name targets with --target-name)")
            }
            guard metadataURL != nil else { throw ValidationError("download needs --metadata-url") }
            guard !targetNames.isEmpty else { throw ValidationError("download needs at least one --target-name") }
            guard targetBaseURL != nil else { throw ValidationError("download needs --target-base-url") }
            guard targetDir != nil else { throw ValidationError("download needs --target-dir") }
        default:
            throw ValidationError("unknown command '\(Escape.text(command))': expected init, refresh or download")
        }
    }

    public func run() async throws {
        let handler = LineLogHandler(
            program: TUFCommand.program, level: verbose ? .debug : .info,
            stderrLevel: verbose ? .debug : .info, file: nil)
        let logger = Logger(label: TUFCommand.program, factory: { _ in handler })
        switch command {
        case "init":
            try MetadataStore(directory: metadataDir).initialize(trustedRoot: arguments[0])
            logger.info("initialized", metadata: ["metadata-dir": "\(Escape.text(metadataDir))"])
        case "refresh":
            try await withUpdater(logger) { updater in
                try await updater.refresh()
                logger.info(
                    "refreshed",
                    metadata: [
                        "root": "\(updater.trusted.root.signed.version)",
                        "timestamp": "\(updater.trusted.timestamp?.signed.version ?? 0)",
                        "snapshot": "\(updater.trusted.snapshot?.signed.version ?? 0)",
                        "targets": "\(updater.trusted.targets?.signed.version ?? 0)",
                    ])
            }
        default:
            try await withUpdater(logger) { updater in
                try await updater.downloadTargets(targetNames) { name, found, obtained in
                    switch obtained {
                    case .present(let path):
                        logger.info(
                            "target already present",
                            metadata: ["target": "\(Escape.text(name))", "path": "\(Escape.text(path))"])
                    case .stored(let path):
                        logger.info(
                            "target stored",
                            metadata: [
                                "target": "\(Escape.text(name))", "role": "\(Escape.text(found.role))",
                                "path": "\(Escape.text(path))",
                            ])
                    }
                }
            }
        }
    }

    /// One updater (and its fetcher, shut down however the body ends) for the whole command.
    private func withUpdater(_ logger: Logger, _ body: (Updater) async throws -> Void) async throws {
        let fetcher = Fetcher(
            policy: UpdaterConfig.fetchPolicy(userAgent: CourierVersion.userAgent("courier-tuf")), logger: logger)
        do {
            let updater = try Updater(
                metadataDir: metadataDir, metadataBaseURL: metadataURL!, targetDir: targetDir,
                targetBaseURL: targetBaseURL, fetcher: fetcher, logger: logger)
            try await body(updater)
        } catch {
            try? await fetcher.shutdown()
            throw error
        }
        try? await fetcher.shutdown()
    }
}
