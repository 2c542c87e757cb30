import ArgumentParser
import CourierCLI
import CourierCore

public struct ExtractCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "extract",
        abstract: "Verify a package and extract it safely into a new directory (by hand, without the daemon).",
        discussion: """
            A full package is extracted into DIR, which must be missing or empty. A delta needs \
            --base, the directory holding its base revision's tree; DIR must not exist, and the base is \
            never modified. The result is checked file by file against the manifest. On any refusal \
            nothing is left in DIR.
            """)

    @Option(help: ArgumentHelp("A .pub file or a directory of them.", valueName: "PATH"))
    var trust: String
    @Option(help: ArgumentHelp("Target directory.", valueName: "DIR"))
    var into: String
    @Option(help: ArgumentHelp("For a delta: the directory holding the base revision's tree.", valueName: "DIR"))
    var base: String?
    @Argument(help: ArgumentHelp("The package file.", valueName: "PKG"))
    var package: String

    public init() {}

    public func run() throws {
        try mapErrors("courier-inboxd extract") {
            let store = try TrustStore.load(trust)
            let reader = try PackageReader(
                path: package,
                options: VerifyOptions(
                    trust: store,
                    // A look inside a package, with no inboxd.toml: courier-inboxd's default limits.
                    limits: Limits()))
            let m = reader.manifest
            if m.kind == .delta {
                guard let base else {
                    throw CourierError(
                        .usage, "\(package) is a delta from \(m.base ?? 0); give --base DIR with that revision's tree")
                }
                try DeltaApplier.apply(reader, base: base, to: into)
            } else {
                let created = !Sys.exists(into)
                if created {
                    try Sys.mkdirs(into)
                } else if !(try Sys.listDirectory(into)).isEmpty {
                    throw CourierError(.io, "\(into): not empty; extract a full package into a new or empty directory")
                }
                do {
                    try SafeExtractor.extract(reader, into: into)
                } catch {
                    if created { try? Sys.removeTree(into) }
                    throw error
                }
            }
            print("extracted \(m.type) \(m.revision) (\(m.kind.rawValue), \(m.resultFileCount) files) into \(into)")
        }
    }
}
