import CourierCore
import Foundation
import Testing

@testable import CourierPull

/// `courier-pull run --json` and `mirror --json` (docs/DELIVER.md): the exact line, since
/// scripts read it — keys sorted, absent values left out, seconds to the millisecond, URLs with
/// their slashes, and untrusted text (a mirror's error) escaped down to DEL.
@Suite struct ReportJSONTests {
    /// A reason as a hostile mirror could make it: quotes, backslash, ESC, DEL, a tab.
    static let hostile = "mirror said \"no\"\u{1b}[31m\u{7f}\\ tab\t"

    @Test func pullReportLine() throws {
        let url = "http://127.0.0.1:8080/courier/"
        var r = PullReport(mirror: url, notModified: false)
        r.types = [
            PullReport.TypeLine(
                type: "virus-defs", revision: 20_261_120_001, action: "full", code: "not-installed",
                reason: "nothing installed", package: "virus-defs/20261120001/virus-defs_20261120001.cpkg",
                mirror: url, bytes: 1234, seconds: 0.1 + 0.2, transferSeconds: 0.12049, resumed: true),
            PullReport.TypeLine(
                type: "ips-rules", action: "error", code: "download", reason: Self.hostile, errorCode: .download),
        ]
        r.seconds = 1.23456
        let line = r.json()
        #expect(
            line
                == #"{"exit":16,"mirror":"http://127.0.0.1:8080/courier/","not_modified":false,"seconds":1.235,"types":["#
                + #"{"action":"full","bytes":1234,"code":"not-installed","mirror":"http://127.0.0.1:8080/courier/","#
                + #""package":"virus-defs/20261120001/virus-defs_20261120001.cpkg","reason":"nothing installed","#
                + #""resumed":true,"revision":20261120001,"seconds":0.3,"transfer_seconds":0.12,"type":"virus-defs"},"#
                + #"{"action":"error","code":"download","reason":"mirror said \"no\"\u001b[31m\u007f\\ tab\t","#
                + #""type":"ips-rules"}]}"#)
        // And it is JSON that gives the text back.
        let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let types = try #require(o["types"] as? [[String: Any]])
        #expect(types[1]["reason"] as? String == Self.hostile)
        #expect(types[1]["resumed"] == nil && types[1]["revision"] == nil)
    }

    /// Whole seconds lose their decimals, as any JSON number may; a 304 with no types.
    @Test func pullReportNotModified() {
        var r = PullReport(mirror: "https://stage.example/courier/", notModified: true)
        r.seconds = 2
        #expect(
            r.json()
                == #"{"exit":0,"mirror":"https://stage.example/courier/","not_modified":true,"seconds":2,"types":[]}"#)
    }

    @Test func relayReportLine() throws {
        var r = Relay.Report(mirror: "http://127.0.0.1:8081/", notModified: false)
        r.types = [
            Relay.TypeLine(
                type: "virus-defs", latest: 20_261_121_001, added: [20_261_120_001, 20_261_121_001],
                removed: [20_261_117_001], bytes: 4096),
            Relay.TypeLine(type: "ips-rules", error: CourierError(.integrity, Self.hostile)),
        ]
        r.indexWritten = true
        r.seconds = 0.0004
        #expect(
            r.json()
                == #"{"exit":16,"index_written":true,"not_modified":false,"seconds":0,"types":["#
                + #"{"added":[20261120001,20261121001],"bytes":4096,"latest":20261121001,"removed":[20261117001],"#
                + #""type":"virus-defs"},"#
                + #"{"added":[],"bytes":0,"error":"mirror said \"no\"\u001b[31m\u007f\\ tab\t","removed":[],"#
                + #""type":"ips-rules"}],"upstream":"http://127.0.0.1:8081/"}"#)
        var one = Relay.Report(mirror: "http://127.0.0.1:8081/", notModified: true)
        one.types = [Relay.TypeLine(type: "ips-rules", error: CourierError(.signature, "bad"))]
        let o = try #require(try JSONSerialization.jsonObject(with: Data(one.json().utf8)) as? [String: Any])
        #expect(o["exit"] as? Int == Int(ExitStatus.for(.signature).rawValue))
    }
}
