import ArgumentParser
import CourierCLI
import CourierCore
import CourierFetch
import Logging

/// `courier-stage fetch`: one download with exactly the HTTP behaviour of `courier-stage run`, so
/// that an operator can tell from the staging server itself whether the proxy, the credentials,
/// the firewall and the mirror work — and get the same exit code a cycle would.
public struct FetchCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract:
            "Download one URL with the stager's HTTP behaviour (proxy, retries, resume, cool-down), to check connectivity from the staging server.",
        discussion: """
            The body goes to FILE.partial first and is renamed to FILE when complete; an interrupted \
            download is resumed by the next invocation (Range + If-Range). Transient failures (5xx, \
            refused connections, timeouts, truncated bodies) are retried with backoff until \
            --retry-for is used up. A 429/503 with Retry-After longer than that is recorded in \
            --state-dir/cooldown.json, and the host is not contacted again until then.

            Without --proxy, http_proxy / https_proxy / no_proxy from the environment apply (prefer \
            them for credentials: a password on the command line is visible in the process list). \
            Proxy passwords are never printed.

            Exit codes: 0 ok, 1 internal error, 2 bad --proxy, 9 download (HTTP status, truncated, \
            cool-down), 10 size limit, 12 file system, 18 network, 19 proxy, 64 usage.

            Examples:
              courier-stage fetch https://updates.vendor.example/defs/daily.tar.gz \\
                  --out /tmp/daily.tar.gz
              courier-stage fetch https://mirror.example/x --out /tmp/x \\
                  --proxy http://proxy.corp:3128 --retry-for 0
            """)

    @Argument(help: ArgumentHelp("The http:// or https:// URL to download.", valueName: "URL"))
    var url: String
    @Option(help: ArgumentHelp("Where to write the body (FILE.partial while in progress).", valueName: "FILE"))
    var out: String
    @Option(
        help: ArgumentHelp("Proxy to use instead of the environment's: http://[user:pass@]host:port.", valueName: "URL")
    )
    var proxy: String?
    @Option(
        help: ArgumentHelp(
            "Retry window for transient failures (e.g. 5m, 30s; 0 = one attempt).", valueName: "DURATION"))
    var retryFor: String = "5m"
    @Option(
        help: ArgumentHelp(
            "Refuse bodies larger than this many bytes (suffixes K, M, G: powers of 1024).", valueName: "N"))
    var maxBytes: String = "2G"
    @Option(
        help: ArgumentHelp(
            "Directory for the Retry-After cool-down state (cooldown.json); none by default.", valueName: "DIR"))
    var stateDir: String?
    @Option(help: ArgumentHelp("Seconds without data before an attempt is given up.", valueName: "SECONDS"))
    var readTimeout: Int64 = 30
    @Flag(help: "Log each attempt, retry and wait to stderr.")
    var verbose = false

    public init() {}

    public func validate() throws {
        guard SizeParser.bytes(maxBytes) != nil else {
            throw ValidationError("--max-bytes: '\(maxBytes)' is not a size (examples: 1048576, 512M, 2G)")
        }
        guard readTimeout > 0 else { throw ValidationError("--read-timeout must be at least 1") }
    }

    public func run() async throws {
        let window = try parseDuration(retryFor, option: "--retry-for")
        try await mapErrors("courier-stage fetch") {
            var policy = FetchPolicy()
            policy.userAgent = CourierVersion.userAgent("courier-stage")
            policy.retryFor = window
            policy.maxBytes = SizeParser.bytes(maxBytes)!
            policy.readTimeout = readTimeout
            policy.stateDir = stateDir
            if let proxy { policy.proxy = try ProxySettings.parse(proxy) }

            let handler = LineLogHandler(
                program: "courier-stage", level: .info,
                stderrLevel: verbose ? .info : .warning, file: nil)
            let logger = Logger(label: "courier-stage", factory: { _ in handler })
            let fetcher = Fetcher(policy: policy, logger: logger)
            let outcome: FetchOutcome
            do {
                outcome = try await fetcher.fetch(url, to: out, validators: nil)
                try await fetcher.shutdown()
            } catch {
                try? await fetcher.shutdown()
                throw error
            }
            switch outcome {
            case .notModified:
                print("\(out): not modified")
            case .downloaded(let bytes, let v, let resumed):
                var line = "wrote \(out): \(bytes) bytes"
                if resumed { line += " (resumed an earlier partial download)" }
                if let e = v.etag { line += ", ETag \(e)" }
                if let lm = v.lastModified { line += ", Last-Modified \(lm)" }
                print(line)
            }
        }
    }
}
