import CourierCore
import CourierFetch
import Foundation
import Testing

@testable import CourierTUF

/// The updater against a real repository (python-tuf 7.0.1, `Tests/Support/tufrepo.py`) served
/// on 127.0.0.1 (`Tests/Support/tufserver.py`), with the metadata directory on disk.
@Suite(.serialized) struct UpdaterTests {
    @Test func refreshPersistsTheExactBytesUnderNonVersionedNames() async throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        try repo.run(["add-target", "a/file1.txt", "hello"])
        let server = try TUFServer(repo, ws)
        let (md, _) = try initClient(ws, repo)
        try await withUpdater(ws, server) { try await $0.refresh() }
        #expect(ws.list("client/metadata") == ["root.json", "snapshot.json", "targets.json", "timestamp.json"])
        #expect(
            FileManager.default.contents(atPath: md + "/timestamp.json").map(Array.init)
                == repo.metadata("timestamp.json"))
        #expect(
            FileManager.default.contents(atPath: md + "/snapshot.json").map(Array.init)
                == repo.metadata("2.snapshot.json"))
        #expect(
            FileManager.default.contents(atPath: md + "/targets.json").map(Array.init)
                == repo.metadata("2.targets.json"))
        // Consistent snapshots: versioned snapshot and targets, root loop ended by the 404 on 2.root.json.
        #expect(
            server.requests() == [
                "/metadata/2.root.json", "/metadata/timestamp.json",
                "/metadata/2.snapshot.json", "/metadata/2.targets.json",
            ])
        // A second refresh keeps the local snapshot and targets (still valid for the timestamp).
        server.clearLog()
        try await withUpdater(ws, server) { try await $0.refresh() }
        #expect(server.requests() == ["/metadata/2.root.json", "/metadata/timestamp.json"])
    }

    @Test func downloadsATargetOnceAndFindsItCachedAfterwards() async throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        try repo.run(["add-target", "a/file1.txt", "hello"])
        let server = try TUFServer(repo, ws)
        _ = try initClient(ws, repo)
        try await withUpdater(ws, server) { u in
            let found = try #require(try await u.targetInfo("a/file1.txt"))
            #expect(found.role == "targets")
            #expect(u.findCachedTarget(found) == nil)
            let path = try await u.downloadTarget(found)
            #expect(path == ws.path("client/targets/a%2Ffile1.txt"))
        }
        #expect(ws.read("client/targets/a%2Ffile1.txt") == Array("hello".utf8))
        let hashed = "/targets/a/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824.file1.txt"
        #expect(server.requests().last == hashed)
        server.clearLog()
        try await withUpdater(ws, server) { u in
            let found = try #require(try await u.targetInfo("a/file1.txt"))
            #expect(u.findCachedTarget(found) == ws.path("client/targets/a%2Ffile1.txt"))
        }
        #expect(!server.requests().contains { $0.hasPrefix("/targets/") })
        #expect(try await withUpdater(ws, server) { try await $0.targetInfo("not/there.txt") } == nil)
    }

    @Test func withoutConsistentSnapshotsNamesAreNotVersioned() async throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws, [])
        try repo.run(["add-target", "file.txt", "plain"])
        let server = try TUFServer(repo, ws)
        _ = try initClient(ws, repo)
        try await withUpdater(ws, server) { u in
            let found = try #require(try await u.targetInfo("file.txt"))
            try await u.downloadTarget(found)
        }
        #expect(
            server.requests() == [
                "/metadata/2.root.json", "/metadata/timestamp.json", "/metadata/snapshot.json",
                "/metadata/targets.json", "/targets/file.txt",
            ])
        #expect(ws.read("client/targets/file.txt") == Array("plain".utf8))
    }

    @Test func rootRotationFollowsTheChainUntil404() async throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        try repo.run(["rotate-root"])
        try repo.run(["rotate-root"])
        let server = try TUFServer(repo, ws)
        let (md, _) = try initClient(ws, repo)
        try await withUpdater(ws, server) { u in
            try await u.refresh()
            #expect(u.trusted.root.signed.version == 3)
        }
        #expect(FileManager.default.contents(atPath: md + "/root.json").map(Array.init) == repo.metadata("3.root.json"))
        #expect(
            Array(server.requests().prefix(4)) == [
                "/metadata/2.root.json", "/metadata/3.root.json",
                "/metadata/4.root.json", "/metadata/timestamp.json",
            ])
    }

    @Test func a403EndsTheRotationLoopToo() async throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        try repo.run(["rotate-root"])
        try repo.control(status: ["/metadata/3.root.json": 403])
        let server = try TUFServer(repo, ws)
        _ = try initClient(ws, repo)
        try await withUpdater(ws, server) { u in
            try await u.refresh()
            #expect(u.trusted.root.signed.version == 2)
        }
        // The 403 did not make the fetcher shun the host: timestamp and the rest were asked for.
        #expect(server.requests().contains("/metadata/timestamp.json"))
    }

    @Test func aServerErrorInTheRootLoopFailsTheRefresh() async throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        try repo.control(status: ["/metadata/2.root.json": 410])
        let server = try TUFServer(repo, ws)
        _ = try initClient(ws, repo)
        let e = await expectCourierError { try await withUpdater(ws, server) { try await $0.refresh() } }
        #expect(e?.httpStatus == 410)
        #expect(!server.requests().contains("/metadata/timestamp.json"))
    }

    @Test func endlessTimestampIsCutOffAtItsCap() async throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        try repo.control(endless: ["/metadata/timestamp.json"])
        let server = try TUFServer(repo, ws)
        _ = try initClient(ws, repo)
        let start = Date()
        let e = await expectCourierError(.limit) { try await withUpdater(ws, server) { try await $0.refresh() } }
        #expect(e?.message.contains("16384") == true)
        #expect(Date().timeIntervalSince(start) < 10)
        #expect(!ws.exists("client/metadata/timestamp.json"))
    }

    @Test func endlessTargetIsCutOffAtItsLength() async throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        try repo.run(["add-target", "a/file1.txt", "hello"])
        try repo.control(endless: [
            "/targets/a/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824.file1.txt"
        ])
        let server = try TUFServer(repo, ws)
        _ = try initClient(ws, repo)
        await expectCourierError(.limit) {
            try await withUpdater(ws, server) { u in
                _ = try await u.downloadTarget(try #require(try await u.targetInfo("a/file1.txt")))
            }
        }
        #expect(ws.list("client/targets").isEmpty)
    }

    @Test func aTamperedTargetIsRefusedAndNotStored() async throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws, [])
        try repo.run(["add-target", "file.txt", "hello"])
        try Data("jello".utf8).write(to: URL(fileURLWithPath: repo.dir + "/targets/file.txt"))
        let server = try TUFServer(repo, ws)
        _ = try initClient(ws, repo)
        await expectCourierError(.signature) {
            try await withUpdater(ws, server) { u in
                _ = try await u.downloadTarget(try #require(try await u.targetInfo("file.txt")))
            }
        }
        #expect(ws.list("client/targets").isEmpty)
    }

    @Test func aLargeTargetStreamsToDiskAndALongerOneIsCutOff() async throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws, [])
        let big = ws.path("big.bin")
        // 3 MiB.
        try Data(String(repeating: "0123456789abcdef", count: 3 << 16).utf8).write(to: URL(fileURLWithPath: big))
        try repo.run(["add-target", "big.bin", "@" + big])
        try repo.run(["add-target", "short.txt", "hello"])
        try Data("hello, and then some".utf8).write(to: URL(fileURLWithPath: repo.dir + "/targets/short.txt"))
        let server = try TUFServer(repo, ws)
        _ = try initClient(ws, repo)
        // Leftovers of a crashed run are cleared, not resumed.
        try Data("junk".utf8).write(to: URL(fileURLWithPath: ws.path("client/targets/.big.bin.courier-tuf.partial")))
        try await withUpdater(ws, server) { u in
            _ = try await u.downloadTarget(try #require(try await u.targetInfo("big.bin")))
        }
        #expect(ws.read("client/targets/big.bin")?.count == 3 << 20)
        #expect(ws.list("client/targets") == ["big.bin"])
        await expectCourierError(.limit) {
            try await withUpdater(ws, server) { u in
                _ = try await u.downloadTarget(try #require(try await u.targetInfo("short.txt")))
            }
        }
        #expect(ws.list("client/targets") == ["big.bin"])
    }

    @Test func delegatedRoleNamesArePercentEncoded() async throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        try repo.run(["delegate", "role/with space", "deleg/*"])
        try repo.run(["add-target", "deleg/x.txt", "xx", "--role", "role/with space"])
        let server = try TUFServer(repo, ws)
        _ = try initClient(ws, repo)
        try await withUpdater(ws, server) { u in
            let found = try #require(try await u.targetInfo("deleg/x.txt"))
            #expect(found.role == "role/with space")
            try await u.downloadTarget(found)
        }
        #expect(server.requests().contains("/metadata/2.role%2Fwith%20space.json"))
        #expect(ws.read("client/metadata/role%2Fwith%20space.json") == repo.metadata("role%2Fwith%20space.json"))
        #expect(ws.read("client/targets/deleg%2Fx.txt") == Array("xx".utf8))
        // A second search reads the delegated role from disk instead of the network.
        server.clearLog()
        try await withUpdater(ws, server) { u in _ = try #require(try await u.targetInfo("deleg/x.txt")) }
        #expect(!server.requests().contains { $0.contains("role%2F") })
    }

    @Test func localFilesThatFailAreIgnoredAndReplaced() async throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        let server = try TUFServer(repo, ws)
        let (md, _) = try initClient(ws, repo)
        try await withUpdater(ws, server) { try await $0.refresh() }
        for role in ["timestamp", "snapshot", "targets"] {
            try Data("{not json".utf8).write(to: URL(fileURLWithPath: md + "/\(role).json"))
        }
        server.clearLog()
        try await withUpdater(ws, server) { try await $0.refresh() }
        #expect(
            server.requests() == [
                "/metadata/2.root.json", "/metadata/timestamp.json",
                "/metadata/1.snapshot.json", "/metadata/1.targets.json",
            ])
        #expect(ws.read("client/metadata/snapshot.json") == repo.metadata("1.snapshot.json"))
        #expect(ws.read("client/metadata/timestamp.json") == repo.metadata("timestamp.json"))
    }

    /// tuf-conformance's `test_unusual_role_name`: the request and the file use the quoted name.
    @Test(arguments: ["?", "#", "/delegatedrole", "../delegatedrole"])
    func unusualRoleNames(_ role: String) async throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        try repo.run(["delegate", role, "*"])
        let server = try TUFServer(repo, ws)
        _ = try initClient(ws, repo)
        let found = try await withUpdater(ws, server) { try await $0.targetInfo("nonexistent target") }
        #expect(found == nil)
        let quoted = PercentEncoding.quote(role)
        #expect(server.requests().contains("/metadata/1.\(quoted).json"), "\(server.requests())")
        #expect(
            ws.list("client/metadata")
                == ["\(quoted).json", "root.json", "snapshot.json", "targets.json", "timestamp.json"].sorted())
    }

    @Test func anExpiredRootFailsTheRefresh() async throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws, ["--expired-root"])
        let server = try TUFServer(repo, ws)
        _ = try initClient(ws, repo)
        await expectCourierError(.expired) { try await withUpdater(ws, server) { try await $0.refresh() } }
    }

    @Test func aRotatedTimestampKeyReplacesTheLocalTimestamp() async throws {
        let ws = TUFWorkspace()
        let repo = try TestRepo(ws)
        let server = try TUFServer(repo, ws)
        _ = try initClient(ws, repo)
        try await withUpdater(ws, server) { try await $0.refresh() }
        try repo.run(["rotate-timestamp-key"])
        try await withUpdater(ws, server) { u in
            try await u.refresh()
            #expect(u.trusted.root.signed.version == 2)
        }
        #expect(ws.read("client/metadata/timestamp.json") == repo.metadata("timestamp.json"))
    }

    @Test func percentEncodingIsPythonsQuoteWithNothingSafe() {
        #expect(PercentEncoding.quote("targets") == "targets")
        #expect(PercentEncoding.quote("a/b c") == "a%2Fb%20c")
        #expect(PercentEncoding.quote("../x") == "..%2Fx")
        #expect(PercentEncoding.quote("A-z_0.9~") == "A-z_0.9~")
        #expect(PercentEncoding.quote("é?%") == "%C3%A9%3F%25")
        #expect(MetadataStore.fileName(role: "role/with space") == "role%2Fwith%20space.json")
    }
}
