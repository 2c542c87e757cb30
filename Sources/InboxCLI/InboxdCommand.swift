import ArgumentParser
import CourierCLI

public struct InboxdCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "courier-inboxd",
        abstract: "The client agent: watch the inbox, verify, and apply packages atomically.",
        discussion: """
        Exit codes: 0 ok, 2 configuration, 6 malformed package, 7 signature, 8 expired or rollback,
        10 unsafe entry, 11 integrity, 12 file system, 13 test or apply command failed, 15 daemon,
        64 usage. See docs/OPERATIONS.md.
        """,
        version: CourierVersion.string,
        subcommands: [InboxRunCommand.self, StatusCommand.self, RollbackCommand.self, PinCommand.self, UnpinCommand.self, ExtractCommand.self])

    public init() {}
}
