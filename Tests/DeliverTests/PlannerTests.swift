import CourierCore
@testable import CourierDeliver
import Foundation
import Testing

/// The decision table of docs/DELIVER.md, one rule at a time, on a real outbox.
@Suite struct PlannerTests {
    let fleet = Fleet("planner")
    let catalog: Catalog

    init() throws {
        try fleet.publish("virus-defs", 100)
        try fleet.publish("virus-defs", 200, bases: [100])
        try fleet.publish("virus-defs", 300, bases: [200])
        catalog = try Catalog.scan(fleet.outbox)
    }

    func status(installed: UInt64?, pinned: UInt64? = nil) -> ClientStatus.TypeStatus {
        var s = ClientStatus.TypeStatus()
        s.installed = installed
        s.pinned = pinned
        return s
    }

    func decide(_ s: ClientStatus.TypeStatus?, want: RevisionSpec = .latest, note: String? = nil, waiting: [String] = []) -> Decision {
        Planner.decide(type: "virus-defs", want: want, catalog: catalog, status: s, statusNote: note, waiting: waiting)
    }

    @Test func catalogReadsTheOutbox() {
        let e = catalog.types["virus-defs"]!
        #expect(e.latest == 300)
        #expect(e.revisions.keys.sorted() == [100, 200, 300])
        #expect(e.revisions[300]!.deltas.keys.sorted() == [200])
        #expect(e.revisions[100]!.deltas.isEmpty)
    }

    @Test func newClientGetsTheFullPackage() {
        let d = decide(nil, note: "no status file at x")
        #expect(d.action == .full && d.revision == 300 && d.code == "no-status")
        #expect(d.package == fleet.fullPath("virus-defs", 300))
    }

    @Test func clientHoldingTheBaseGetsTheDelta() {
        let d = decide(status(installed: 200))
        #expect(d.action == .delta && d.base == 200 && d.code == "delta")
        #expect(d.package == fleet.deltaPath("virus-defs", 300, from: 200))
    }

    /// Issue #13: a client whose base files differ from the delta's refuses it (base-mismatch);
    /// the next push sends it the full package instead of the same delta again.
    @Test func clientThatRefusedTheDeltaGetsTheFull() {
        var s = status(installed: 200)
        s.lastError = .init(at: "2026-11-29T00:00:00Z", package: "virus-defs_300_from_200.cpkg", code: "base-mismatch",
                            reason: "base file db/main.cvd is missing")
        let d = decide(s)
        #expect(d.action == .full && d.code == "delta-refused" && d.revision == 300)
        #expect(d.package == fleet.fullPath("virus-defs", 300))
        #expect(d.reason.contains("base-mismatch") && d.reason.contains("db/main.cvd"))
        // An error about another package does not change the choice.
        s.lastError!.package = "virus-defs_200.cpkg"
        #expect(decide(s).action == .delta)
    }

    @Test func clientTooFarBehindForADeltaGetsTheFull() {
        let d = decide(status(installed: 100))
        #expect(d.action == .full && d.code == "no-delta")
    }

    @Test func upToDateClientGetsNothing() {
        #expect(decide(status(installed: 300)).code == "up-to-date")
    }

    @Test func packageAlreadyWaitingIsNotSentAgain() {
        let d = decide(status(installed: 200), waiting: ["virus-defs_300_from_200.cpkg", "other_300.cpkg"])
        #expect(d.action == .none && d.code == "waiting")
        // A package of another revision or type waiting does not count.
        #expect(decide(status(installed: 200), waiting: ["virus-defs_200.cpkg", "ips_300.cpkg"]).action == .delta)
    }

    @Test func pinnedClientIsRespected() {
        #expect(decide(status(installed: 200, pinned: 200)).code == "pinned")
        // Pinned to what is wanted, not yet installed: send it (a rollback the client accepts).
        let back = decide(status(installed: 300, pinned: 100), want: .named(100))
        #expect(back.action == .full && back.revision == 100)
    }

    @Test func rollbackWithoutPinIsHeld() {
        let d = decide(status(installed: 300), want: .named(200))
        #expect(d.action == .none && d.code == "held")
        #expect(d.reason.contains("pin"))
    }

    @Test func revisionNotInOutboxIsAnError() {
        let d = decide(status(installed: 100), want: .named(250))
        #expect(d.action == .error && d.code == "not-in-outbox")
        let u = Planner.decide(type: "nope", want: .latest, catalog: catalog, status: nil, statusNote: nil, waiting: [])
        #expect(u.action == .error && u.code == "unknown-type")
    }

    @Test func dotNamesInTheOutboxAreIgnored() throws {
        // A stager crashed mid-publish: its .staging directory must not be offered.
        try FileManager.default.createDirectory(atPath: fleet.outbox + "/virus-defs/.staging-400", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: fleet.outbox + "/virus-defs/.staging-400/virus-defs_400.cpkg", contents: Data("x".utf8))
        let c = try Catalog.scan(fleet.outbox)
        #expect(c.types["virus-defs"]!.revisions.keys.sorted() == [100, 200, 300])
    }
}
