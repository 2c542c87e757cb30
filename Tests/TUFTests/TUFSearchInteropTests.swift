import CourierCore
import Testing

@testable import CourierTUF

/// A repository made by python-tuf's Metadata API (Fixtures/tuf/search_repo.json, written by
/// Fixtures/tuf/make_search_fixtures.py) and what python-tuf's Updater found for each path:
/// TargetSearch must find the same entry (the role that listed it) after loading the same roles
/// in the same order.
@Suite struct TUFSearchInteropTests {
    struct Lookup {
        let path: String
        let role: String?
        let length: Int64?
        let loaded: [String]
    }

    static let fixtureJSON: JSONValue = try! JSONValue.parse(try! fixture("search_repo.json"), limits: .init())
    static var files: [String: [UInt8]] {
        fixtureJSON[field: "files"]!.objectValue!.mapValues { Hex.decode($0.stringValue!)! }
    }
    static let lookups: [Lookup] = fixtureJSON[field: "lookups"]!.arrayValue!.map { l in
        Lookup(
            path: l[field: "path"]!.stringValue!, role: l[field: "role"]!.stringValue,
            length: l[field: "length"]!.intValue, loaded: l[field: "loaded"]!.arrayValue!.map { $0.stringValue! })
    }

    /// A client as python-tuf's refresh() leaves it: root, timestamp, snapshot, top-level targets.
    static func refreshed() throws -> TrustedMetadataSet {
        let f = files
        var set = try TrustedMetadataSet(
            rootBytes: f["root"]!, referenceTime: fixtureJSON[field: "reference_time"]!.intValue!,
            limits: JSONValue.Limits())
        try set.checkRootNotExpired()
        try set.updateTimestamp(f["timestamp"]!)
        try set.updateSnapshot(f["snapshot"]!)
        try set.updateTargets(f["targets"]!)
        return set
    }

    @Test func fixtureHasLookups() { #expect(Self.lookups.count >= 10) }

    @Test(arguments: lookups.map(\.path))
    func sameResultAsPythonTUF(_ path: String) throws {
        let want = Self.lookups.first { $0.path == path }!
        let f = Self.files
        var set = try Self.refreshed()
        var loaded: [String] = []
        let found = try TargetSearch.findTarget(path, in: &set) { role, delegator, set in
            loaded.append(role)
            try set.updateDelegatedTargets(f[role]!, role: role, delegator: delegator)
        }
        #expect(found?.role == want.role)
        #expect(found?.0.custom?[field: "role"]?.stringValue == want.role)
        #expect(found?.0.length == want.length)
        #expect(loaded == want.loaded)
    }

    /// The resumable walk (for an async loader) asks for the same roles in the same order.
    @Test(arguments: lookups.map(\.path))
    func walkAsksForTheSameRoles(_ path: String) throws {
        let want = Self.lookups.first { $0.path == path }!
        let f = Self.files
        var set = try Self.refreshed()
        var walk = TargetSearch.Walk(path)
        var asked: [String] = []
        var found: (TargetFile, String)?
        loop: while true {
            switch try walk.next(in: set) {
            case .need(let role, let delegator):
                asked.append(role)
                try set.updateDelegatedTargets(f[role]!, role: role, delegator: delegator)
            case .found(let t, let role):
                found = (t, role)
                break loop
            case .notFound: break loop
            }
        }
        #expect(asked == want.loaded)
        #expect(found?.1 == want.role)
        // Finished: asking again gives the same answer and loads nothing.
        if case .need = try walk.next(in: set) { Issue.record("walk asked for a role after finishing") }
    }
}
