import CourierCore
import Foundation
import Testing

@testable import CourierInbox

/// The client half of "sender and client agree": for each row of the acceptance table that a
/// real client can be put in, the processor — real packages, store, pins — does what
/// `Acceptance.decide` says for the facts it takes (`Acceptance.Client.onClient`). With
/// `PlannerTests.senderAndClientAgree` (sender ≡ rule) this closes the loop: sender ≡ client.
@Suite(.serialized) struct AcceptanceProcessorTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var installed: UInt64?
        var pinned: UInt64?
        var revision: UInt64
        var base: UInt64?
        var testDescription: String {
            "installed \(installed.map(String.init) ?? "-") pinned \(pinned.map(String.init) ?? "-") package \(revision)\(base.map { " from \($0)" } ?? "")"
        }
    }

    static let rows: [Row] = [
        Row(revision: 100),
        Row(installed: 100, revision: 100),
        Row(installed: 100, revision: 200),
        Row(installed: 200, revision: 100),
        Row(installed: 200, pinned: 100, revision: 100),
        Row(installed: 200, pinned: 100, revision: 300),
        Row(installed: 200, pinned: 200, revision: 200),
        Row(installed: 100, pinned: 200, revision: 200),
        Row(installed: 100, revision: 200, base: 100),
        Row(installed: 100, revision: 300, base: 200),
        Row(installed: 200, revision: 300, base: 100),
        Row(revision: 200, base: 100),
        Row(installed: 200, revision: 200, base: 100),
        Row(installed: 200, pinned: 100, revision: 200, base: 100),
    ]

    @Test(arguments: rows)
    func processorDoesWhatTheRuleSays(_ r: Row) throws {
        let c = try ProcessorTests.Client()
        // Every revision's tree exists upstream, so any delta can be built.
        for rev in [100, 200, 300] as [UInt64] { _ = try c.package(rev, daily: "rev \(rev)\n") }
        let p = try c.processor()
        if let i = r.installed {
            try c.deliver(c.root + "/outbox/virus-defs_\(i).cpkg")
            #expect(p.processInbox()["virus-defs_\(i).cpkg"] == .applied(i))
        }
        if let pin = r.pinned { try p.state.writePins(["virus-defs": pin]) }
        let pkg = try c.package(r.revision, daily: "rev \(r.revision)\n", base: r.base)
        let name = (pkg as NSString).lastPathComponent
        // The rule, with the facts the processor will take (its status after reading the pins).
        var ts = p.status.types["virus-defs"] ?? .init()
        ts.pinned = r.pinned
        let rule = Acceptance.decide(
            .init(type: "virus-defs", revision: r.revision, base: r.base),
            .onClient(ts, installed: p.store.current("virus-defs"), baseWaitOver: false))
        try c.deliver(pkg)
        let outcome = p.processInbox()[name]
        switch (rule, outcome) {
        case (.accept, .applied(let rev)?): #expect(rev == r.revision)
        case (.duplicate, .duplicate?): #expect(c.inbox().isEmpty)
        case (.wait, .waiting?): #expect(c.inbox() == [name])
        case (.refuse, .refused?):
            #expect(c.quarantined() == [name])
            #expect(try c.reason(name)["code"] as? String == "rollback")
        default:
            Issue.record(
                "\(r.testDescription): the rule says \(rule), the processor did \(String(describing: outcome))")
        }
        // What the store holds agrees too.
        let now = p.store.current("virus-defs")
        if case .accept = rule { #expect(now == r.revision) } else { #expect(now == r.installed) }
    }
}
