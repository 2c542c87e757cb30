import ArgumentParser
import CourierCLI
import CourierCore
import CourierDeliver

public struct VerifyCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify packages: signature, manifest, expiry, type and every payload byte.",
        discussion: """
            Prints one line per package: OK with type, revision, kind and signing key id, or FAIL with \
            the reason. Exits 0 only if every package verifies; otherwise with the code of the (first) \
            failure for one package, or 16 when several were given and some failed.

            A package the client would refuse under its max_tree_bytes or delta_window (inboxd.toml) \
            fails with code limit: give them as --max-tree-bytes and --delta-window (default: \
            courier-inboxd's).

            Memory stays bounded whatever the package size; nothing is written. Suited to
            Ansible's copy module:
              copy:
                src: virus-defs_20261121001.cpkg
                dest: /var/lib/courier/inbox/
                validate: courier-deliver verify --trust /etc/courier/trust %s
            """)

    @Option(
        help: ArgumentHelp(
            "A .pub file or a directory of them (with an optional 'revoked' file or directory).", valueName: "PATH"))
    var trust: String
    @Option(help: "Refuse packages of any other content type.")
    var type: String?
    @Option(help: "Tolerated clock difference for expiry and creation times.")
    var clockSkew: String = "5m"
    @Option(help: "Number of distinct trusted keys that must sign.")
    var threshold: Int = 1
    @OptionGroup(title: "Client limits (those of the inbox the packages are for)")
    var clientLimits: ClientLimitOptions
    @Flag(help: "One JSON object per package, one per line.")
    var json = false
    @Argument(help: ArgumentHelp("Package files.", valueName: "PKG"))
    var packages: [String]

    public init() {}

    public func validate() throws {
        if packages.isEmpty { throw ValidationError("give at least one package") }
        if threshold < 1 { throw ValidationError("--threshold must be at least 1") }
    }

    public func run() throws {
        let skew = try parseDuration(clockSkew, option: "--clock-skew")
        let store: TrustStore
        do { store = try TrustStore.load(trust, threshold: threshold) } catch let e as CourierError {
            printError("courier-deliver verify: error: \(e.description)")
            throw ExitCode(ExitStatus.for(e.code).rawValue)
        }
        var opts = VerifyOptions(trust: store, limits: try clientLimits.limits())
        opts.clockSkew = skew
        opts.expectedType = type
        var firstFailure: ExitStatus? = nil
        for p in packages {
            do {
                let v = try PackageVerifier.verify(path: p, options: opts)
                let m = v.manifest
                let kind = m.kind == .full ? "full" : "delta from \(m.base ?? 0)"
                if json {
                    print(DeliverJSON.verified(path: p, manifest: m, signers: v.signers))
                } else {
                    print(
                        "OK    \(Escape.text(p))  \(m.type) \(m.revision) \(kind)  key \(v.signers.joined(separator: ","))"
                    )
                }
            } catch let e as CourierError {
                if firstFailure == nil { firstFailure = ExitStatus.for(e.code) }
                if json {
                    print(DeliverJSON.verifyFailed(path: p, error: e))
                } else {
                    // One line per package whatever the package says (Ansible's validate: shows it).
                    print("FAIL  \(Escape.text(p))  \(e.code.name): \(Escape.line(e.description))")
                }
            }
        }
        if let f = firstFailure {
            // One package: its own reason's code. Several: "done with errors".
            throw ExitCode(packages.count == 1 ? f.rawValue : ExitStatus.partial.rawValue)
        }
    }
}
