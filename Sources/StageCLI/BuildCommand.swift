import ArgumentParser
import CourierCLI
import CourierCore
@preconcurrency import Glibc

public struct BuildCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build one signed package (full, or delta against an earlier package) from a directory tree.",
        discussion: """
            The building block of 'courier-stage run', usable by hand or from a script. Writes \
            <type>_<revision>.cpkg, or <type>_<revision>_from_<base>.cpkg with --delta-from, into \
            --out-dir, atomically (temporary dot-file, fsync, rename).

            Example:
              courier-stage build --tree /srv/defs/20261121001 --type virus-defs \\
                  --revision 20261121001 --key /etc/courier/stage.key \\
                  --out-dir /srv/outbox/virus-defs/20261121001
            """)

    @Option(help: ArgumentHelp("Directory whose files become the package's tree.", valueName: "DIR"))
    var tree: String
    @Option(help: "Content type name (a-z, 0-9, '.', '_', '-').")
    var type: String
    @Option(help: "Revision number (YYYYMMDDNNN by convention; any growing integer).")
    var revision: UInt64
    @Option(
        help: ArgumentHelp("Signing key file (repeat to sign with several keys during rotation).", valueName: "KEY"))
    var key: [String]
    @Option(help: ArgumentHelp("Directory to write the package into (created if missing).", valueName: "DIR"))
    var outDir: String
    @Option(
        help: ArgumentHelp(
            "Build a delta against this earlier full package of the same type (its manifest is verified with the signing key).",
            valueName: "PKG"))
    var deltaFrom: String?
    @Option(
        help: ArgumentHelp(
            "Manifest format of a delta: 2 (default: changed files patched against their base versions where smaller, and a digest instead of the complete file list) or 1 (whole files and the complete list, for clients older than format 2).",
            valueName: "N"))
    var deltaFormat: Int = 2
    @Option(help: "Compression: zstd (default), gzip or none.")
    var compression: String = "zstd"
    @Option(help: "How long clients accept the package (e.g. 30d, 12h).")
    var lifetime: String = "30d"

    public init() {}

    public func run() throws {
        guard let comp = Compression(rawValue: compression) else {
            throw ValidationError("--compression must be zstd, gzip or none")
        }
        let life = try parseDuration(lifetime, option: "--lifetime")
        guard deltaFormat == 1 || deltaFormat == 2 else { throw ValidationError("--delta-format must be 1 or 2") }
        try mapErrors("courier-stage build") {
            let keys = try key.map { try SigningKey.load($0) }
            guard !keys.isEmpty else { throw CourierError(.usage, "give at least one --key") }
            // `build` is the stager's tool without stage.toml: the defaults, which are the clients'.
            var opts = PackageBuilder.Options(type: type, revision: revision, keys: keys, limits: Limits())
            opts.compression = comp
            opts.lifetime = life
            opts.provenance = ["tool": "courier-stage \(CourierVersion.string)", "source": tree]
            try Sys.mkdirs(outDir)
            let m: Manifest
            if let base = deltaFrom {
                let trust = TrustStore(keys: keys.map(\.publicKey))
                var vo = VerifyOptions(trust: trust, limits: opts.limits)
                vo.expectedType = type
                let baseReader = try PackageReader(path: base, options: vo)
                guard baseReader.manifest.kind == .full else {
                    throw CourierError(.usage, "\(base): --delta-from needs a full package")
                }
                let name = Names.deltaPackageName(type: type, revision: revision, base: baseReader.manifest.revision)
                opts.deltaFormat = deltaFormat
                let files = try TreeScanner.scan(tree)
                let scratch = outDir + "/.base-\(Sys.processID())-\(baseReader.manifest.revision)"
                try Sys.removeTree(scratch)
                defer { try? Sys.removeTree(scratch) }
                let baseFiles = Array(baseReader.manifest.files)
                if deltaFormat == 2 {
                    try DeltaPatcher.extractBase(
                        package: base, verify: vo, baseFiles: baseFiles,
                        target: files, into: scratch)
                }
                m = try PackageBuilder.buildDelta(
                    baseRevision: baseReader.manifest.revision, baseFiles: baseFiles,
                    tree: tree, to: outDir + "/" + name, options: opts, files: files,
                    baseTree: deltaFormat == 2 ? scratch : nil)
                let patched = m.changes?.filter { $0.patch != nil }.count ?? 0
                print(
                    "wrote \(outDir)/\(name): delta \(m.base!) → \(m.revision) (format \(m.format)), \(m.changed!.count) changed (\(patched) patched in \(m.patches?.count ?? 0) patches), \(m.removed!.count) removed, \(m.resultFileCount) files in the tree"
                )
            } else {
                let name = Names.fullPackageName(type: type, revision: revision)
                m = try PackageBuilder.buildFull(tree: tree, to: outDir + "/" + name, options: opts)
                print("wrote \(outDir)/\(name): full, \(m.files.count) files, \(m.payloadBytes) bytes")
            }
        }
    }
}
