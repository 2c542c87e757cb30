import ArgumentParser
import CourierCLI
import CourierCore

public struct StageCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "courier-stage",
        abstract: "Stage security content from upstream sources into a typed, signed outbox.",
        discussion: """
            Run by cron or a systemd timer on the staging server. Each run pulls what is new from the \
            configured sources, checks it, builds signed full and delta packages and publishes them \
            atomically into outbox/<type>/<revision>/.

            Exit codes: 0 ok (also when a type is skipped by min_interval or a 304), 1 internal \
            error, 2 configuration, 4 source missing (no valid host), 6 malformed metadata, \
            7 signature or key, 8 expired or rollback, 9 download (HTTP error, all mirrors failed, \
            host cooling down), 10 unsafe content or size limit, 11 integrity, 12 file system, \
            16 done with errors (some types failed), 17 another run holds the lock, 18 no network, \
            19 proxy, 64 usage. See docs/OPERATIONS.md.
            """,
        version: CourierVersion.string,
        subcommands: [
            RunCommand.self, ListCommand.self, KeygenCommand.self, BuildCommand.self, FetchCommand.self,
            DiagnoseCommand.self,
        ])

    public init() {}
}
