import CourierCore
import Foundation
import Testing

@testable import CourierDeliver

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

    func decide(
        _ s: ClientStatus.TypeStatus?, want: RevisionSpec = .latest, note: String? = nil, waiting: [String] = []
    ) -> Decision {
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
        s.lastError = .init(
            at: "2026-11-29T00:00:00Z", package: "virus-defs_300_from_200.cpkg", code: "base-mismatch",
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
        try FileManager.default.createDirectory(
            atPath: fleet.outbox + "/virus-defs/.staging-400", withIntermediateDirectories: true)
        FileManager.default.createFile(
            atPath: fleet.outbox + "/virus-defs/.staging-400/virus-defs_400.cpkg", contents: Data("x".utf8))
        let c = try Catalog.scan(fleet.outbox)
        #expect(c.types["virus-defs"]!.revisions.keys.sorted() == [100, 200, 300])
    }

    static func refusal(_ rev: UInt64) -> ClientStatus.Refused {
        .init(
            revision: rev, code: "apply-failed", reason: "test command exited 1", at: "2026-11-29T16:00:00Z",
            package: "virus-defs_\(rev).cpkg")
    }

    /// Issue #16: a revision the client refused is not sent again, with the client's reason;
    /// `--force` sends it; a newer one is sent as usual.
    @Test func refusedRevisionIsSkippedUnlessForced() {
        var s = status(installed: 200)
        s.refused = [Self.refusal(300)]
        let d = decide(s)
        #expect(d.action == .none && d.code == "refused" && d.revision == 300)
        #expect(
            d.reason.contains("apply-failed") && d.reason.contains("test command exited 1")
                && d.reason.contains("--force"))
        let forced = Planner.decide(
            type: "virus-defs", want: .latest, catalog: catalog, status: s, statusNote: nil, waiting: [], force: true)
        #expect(forced.action == .delta && forced.base == 200)
        s.refused = [Self.refusal(200)]  // an older refusal does not hold back 300
        #expect(decide(s, want: .latest).action == .delta)
    }

    /// The point of issue #16.3: for every combination of the client's facts and the revision
    /// wanted, what the sender decides agrees with what the client will do with what it sends
    /// (`Acceptance.Client.onClient`, the facts courier-inboxd takes). A sender sends only what
    /// the client accepts; for what it holds back, its code is the client's reason. The one
    /// deliberate difference: a refused revision is held back by the sender (unless forced) but
    /// tried again by the client when it arrives anyway.
    @Test func senderAndClientAgree() {
        var rows = 0
        for installed in [nil, 100, 200, 300] as [UInt64?] {
            for pinned in [nil, 100, 200] as [UInt64?] {
                for refused in [[], [200], [300]] as [[UInt64]] {
                    for want in [100, 200, 300] as [UInt64] {
                        for force in [false, true] {
                            var s = status(installed: installed, pinned: pinned)
                            s.refused = refused.isEmpty ? nil : refused.map(Self.refusal)
                            let row =
                                "installed \(installed.map(String.init) ?? "-") pinned \(pinned.map(String.init) ?? "-") refused \(refused) want \(want) force \(force)"
                            let d = Planner.decide(
                                type: "virus-defs", want: .named(want), catalog: catalog,
                                status: installed == nil && pinned == nil && refused.isEmpty ? nil : s,
                                statusNote: nil, waiting: [], force: force)
                            let client = Acceptance.Client.onClient(s, installed: installed, baseWaitOver: false)
                            // What arrives at the client: what the sender chose, else the full package (a copier that did not ask).
                            let base = d.action == .delta ? d.base : nil
                            let v = Acceptance.decide(.init(type: "virus-defs", revision: want, base: base), client)
                            switch d.action {
                            case .full, .delta:
                                #expect(v == .accept, "\(row): sender sends \(d.code), client says \(v)")
                                if let b = base {
                                    #expect(b == installed, "\(row): a delta from what the client holds")
                                }
                            case .none:
                                switch d.code {
                                case "up-to-date": #expect(v == .duplicate, "\(row)")
                                case "pinned", "held":
                                    if case .refuse(let rule, _) = v {
                                        #expect(rule.rawValue == d.code, "\(row)")
                                    } else {
                                        Issue.record("\(row): sender says \(d.code), client says \(v)")
                                    }
                                case "refused":
                                    #expect(!force && refused.contains(want), "\(row)")
                                    #expect(v == .accept, "\(row): the client tries a refused revision that arrives")
                                default: Issue.record("\(row): unexpected code \(d.code)")
                                }
                            case .error: Issue.record("\(row): \(d.reason)")
                            }
                            // A refused revision, not forced: held back, whatever the client would do with it.
                            if !force, refused.contains(want), installed != want, pinned == nil || pinned == want,
                                installed.map({ want >= $0 }) ?? true
                            {
                                #expect(d.code == "refused", "\(row): a refused revision sent (\(d.code))")
                            }
                            // And the converse: what the client would take, the sender sends (forced past refusals).
                            if v == .accept && (force || !refused.contains(want)) {
                                #expect(
                                    d.action == .full || d.action == .delta,
                                    "\(row): client accepts, sender says \(d.code)")
                            }
                            rows += 1
                        }
                    }
                }
            }
        }
        #expect(rows == 216)
    }
}
