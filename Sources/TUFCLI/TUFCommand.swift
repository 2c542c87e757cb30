import ArgumentParser
import CourierCLI
import CourierCore

/// `courier-tuf`: the TUF conformance suite's client-under-test CLI (issue #14).
public struct TUFCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "courier-tuf",
        abstract: "A TUF client: init, refresh, download (the conformance suite's CLI protocol).",
        version: CourierVersion.string)
    public init() {}
    public func run() throws {
        throw CourierError(.usage, "courier-tuf: not built yet (issue #14)")
    }
}
