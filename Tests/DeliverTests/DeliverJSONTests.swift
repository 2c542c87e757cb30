import CourierCore
import Foundation
import Testing

@testable import CourierDeliver

/// `courier-deliver verify --json`, `push --json` and `select --json` (docs/DELIVER.md): the exact
/// lines, since scripts and Ansible read them — keys sorted, integers as integers, absent values
/// left out (verify's `base`: `null`, as always), and text from outboxes and status files escaped
/// down to DEL.
@Suite struct DeliverJSONTests {
    /// A reason or name as a hostile outbox or client could make it: quote, backslash, ESC, DEL,
    /// a tab, and a name that looks like an escaped non-UTF-8 byte (the text `\xff`).
    static let hostile = "said \"no\"\u{1b}[31m\u{7f}\\ tab\t"
    static let oddName = "/srv/out/caf\\xff\u{1b}]0;x\u{7}.cpkg"

    static func manifest(kind: Manifest.Kind, base: UInt64?) -> Manifest {
        Manifest(
            type: "virus-defs", revision: 20_261_120_002, kind: kind, base: base, created: 1_700_000_000,
            expires: 1_800_000_000, provenance: [:],
            files: [
                FileEntry(path: "main.cvd", size: 1000, sha256: String(repeating: "a", count: 64), mode: 0o644),
                FileEntry(path: "daily.ndb", size: 24, sha256: String(repeating: "b", count: 64), mode: 0o644),
            ])
    }

    @Test func verifyLines() throws {
        let full = DeliverJSON.verified(
            path: Self.oddName, manifest: Self.manifest(kind: .full, base: nil), signers: ["950c41e5dfb0dcea"])
        #expect(
            full
                == #"{"base":null,"expires":"2027-01-15T08:00:00Z","files":2,"kind":"full","ok":true,"#
                + #""path":"/srv/out/caf\\xff\u001b]0;x\u0007.cpkg","payload_bytes":1024,"revision":20261120002,"#
                + #""signers":["950c41e5dfb0dcea"],"type":"virus-defs"}"#)
        let o = try #require(try JSONSerialization.jsonObject(with: Data(full.utf8)) as? [String: Any])
        #expect(o["path"] as? String == Self.oddName)
        #expect(o["base"] is NSNull)

        var delta = Self.manifest(kind: .delta, base: 20_261_120_001)
        delta.changed = ["daily.ndb"]
        #expect(
            DeliverJSON.verified(path: "/srv/out/d.cpkg", manifest: delta, signers: ["k1", "k2"])
                == #"{"base":20261120001,"expires":"2027-01-15T08:00:00Z","files":2,"kind":"delta","ok":true,"#
                + #""path":"/srv/out/d.cpkg","payload_bytes":24,"revision":20261120002,"signers":["k1","k2"],"#
                + #""type":"virus-defs"}"#)

        let failed = DeliverJSON.verifyFailed(path: Self.oddName, error: CourierError(.integrity, Self.hostile))
        #expect(
            failed
                == #"{"code":"integrity","error":"said \"no\"\u001b[31m\u007f\\ tab\t","ok":false,"#
                + #""path":"/srv/out/caf\\xff\u001b]0;x\u0007.cpkg"}"#)
        let f = try #require(try JSONSerialization.jsonObject(with: Data(failed.utf8)) as? [String: Any])
        #expect(f["error"] as? String == Self.hostile)
    }

    @Test func pushLines() throws {
        let d = Decision(
            type: "virus-defs", revision: 20_261_120_002, action: .delta,
            package: "/srv/out/virus-defs/virus-defs_20261120002_from_20261120001.cpkg", base: 20_261_120_001,
            code: "delta", reason: "client holds 20261120001")
        let copied = Pusher.Outcome(
            inbox: "/mnt/c1/inbox", group: "pilot", decision: d, state: .copied, bytes: 4096, how: "reflink",
            cleaned: [".courier-tmp-1", Self.oddName])
        #expect(
            DeliverJSON.push(copied)
                == #"{"action":"delta","base":20261120001,"bytes":4096,"cleaned":[".courier-tmp-1","#
                + #""/srv/out/caf\\xff\u001b]0;x\u0007.cpkg"],"code":"delta","group":"pilot","how":"reflink","#
                + #""inbox":"/mnt/c1/inbox","#
                + #""package":"/srv/out/virus-defs/virus-defs_20261120002_from_20261120001.cpkg","#
                + #""reason":"client holds 20261120001","result":"copied","revision":20261120002,"type":"virus-defs"}"#)

        // A skip with no revision; then a failure before any decision: only inbox, result, error.
        let skip = Decision(
            type: "ips-rules", revision: nil, action: .error, package: nil, base: nil, code: "not-in-outbox",
            reason: Self.hostile)
        #expect(
            DeliverJSON.push(Pusher.Outcome(inbox: "/mnt/c2/inbox", decision: skip, state: .skipped))
                == #"{"action":"error","code":"not-in-outbox","inbox":"/mnt/c2/inbox","#
                + #""reason":"said \"no\"\u001b[31m\u007f\\ tab\t","result":"skipped","type":"ips-rules"}"#)
        let failed = DeliverJSON.push(
            Pusher.Outcome(inbox: Self.oddName, state: .failed, error: "cannot open: \u{7f}"))
        #expect(
            failed
                == #"{"error":"cannot open: \u007f","inbox":"/srv/out/caf\\xff\u001b]0;x\u0007.cpkg","result":"failed"}"#
        )
        let o = try #require(try JSONSerialization.jsonObject(with: Data(failed.utf8)) as? [String: Any])
        #expect(o["inbox"] as? String == Self.oddName && o.count == 3)
    }

    @Test func selectLines() throws {
        let d = Decision(
            type: "virus-defs", revision: 20_261_120_001, action: .full,
            package: "/srv/out/virus-defs/virus-defs_20261120001.cpkg", base: nil, code: "new-client",
            reason: "no status file")
        #expect(
            DeliverJSON.select(d, problem: nil)
                == #"{"action":"full","code":"new-client","path":"/srv/out/virus-defs/virus-defs_20261120001.cpkg","#
                + #""reason":"no status file","revision":20261120001,"type":"virus-defs"}"#)
        // A package that failed verification: an error, its reason, no path.
        #expect(
            DeliverJSON.select(d, problem: Self.hostile)
                == #"{"action":"error","code":"verify","reason":"said \"no\"\u001b[31m\u007f\\ tab\t","#
                + #""revision":20261120001,"type":"virus-defs"}"#)
        let delta = Decision(
            type: "virus-defs", revision: 20_261_120_002, action: .delta, package: "/srv/out/d.cpkg",
            base: 20_261_120_001, code: "delta", reason: "r")
        #expect(
            DeliverJSON.select(delta, problem: nil)
                == #"{"action":"delta","base":20261120001,"code":"delta","path":"/srv/out/d.cpkg","reason":"r","#
                + #""revision":20261120002,"type":"virus-defs"}"#)
        let none = Decision(
            type: "ips-rules", revision: nil, action: .error, package: nil, base: nil, code: "unknown-type",
            reason: "no such type")
        #expect(
            DeliverJSON.select(none, problem: nil)
                == #"{"action":"error","code":"unknown-type","reason":"no such type","type":"ips-rules"}"#)
    }
}
