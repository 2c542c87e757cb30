import CourierCore
import Foundation
import Testing

@testable import CourierInbox

/// What may create state: only configured types, or types a verified apply installed (issue #11,
/// item 5). File names are chosen by whoever writes into the inbox; nothing unsigned may add a
/// row to status.json, where `courier-deliver report` would show it as a stale client.
@Suite(.serialized) struct ProcessorStateTests {
    typealias Client = ProcessorTests.Client

    func rows(_ c: Client) throws -> [String] {
        let s = try #require(try ClientStatus.load(c.root + "/state/status.json"))
        return s.types.keys.sorted()
    }

    @Test func unsignedNamesAndUnconfiguredTypesCreateNoRows() throws {
        let c = try Client()
        try FileManager.default.createDirectory(atPath: c.root + "/inbox", withIntermediateDirectories: true)
        // Garbage under a package-like name, old enough to be taken by the rescan.
        try Data("not a package\n".utf8).write(to: URL(fileURLWithPath: c.root + "/inbox/garbage_001.cpkg"))
        var times = [timespec(tv_sec: time(nil) - 10, tv_nsec: 0), timespec(tv_sec: time(nil) - 10, tv_nsec: 0)]
        utimensat(AT_FDCWD, c.root + "/inbox/garbage_001.cpkg", &times, 0)
        // A signed package of a type this client does not configure.
        try c.deliver(c.package(3, daily: "x\n", type: "ips-rules"))
        // A file of an unknown type still being written: pending, but for no row.
        let held = open(c.root + "/inbox/other_5.cpkg", O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        try #require(held >= 0)
        defer { close(held) }
        // A row an older daemon left for a refused package of an unconfigured type.
        var old = ClientStatus.empty(host: "h")
        old.types["stale-type"] = .init()
        old.types["stale-type"]?.lastError = .init(
            at: "2026-01-01T00:00:00Z", package: "stale-type_1.cpkg", code: "wrong-type", reason: "x")
        try StateFiles(dir: c.root + "/state").writeStatus(old)

        let p = try c.processor()
        let r = p.processInbox()
        #expect(r["garbage_001.cpkg"] != nil && r["ips-rules_3.cpkg"] != nil, "\(r)")
        #expect(c.quarantined() == ["garbage_001.cpkg", "ips-rules_3.cpkg"])
        #expect(c.inbox() == ["other_5.cpkg"])
        let left = try rows(c)
        #expect(left.isEmpty, "rows: \(left)")
        #expect(p.status.types.isEmpty, "\(p.status.types)")

        // A configured type gets its row: pending for a delta waiting for its base.
        try c.package(1, daily: "one\n")
        try c.deliver(c.package(2, daily: "two\n", base: 1))
        _ = p.processInbox()
        #expect(try rows(c) == ["virus-defs"])
        #expect(p.status.types["virus-defs"]?.pending == ["virus-defs_2_from_1.cpkg"])
    }
}

/// status.json with the daemon's `retrying` marker still reads as a `ClientStatus` (push,
/// select and report ignore the key), and nothing of `ClientStatus` is lost on the way.
@Suite struct StatusDocumentTests {
    @Test func theRetryingMarkerRoundTrips() throws {
        let dir =
            FileManager.default.temporaryDirectory.path
            + "/courier-statusdoc-\(getpid())-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let files = try StateFiles(dir: dir)
        var s = ClientStatus.empty(host: "h")
        s.types["virus-defs"] = .init()
        s.types["virus-defs"]?.installed = 7
        s.types["virus-defs"]?.kept = [5, 6]
        s.types["virus-defs"]?.pending = ["virus-defs_8.cpkg"]
        s.types["virus-defs"]?.lastError = .init(
            at: "2026-01-01T00:00:00Z", package: "virus-defs_8.cpkg", code: "io", reason: "full; will retry in 4 s")
        s.types["ips-rules"] = .init()
        try files.writeStatus(s, retrying: ["virus-defs": ["virus-defs_8.cpkg"]])
        let text = try String(contentsOfFile: files.statusPath, encoding: .utf8)
        #expect(text.contains("\"retrying\" : [\n        \"virus-defs_8.cpkg\"\n      ]"), "\(text)")
        #expect(text.contains("\"last_error\""), "snake case as ClientStatus writes it: \(text)")
        #expect(try ClientStatus.load(files.statusPath) == s)
        // Without a marker, the file is exactly what ClientStatus writes.
        try files.writeStatus(s)
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: files.statusPath))) == s.encoded())
    }
}

/// Which failures leave a package in the inbox for a retry, and how long the daemon waits.
@Suite struct TransientTests {
    @Test func errnosAndBackoff() {
        #expect(Transient.isTransient(CourierError.io("write", path: "x", errno: .noSpace)))
        #expect(Transient.isTransient(CourierError.io("mkdir", path: "x", errno: .readOnlyFileSystem)))
        #expect(
            Transient.isTransient(
                CourierError(.daemon, "wrapped", cause: CourierError.io("open", path: "x", errno: .tooManyOpenFiles))))
        #expect(!Transient.isTransient(CourierError.io("open", path: "x", errno: .permissionDenied)))
        #expect(!Transient.isTransient(CourierError(.malformed, "truncated")))
        #expect((1...9).map { Transient.backoff(attempt: $0) } == [1, 2, 4, 8, 16, 32, 60, 60, 60])
    }
}
