import ArgumentParser
import CourierCLI
import CourierCore

public struct PullCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "courier-pull",
        abstract: "Pull packages from a web mirror of an outbox into a client's inbox, or mirror an outbox as a relay.",
        discussion: """
            'run' is a copier for clients that must open the connection themselves (NAT, branch \
            offices, slow links): it reads a mirror's index.json, makes the same choice as \
            'courier-deliver select' from the client's status.json, downloads under a dot-name, \
            verifies, and renames into the inbox, where courier-inboxd applies it. 'mirror' keeps a \
            relay's directory (served by any web server) in step with an upstream outbox or relay.

            Exit codes: 0 ok (also when nothing was new, or the index was not modified), 1 internal \
            error, 2 configuration, 4 upstream has no such type, 6 malformed index or package, \
            7 signature or key, 8 expired, 9 download (all mirrors failed), 10 limit (an index.json \
            over 64 MiB, a package over its indexed size or http.max_bytes, a tree over max_tree_bytes \
            or a delta over delta_window), 11 integrity (size or SHA-256 against the index), 12 file \
            system, 16 done with errors (some types failed), 17 another run holds the lock, 18 no \
            network, 19 proxy, 64 usage. See docs/OPERATIONS.md.
            """,
        version: CourierVersion.string,
        subcommands: [PullRunCommand.self, MirrorCommand.self, PullDiagnoseCommand.self])

    public init() {}
}
