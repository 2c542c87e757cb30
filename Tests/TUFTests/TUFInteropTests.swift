import CourierCore
import Testing

@testable import CourierTUF

/// Scenarios run through python-tuf 7.0.1's TrustedMetadataSet (Fixtures/tuf/tms_cases.json,
/// written by Fixtures/tuf/make_tms_fixtures.py), replayed here: every step must get the same
/// decision, and the same trusted versions afterwards (python-tuf keeps an expired intermediate
/// timestamp/snapshot; so must we).
@Suite struct TUFInteropTests {
    struct Step {
        let op: String, data: [UInt8], role: String, delegator: String, trusted: Bool, result: String
        let after: [String: Int64?]
    }
    struct Case {
        let name: String, referenceTime: Int64, root: [UInt8], rootResult: String, steps: [Step]
    }

    static let cases: [Case] = {
        let j = try! JSONValue.parse(try! fixture("tms_cases.json"), limits: .init())
        let blobs = j[field: "blobs"]!.arrayValue!.map { Hex.decode($0.stringValue!)! }
        return j[field: "cases"]!.arrayValue!.map { c in
            Case(
                name: c[field: "name"]!.stringValue!, referenceTime: c[field: "reference_time"]!.intValue!,
                root: blobs[Int(c[field: "root"]!.intValue!)], rootResult: c[field: "root_result"]!.stringValue!,
                steps: c[field: "steps"]!.arrayValue!.map { s in
                    var after: [String: Int64?] = [:]
                    for (k, v) in s[field: "after"]!.objectValue! { after[k] = v.intValue }
                    return Step(
                        op: s[field: "op"]!.stringValue!, data: blobs[Int(s[field: "data"]!.intValue!)],
                        role: s[field: "role"]!.stringValue!, delegator: s[field: "delegator"]!.stringValue!,
                        trusted: s[field: "trusted"]!.boolValue!, result: s[field: "result"]!.stringValue!, after: after
                    )
                })
        }
    }()

    /// python-tuf exception class → the CourierError code we throw; nil: any refusal will do
    /// (python-tuf's generic RepositoryError / ValueError / DeserializationError).
    static func expectedCode(_ python: String) -> CourierError.Code? {
        switch python {
        case "UnsignedMetadataError", "LengthOrHashMismatchError": return .signature
        case "BadVersionNumberError": return .rollback
        case "EqualVersionNumberError": return .tufEqualVersion
        case "ExpiredMetadataError": return .expired
        case "RuntimeError": return .tufOrder
        default: return nil
        }
    }

    @Test func fixtureHasCases() { #expect(Self.cases.count >= 50) }

    @Test(arguments: cases.map(\.name))
    func sameDecisionsAsPythonTUF(_ name: String) throws {
        let c = Self.cases.first { $0.name == name }!
        let loaded: Result<TrustedMetadataSet, Error> = Result {
            try TrustedMetadataSet(rootBytes: c.root, referenceTime: c.referenceTime, limits: JSONValue.Limits())
        }
        guard case .success(var set) = loaded else {
            #expect(c.rootResult != "ok", "root refused here but accepted by python-tuf")
            return
        }
        #expect(c.rootResult == "ok", "root accepted here but python-tuf said \(c.rootResult)")
        for (n, s) in c.steps.enumerated() {
            // nil when the step is accepted: python-tuf's verdict may be either.
            var code: CourierError.Code?
            do {
                switch s.op {
                case "root": _ = try set.updateRoot(s.data)
                case "timestamp": _ = try set.updateTimestamp(s.data)
                case "snapshot": _ = try set.updateSnapshot(s.data, trusted: s.trusted)
                case "targets": _ = try set.updateTargets(s.data)
                case "delegated": _ = try set.updateDelegatedTargets(s.data, role: s.role, delegator: s.delegator)
                default: Issue.record("unknown op \(s.op)")
                }
            } catch {
                code = (error as? CourierError)?.code ?? CourierError.Code("not-a-CourierError: \(error)")
            }
            if s.result == "ok" {
                #expect(
                    code == nil, "step \(n) (\(s.op)): python-tuf accepted, we refused with \(String(describing: code))"
                )
            } else if let want = Self.expectedCode(s.result) {
                #expect(code == want, "step \(n) (\(s.op)): python-tuf \(s.result), we \(String(describing: code))")
            } else {
                #expect(code != nil, "step \(n) (\(s.op)): python-tuf refused (\(s.result)), we accepted")
            }
            let ours: [String: Int64?] = [
                "root": set.root.signed.version, "timestamp": set.timestamp?.signed.version,
                "snapshot": set.snapshot?.signed.version, "targets": set.targets?.signed.version,
                "role1": set.targetsRole("role1")?.signed.version,
            ]
            for (role, v) in s.after {
                #expect(
                    ours[role] == v,
                    "step \(n) (\(s.op)): trusted \(role) version here \(String(describing: ours[role] ?? nil)), python-tuf \(String(describing: v))"
                )
            }
        }
    }
}
