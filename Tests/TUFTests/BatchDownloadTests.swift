import CourierCore
import CourierFetch
import Foundation
import Testing

@testable import CourierTUF

/// `Updater.downloadTargets`: several small targets in flight, yet stored and reported in
/// argument order, stopping at the first failure, with no metadata asked for while an earlier
/// target may still fail. Real repository (python-tuf), real server on 127.0.0.1.
@Suite(.serialized) struct BatchDownloadTests {
    static func names(_ prefix: String, _ n: Int) -> [String] {
        (0..<n).map { String(format: "%@%02d", prefix, $0) }
    }

    /// A repository without consistent snapshots (targets served under their own names, so one
    /// can be tampered with in place) holding `names`, each with content "content of NAME".
    static func repo(_ ws: TUFWorkspace, _ names: [String]) throws -> TestRepo {
        let repo = try TestRepo(ws, [])
        try repo.run(["add-target"] + names.flatMap { [$0, "content of \($0)"] })
        return repo
    }

    /// `repo(ws, names)` served on 127.0.0.1, with a client initialised from its root.
    static func served(_ ws: TUFWorkspace, _ names: [String]) throws -> TUFServer {
        let repo = try Self.repo(ws, names)
        let server = try TUFServer(repo, ws)
        _ = try initClient(ws, repo)
        return server
    }

    static func download(
        _ ws: TUFWorkspace, _ server: TUFServer, _ names: [String], window: Int = 8,
        reported: inout [String]
    ) async throws {
        var seen: [String] = []
        defer { reported = seen }
        try await withUpdater(ws, server) { u in
            try await u.downloadTargets(names, window: window) { name, _, obtained in
                seen.append("\(name):\(obtained.isStored ? "stored" : "present")")
            }
        }
    }

    @Test func storedInArgumentOrderAndNothingAfterTheFirstFailure() async throws {
        let ws = TUFWorkspace()
        let names = Self.names("t", 30)
        let repo = try Self.repo(ws, names)
        // t12 is served altered: its hash no longer matches the signed one.
        try Data("tampered".utf8).write(to: URL(fileURLWithPath: repo.dir + "/targets/t12"))
        let server = try TUFServer(repo, ws)
        _ = try initClient(ws, repo)
        var reported: [String] = []
        let e = await expectCourierError(.signature) { try await Self.download(ws, server, names, reported: &reported) }
        #expect(e?.message.contains("t12") == true)
        let before = names.prefix(12)
        #expect(reported == before.map { "\($0):stored" })
        // Exactly t00…t11 are in the target directory: nothing after the failure, no temporaries.
        #expect(ws.list("client/targets") == Array(before))
        for n in before { #expect(ws.read("client/targets/\(n)") == Array("content of \(n)".utf8)) }
        // At most a window ahead of the failing one was asked for.
        let fetched = server.requests().filter { $0.hasPrefix("/targets/") }.map { String($0.dropFirst(9)) }
        #expect(fetched.contains("t12"))
        #expect(fetched.allSatisfy { names.firstIndex(of: $0)! < 12 + 8 }, "\(fetched)")
        #expect(Set(fetched).count == fetched.count, "a target asked for twice: \(fetched)")
    }

    @Test func aMissingTargetStopsTheBatchAfterEverythingBeforeItIsStored() async throws {
        let ws = TUFWorkspace()
        let names = Self.names("m", 4)
        let server = try Self.served(ws, names)
        var reported: [String] = []
        let e = await expectCourierError(.source) {
            try await Self.download(ws, server, ["m00", "m01", "nowhere", "m02"], reported: &reported)
        }
        #expect(e?.message.contains("nowhere") == true)
        #expect(reported == ["m00:stored", "m01:stored"])
        #expect(ws.list("client/targets") == ["m00", "m01"])
        #expect(!server.requests().contains("/targets/m02"))
    }

    @Test func aTargetNamedTwiceIsFetchedOnceAndFoundPresentTheSecondTime() async throws {
        let ws = TUFWorkspace()
        let server = try Self.served(ws, ["a", "b"])
        var reported: [String] = []
        try await Self.download(ws, server, ["a", "b", "a"], reported: &reported)
        #expect(reported == ["a:stored", "b:stored", "a:present"])
        #expect(server.requests().filter { $0.hasPrefix("/targets/") }.sorted() == ["/targets/a", "/targets/b"])
        // Again: everything present, nothing fetched.
        server.clearLog()
        try await Self.download(ws, server, ["a", "b"], reported: &reported)
        #expect(reported == ["a:present", "b:present"])
        #expect(!server.requests().contains { $0.hasPrefix("/targets/") })
    }

    @Test func noDelegatedMetadataIsAskedForWhileEarlierTargetsAreInFlight() async throws {
        let ws = TUFWorkspace()
        let names = Self.names("d", 10)
        let repo = try Self.repo(ws, names)
        try repo.run(["delegate", "team", "deep/*"])
        try repo.run(["add-target", "deep/x", "delegated", "--role", "team"])
        let server = try TUFServer(repo, ws)
        _ = try initClient(ws, repo)
        var reported: [String] = []
        try await Self.download(ws, server, names + ["deep/x"], reported: &reported)
        #expect(reported.count == 11)
        let log = server.requests()
        let team = try #require(log.firstIndex { $0.hasPrefix("/metadata/") && $0.hasSuffix("team.json") }, "\(log)")
        let lastTarget = try #require(log.lastIndex { $0.hasPrefix("/targets/d0") })
        #expect(lastTarget < team, "\(log)")
        #expect(ws.read("client/targets/deep%2Fx") == Array("delegated".utf8))
    }

    @Test func aWindowOfOneIsStrictlySequential() async throws {
        let ws = TUFWorkspace()
        let names = Self.names("s", 6)
        let server = try Self.served(ws, names)
        var reported: [String] = []
        try await Self.download(ws, server, names, window: 1, reported: &reported)
        #expect(server.requests().filter { $0.hasPrefix("/targets/") } == names.map { "/targets/\($0)" })
        #expect(reported == names.map { "\($0):stored" })
    }
}

extension Updater.Obtained {
    var isStored: Bool { if case .stored = self { true } else { false } }
}
