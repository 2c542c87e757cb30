import CourierCore
import CourierFetch
import Foundation
import Testing

@testable import CourierTUF

/// #17.6: metadata is parsed within the bounds its caller configured, never a silent default —
/// the trusted set's for every file after the root, the updater's `UpdaterConfig.parseLimits`.
@Suite struct ParseLimitsTests {
    let repo = Repo()

    @Test func signedMetadataParsesWithinTheGivenLimits() throws {
        let root = repo.root()
        _ = try SignedMetadata<Root>(bytes: root, limits: .init(maxBytes: root.count))
        expectCourierError(.limit) {
            _ = try SignedMetadata<Root>(bytes: root, limits: .init(maxBytes: root.count - 1))
        }
        // root.json nests signed → roles → root → keyids: a depth of 3 is too shallow for it.
        expectCourierError(.limit) { _ = try SignedMetadata<Root>(bytes: root, limits: .init(maxDepth: 3)) }
    }

    /// The set keeps the limits it was given and parses each later file within them: a timestamp
    /// one byte over is refused and changes nothing; at the limit it loads.
    @Test func trustedSetAppliesItsLimitsToLaterFiles() throws {
        let root = repo.root()
        expectCourierError(.limit) {
            _ = try TrustedMetadataSet(
                rootBytes: root, referenceTime: T.now, limits: .init(maxBytes: root.count - 1))
        }
        let ts = repo.timestamp()
        var s = try TrustedMetadataSet(rootBytes: root, referenceTime: T.now, limits: .init(maxBytes: root.count))
        s.limits = .init(maxBytes: ts.count - 1)
        expectCourierError(.limit) { try s.updateTimestamp(ts) }
        #expect(s.timestamp == nil)
        s.limits = .init(maxBytes: ts.count)
        try s.updateTimestamp(ts)
        #expect(s.timestamp?.signed.version == 1)
    }

    /// `Updater` parses the trusted root.json on disk with `config.parseLimits` (no request is
    /// made: the root is refused before any).
    @Test func updaterPassesItsConfiguredParseLimits() async throws {
        let ws = TUFWorkspace()
        let root = repo.root()
        try FileManager.default.createDirectory(atPath: ws.path("client"), withIntermediateDirectories: true)
        try Data(root).write(to: URL(fileURLWithPath: ws.path("client/1.root.json")))
        try MetadataStore(directory: ws.path("client/metadata")).initialize(trustedRoot: ws.path("client/1.root.json"))
        let fetcher = Fetcher(policy: UpdaterConfig.fetchPolicy(userAgent: "courier-tuf-tests"), logger: testLogger)
        func updater(maxBytes: Int) throws -> Updater {
            var config = UpdaterConfig()
            config.parseLimits = .init(maxBytes: maxBytes)
            return try Updater(
                metadataDir: ws.path("client/metadata"), metadataBaseURL: "http://127.0.0.1:9/",
                fetcher: fetcher, config: config, logger: testLogger, referenceTime: T.now)
        }
        expectCourierError(.limit) { _ = try updater(maxBytes: root.count - 1) }
        #expect(try updater(maxBytes: root.count).trusted.root.signed.version == 1)
        try await fetcher.shutdown()
    }
}
