import ArgumentParser
import CourierCLI
import CourierCore

public struct InboxdCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "courier-inboxd",
        abstract: "The client agent: watch the inbox, verify, and apply packages atomically.",
        discussion: """
            Exit codes: 0 ok, 1 unexpected internal failure, 2 configuration, 6 malformed package, \
            7 signature or trust store, 8 expired or rollback, 10 unsafe entry or limit, 11 integrity, \
            12 file system, 13 test or apply command failed, 15 daemon (cannot watch the inbox), \
            16 done with errors (run --once refused some packages), 17 the state directory is locked \
            by another process for too long, 64 usage. See docs/OPERATIONS.md.
            """,
        version: CourierVersion.string,
        subcommands: [
            InboxRunCommand.self, StatusCommand.self, RollbackCommand.self, PinCommand.self, UnpinCommand.self,
            ExtractCommand.self, DiagnoseCommand.self,
        ])

    public init() {}
}
