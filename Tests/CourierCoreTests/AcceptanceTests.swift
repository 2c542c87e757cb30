import CourierCore
import Testing

/// The acceptance rule as a table (docs/INBOXD.md, "The acceptance rule"): one row per case, the
/// package's facts and the client's, and the verdict. `PlannerTests.senderAndClientAgree` checks
/// that `courier-deliver`'s decision agrees with the client's verdict on every combination.
@Suite struct AcceptanceTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var revision: UInt64
        var base: UInt64? = nil
        var installed: UInt64? = nil
        var pinned: UInt64? = nil
        var refused: [UInt64] = []
        var waitOver = false
        var force = false
        /// accept, duplicate, wait, or refuse:<rule>
        var expect: String
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(name: "new client, full package", revision: 100, expect: "accept"),
        Row(name: "installed again", revision: 100, installed: 100, expect: "duplicate"),
        Row(name: "newer full", revision: 200, installed: 100, expect: "accept"),
        Row(name: "older: rollback held", revision: 100, installed: 200, expect: "refuse:held"),
        Row(
            name: "older, pinned there: the rollback the pin asks for", revision: 100, installed: 200, pinned: 100,
            expect: "accept"),
        Row(
            name: "pinned elsewhere: newer refused", revision: 300, installed: 200, pinned: 100, expect: "refuse:pinned"
        ),
        Row(name: "pinned and installed: duplicate", revision: 200, installed: 200, pinned: 200, expect: "duplicate"),
        Row(
            name: "installed again while pinned elsewhere: still a duplicate", revision: 200, installed: 200,
            pinned: 100, expect: "duplicate"),
        Row(name: "pinned ahead of installed", revision: 200, installed: 100, pinned: 200, expect: "accept"),
        Row(name: "refused before", revision: 200, installed: 100, refused: [200], expect: "refuse:refused"),
        Row(
            name: "refused before, forced", revision: 200, installed: 100, refused: [200], force: true, expect: "accept"
        ),
        Row(
            name: "a newer revision than the refused one", revision: 300, installed: 100, refused: [200],
            expect: "accept"),
        Row(
            name: "refused before and pinned there", revision: 200, installed: 100, pinned: 200, refused: [200],
            expect: "refuse:refused"),
        Row(
            name: "older and refused: held comes first", revision: 100, installed: 200, refused: [100],
            expect: "refuse:held"),
        Row(name: "delta from the installed revision", revision: 200, base: 100, installed: 100, expect: "accept"),
        Row(name: "delta from a revision still to come", revision: 300, base: 200, installed: 100, expect: "wait"),
        Row(
            name: "delta whose wait is over", revision: 300, base: 200, installed: 100, waitOver: true,
            expect: "refuse:base-missing"),
        Row(name: "delta from an older base", revision: 300, base: 100, installed: 200, expect: "refuse:base-missing"),
        Row(name: "delta on a new client", revision: 200, base: 100, expect: "wait"),
        Row(
            name: "delta of a refused revision", revision: 200, base: 100, installed: 100, refused: [200],
            expect: "refuse:refused"),
        Row(name: "delta of the installed revision", revision: 200, base: 100, installed: 200, expect: "duplicate"),
    ]

    static func word(_ v: Acceptance.Verdict) -> String {
        switch v {
        case .accept: return "accept"
        case .duplicate: return "duplicate"
        case .wait: return "wait"
        case .refuse(let rule, _): return "refuse:" + rule.rawValue
        }
    }

    static func refusal(_ rev: UInt64) -> ClientStatus.Refused {
        .init(
            revision: rev, code: "apply-failed", reason: "test command exited 1: bad\nline", at: "2026-11-29T16:00:00Z",
            package: "virus-defs_\(rev).cpkg")
    }

    @Test(arguments: rows)
    func verdict(_ r: Row) {
        let c = Acceptance.Client(
            installed: r.installed, pinned: r.pinned, refused: r.refused.map(Self.refusal),
            baseWaitOver: r.waitOver, force: r.force)
        let v = Acceptance.decide(.init(type: "virus-defs", revision: r.revision, base: r.base), c)
        #expect(Self.word(v) == r.expect, "\(r.name): \(v)")
        if case .refuse(.refused, let why) = v {
            // The recorded reason is passed on escaped: a status file is the client's text.
            #expect(
                why.contains("apply-failed") && why.contains("bad\\nline") && !why.contains("\n")
                    && why.contains("--force"))
        }
    }

    /// The client side never drops a refused revision that arrives again: it tries it.
    @Test func theClientTriesARefusedRevisionAgain() {
        var s = ClientStatus.TypeStatus()
        s.installed = 100
        s.refused = [Self.refusal(200)]
        let v = Acceptance.decide(
            .init(type: "virus-defs", revision: 200), .onClient(s, installed: 100, baseWaitOver: false))
        #expect(v == .accept)
        #expect(Acceptance.decide(.init(type: "virus-defs", revision: 200), .init(s)) != .accept)
    }

    @Test func whichRefusalsCount() {
        #expect(Acceptance.counts(.applyFailed, delta: false) && Acceptance.counts(.applyFailed, delta: true))
        for c in [CourierError.Code.integrity, .unsafeEntry, .limit] {
            #expect(Acceptance.counts(c, delta: false))
            #expect(!Acceptance.counts(c, delta: true), "\(c) of a delta: the full package may apply")
        }
        for c in [
            CourierError.Code.baseMismatch, .rollback, .expired, .malformed, .signature, .revokedKey, .wrongType, .io,
        ] {
            #expect(!Acceptance.counts(c, delta: false), "\(c)")
        }
    }

    @Test func theRefusedListIsBoundedAndClearedByANewerApply() {
        var l: [ClientStatus.Refused] = []
        for r in (1...40).reversed() { l = Acceptance.recording(Self.refusal(UInt64(r)), in: l) }
        l = Acceptance.recording(Self.refusal(40), in: l)
        #expect(l.map(\.revision) == Array(25...40).map(UInt64.init))
        #expect(Acceptance.clearing(upTo: 30, in: l).map(\.revision) == Array(31...40).map(UInt64.init))
        #expect(Acceptance.clearing(upTo: 40, in: l).isEmpty)
    }

    /// status.json files written before the field existed still decode; an empty list is absent.
    @Test func statusWithoutRefusedDecodes() throws {
        let old =
            #"{"format":1,"host":"h","updated":"2026-11-29T00:00:00Z","types":{"virus-defs":{"installed":5,"kept":[],"pending":[]}}}"#
        let s = try ClientStatus.decode(Array(old.utf8), path: "old.json")
        #expect(s.types["virus-defs"]?.refused == nil && s.quarantine == nil)
        var t = s
        t.types["virus-defs"]?.refused = [Self.refusal(6)]
        t.quarantine = .init(files: 2, bytes: 10, evicted: 3)
        let again = try ClientStatus.decode(t.encoded(), path: "new.json")
        #expect(again == t)
        #expect(!String(decoding: s.encoded(), as: UTF8.self).contains("refused"))
    }
}
