import ArgumentParser
import CourierCLI
import CourierCore

public struct DeliverCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "courier-deliver",
        abstract: "Verify packages and deliver them into client inbox directories.",
        discussion: """
            Exit codes: 0 ok, 1 unexpected internal failure, 2 configuration (policy file), 6 malformed \
            package, 7 bad signature or untrusted/revoked key, 8 expired, 10 unsafe entry or limit \
            exceeded, 11 size or hash mismatch, 12 file system, 16 done with errors (some packages or \
            targets failed, or --fail-stale found stale clients), 64 usage. See docs/OPERATIONS.md.
            """,
        version: CourierVersion.string,
        subcommands: [
            VerifyCommand.self, PushCommand.self, SelectCommand.self, ReportCommand.self, DiagnoseCommand.self,
        ])

    public init() {}
}
