import CourierCore
import CourierStage
import CourierTestSupport
import Foundation
import Logging
import Testing

/// `Tests/Support/faultserver.py` for the stager's url source: deterministic bodies with ETags,
/// 304s, and a JSON line per request with its headers.
final class FeedServer {
    let process = Process()
    let port: Int
    let logPath: String

    init(_ w: StageWorkspace, name: String) throws {
        logPath = w.path(name + ".log")
        FileManager.default.createFile(atPath: logPath, contents: nil)
        port = try TestServers.startPython(process, script: "faultserver.py", [logPath])
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// Each request's headers as the server saw them.
    func requests() -> [[String: Any]] {
        let text = String(decoding: FileManager.default.contents(atPath: logPath) ?? Data(), as: UTF8.self)
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func headers(_ i: Int) -> [String: String] { (requests()[i]["headers"] as? [String: String]) ?? [:] }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

/// Every log line the stager writes (message and metadata), at trace level.
final class StageLogCapture: Sendable {
    private let lines = Locked<[String]>([])  // not Mutex: ThreadSanitizer sees no lock in it (CourierCore Locked)
    var all: [String] { lines.withLock { $0 } }

    var logger: Logger {
        var l = Logger(label: "stage-test") { _ in Handler(capture: self) }
        l.logLevel = .trace
        return l
    }

    struct Handler: LogHandler {
        let capture: StageLogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let md = metadata.merging(event.metadata ?? [:]) { $1 }
            capture.lines.withLock { $0.append("\(event.level) \(event.message) \(md)") }
        }
    }
}

@Suite(.serialized) struct MirrorSourceTests {
    func runLogged(_ cfg: StageConfig, _ logs: StageLogCapture) async throws -> CycleReport {
        try await StageRunner(config: cfg, logger: logs.logger).run()
    }

    @Test func mirrorsFailOverAndTheReportNamesTheMirror() async throws {
        let w = StageWorkspace()
        let a = try FeedServer(w, name: "a")
        let b = try FeedServer(w, name: "b")
        defer {
            a.stop()
            b.stop()
        }
        let dead = "http://127.0.0.1:1/feed.bin"  // port 1: nobody listens
        let ma = a.url("/file?size=3000&name=a")
        let mb = b.url("/file?size=3000&name=b")
        let cfg = try w.config(
            """
            [types.av-defs]
            source = "url"
            url = ["\(dead)", "\(ma)", "\(mb)"]
            file_name = "feed.bin"
            """, extra: "[http]\nretry_for = \"0s\"")
        let logs = StageLogCapture()
        let r1 = try await runLogged(cfg, logs)
        #expect(r1.exitCode == 0, "\(r1.summary())")
        #expect(r1.types[0].status == .published && r1.types[0].mirror == ma, "\(r1.json())")
        #expect(r1.json().contains("\"mirror\":\"\(ma)\""))
        #expect(r1.summary().contains("from mirror \(ma)"))
        #expect(logs.all.contains { $0.contains("served by mirror 2: \(ma)") })
        #expect(b.requests().isEmpty)

        // Mirror A goes away. B is asked without A's validators (they name A's version), serves the
        // same bytes: unchanged, and B's validators are remembered beside A's.
        a.stop()
        let r2 = try await runLogged(cfg, logs)
        #expect(r2.types[0].status == .unchanged && r2.types[0].mirror == mb, "\(r2.summary())")
        #expect(r2.types[0].detail.contains("content equals revision"), "\(r2.types[0].detail)")
        #expect(b.headers(0)["If-None-Match"] == nil, "\(b.headers(0))")
        // Next run: B's own validators go to B (the failed mirrors are tried after it): a 304.
        let r3 = try await runLogged(cfg, logs)
        #expect(
            r3.types[0].status == .unchanged && r3.types[0].detail.contains("HTTP 304 from \(mb)"),
            "\(r3.types[0].detail)")
        #expect(b.headers(1)["If-None-Match"] == "\"b-3000\"")
        #expect(b.requests().count == 2)
    }

    @Test func headersAndCredentialsReachTheServerButNotTheReportJSONOrLog() async throws {
        let w = StageWorkspace()
        let s = try FeedServer(w, name: "s")
        defer { s.stop() }
        let token = "licence-7d1e-planted-secret"
        let password = "upstream-pw-planted-secret"
        let cfg = try w.config(
            """
            [types.ips-rules]
            source = "url"
            url = "\(s.url("/file?size=100&name=s"))"
            file_name = "rules.bin"
            user = "stager"
            password = "\(password)"
            headers = { "X-Licence" = "\(token)" }
            """, extra: "[http]\nretry_for = \"0s\"")
        let logs = StageLogCapture()
        let r = try await runLogged(cfg, logs)
        #expect(r.exitCode == 0, "\(r.summary())")
        let h = s.headers(0)
        #expect(h["X-Licence"] == token)
        #expect(h["Authorization"] == "Basic " + Data("stager:\(password)".utf8).base64EncodedString())
        // A failing run too: the message names the URL, never the secrets.
        let bad = try w.config(
            """
            [types.ips-rules]
            source = "url"
            url = "\(s.url("/notfound"))"
            user = "stager"
            password = "\(password)"
            headers = { "X-Licence" = "\(token)" }
            """, extra: "[http]\nretry_for = \"0s\"")
        let r2 = try await runLogged(bad, logs)
        #expect(r2.exitCode == 9)
        let b64 = Data("stager:\(password)".utf8).base64EncodedString()
        for text in logs.all + [r.summary(), r.json(), r2.summary(), r2.json(), "\(cfg.types[0].source)"] {
            #expect(!text.contains(token) && !text.contains(password) && !text.contains(b64), "\(text)")
        }
    }

    @Test func minIntervalSkipsTheTypeAsUnchanged() async throws {
        let w = StageWorkspace()
        let s = try FeedServer(w, name: "s")
        defer { s.stop() }
        let cfg = try w.config(
            """
            [types.av-defs]
            source = "url"
            url = "\(s.url("/file?size=100&name=s"))"
            file_name = "f.bin"
            min_interval = "1h"
            """, extra: "[http]\nretry_for = \"0s\"")
        let r1 = try await run(cfg)
        #expect(r1.types[0].status == .published, "\(r1.summary())")
        // The run's own re-check (max_cycles) contacts the host again: the same run may.
        let contacted = s.requests().count
        #expect(contacted == 2)
        try await Task.sleep(for: .milliseconds(1100))  // the next run starts in a later second
        let r2 = try await run(cfg)
        #expect(r2.exitCode == 0 && r2.types[0].status == .unchanged, "\(r2.summary())")
        #expect(
            r2.types[0].detail.hasPrefix("min_interval: 127.0.0.1:\(s.port) was contacted"), "\(r2.types[0].detail)")
        #expect(s.requests().count == contacted, "a later run does not contact the host")
    }

    @Test func configAcceptsURLListsAndRefusesBadTransferKeys() throws {
        let w = StageWorkspace()
        let c = try w.config(
            """
            [types.t]
            source = "url"
            urls = ["https://a.example/f.tar.gz", "https://b.example/f.tar.gz"]
            checksum_url = ["https://a.example/f.sha256", "https://b.example/f.sha256"]
            signature_url = "https://a.example/f.sig"
            vendor_key = "v.pub"
            max_rate = "2M"
            ca_file = "ca.pem"
            ca_mode = "replace"
            """, extra: "[http]\nmin_interval = \"30m\"\nforbidden_cooldown = \"2h\"")
        guard case .url(let spec) = c.types[0].source else {
            Issue.record("not url")
            return
        }
        #expect(spec.urls.count == 2 && spec.url == "https://a.example/f.tar.gz" && spec.checksumURLs.count == 2)
        #expect(spec.signatureURLs == ["https://a.example/f.sig"])
        #expect(
            spec.transfer.maxRate == 2 << 20 && spec.transfer.minInterval == 1800
                && spec.transfer.forbiddenCoolDown == 7200)
        #expect(spec.transfer.caFile == w.path("ca.pem") && spec.transfer.caMode == "replace")
        for (toml, key) in [
            ("url = \"https://a/x\"\nurls = [\"https://b/x\"]", "urls"),
            ("url = [\"https://a/x\", \"https://a/x\"]", "url"),
            ("url = \"https://a/x\"\nheaders = { \"Bad Name\" = \"v\" }", "headers"),
            ("url = \"https://a/x\"\nheaders = { \"X-K\" = \"a\\r\\nHost: evil\" }", "X-K"),
            ("url = \"https://a/x\"\nuser = \"u\"", "user"),
            ("url = \"https://a/x\"\nca_mode = \"replace\"", "ca_mode"),
            ("url = \"https://a/x\"\nmax_rate = 100", "max_rate"),
        ] {
            #expect(throws: CourierError.self, "\(key)") {
                _ = try w.config("[types.t]\nsource = \"url\"\n\(toml)")
            }
        }
    }
}
