import Foundation
import Glibc
import Testing

/// A real nginx on 127.0.0.1 serving one directory with the shipped site file
/// (scripts/nginx/courier-outbox.conf), of which only `listen` and `root` are replaced.
/// Started in the foreground (`daemon off;`) with its pid, logs and temporaries in `dir`.
final class Nginx {
    static let siteFile =
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path + "/scripts/nginx/courier-outbox.conf"
    static var available: Bool { FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx") }

    let dir: String
    let port: Int
    private var process: Process?
    let scheme: String
    var url: String { "\(scheme)://127.0.0.1:\(port)" }
    var accessLog: String { dir + "/access.log" }

    /// `tls`: certificate and key files; the site's `listen` then gets `ssl` (the certificate
    /// directives go in nginx.conf's http block, so the site file stays as shipped).
    init(root: String, dir: String, tls: (cert: String, key: String)? = nil) throws {
        self.dir = dir
        self.scheme = tls == nil ? "http" : "https"
        try FileManager.default.createDirectory(atPath: dir + "/tmp", withIntermediateDirectories: true)
        var lastError = ""
        for _ in 0..<5 {
            let port = Nginx.freePort()
            let site = try String(contentsOfFile: Nginx.siteFile, encoding: .utf8)
                .split(separator: "\n", omittingEmptySubsequences: false).compactMap { line -> String? in
                    let t = line.trimmingCharacters(in: .whitespaces)
                    if t.hasPrefix("listen [::]") { return nil }
                    if t.hasPrefix("listen ") { return "    listen 127.0.0.1:\(port)\(tls == nil ? "" : " ssl");" }
                    if t.hasPrefix("root ") { return "    root \(root);" }
                    return String(line)
                }.joined(separator: "\n")
            try site.write(toFile: dir + "/site.conf", atomically: true, encoding: .utf8)
            let conf = """
                daemon off;
                user root;
                worker_processes 1;
                pid \(dir)/nginx.pid;
                error_log \(dir)/error.log warn;
                events { worker_connections 1024; }
                http {
                    access_log \(dir)/access.log;
                    client_body_temp_path \(dir)/tmp/body;
                    proxy_temp_path \(dir)/tmp/proxy;
                    fastcgi_temp_path \(dir)/tmp/fastcgi;
                    uwsgi_temp_path \(dir)/tmp/uwsgi;
                    scgi_temp_path \(dir)/tmp/scgi;
                    \(tls.map { "ssl_certificate \($0.cert);\n    ssl_certificate_key \($0.key);" } ?? "")
                    include \(dir)/site.conf;
                }
                """
            try conf.write(toFile: dir + "/nginx.conf", atomically: true, encoding: .utf8)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
            p.arguments = ["-c", dir + "/nginx.conf", "-p", dir]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try p.run()
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline && p.isRunning {
                if Nginx.accepts(port) {
                    self.process = p
                    self.port = port
                    return
                }
                usleep(50_000)
            }
            if p.isRunning {
                p.terminate()
                p.waitUntilExit()
            }
            lastError = (try? String(contentsOfFile: dir + "/error.log", encoding: .utf8)) ?? "(no error log)"
        }
        throw NSError(
            domain: "nginx", code: 1, userInfo: [NSLocalizedDescriptionKey: "nginx did not start: \(lastError)"])
    }

    /// SIGQUIT: nginx's graceful shutdown; then the port refuses connections.
    func stop() {
        guard let p = process else { return }
        process = nil
        kill(p.processIdentifier, SIGQUIT)
        p.waitUntilExit()
    }

    deinit { stop() }

    /// Requests for `pathPrefix` in the access log, e.g. package downloads.
    func requests(matching needle: String) -> Int {
        let log = (try? String(contentsOfFile: accessLog, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").filter { $0.contains(needle) }.count
    }

    /// The status code nginx gives `path` (curl), for "dot-names are never served".
    func status(_ path: String) throws -> String {
        let r = try Programs.runTool("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", url + path])
        return r.stdout
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return Int(UInt16(bigEndian: a.sin_port))
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        } == 0
    }
}

extension Programs {
    /// Starts a program and returns it running (for a kill in the middle).
    static func start(_ program: String, _ args: [String], env: [String: String] = [:]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binDir + "/" + program)
        p.arguments = args
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        p.environment = environment
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }
}

/// A pull world: one stager (key, `up/`, `outbox/`), relays and clients in one temporary directory.
struct PullWorld {
    let t = TempDir()
    static let fixtures =
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path + "/Fixtures/upstream/virus-defs"
    var outbox: String { t.sub("outbox") }
    var trust: String { t.sub("stage.key.pub") }

    init() throws {
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        try FileManager.default.createDirectory(atPath: t.sub("up"), withIntermediateDirectories: true)
        t.write(
            "stage.toml",
            "outbox = \"outbox\"\nkey = \"stage.key\"\n[types.virus-defs]\nsource = \"dir\"\npath = \"up\"\nkeep_revisions = 3\n"
        )
    }

    /// Publishes a fixture revision (20261120001 or 20261121001) with a real `courier-stage run`.
    func stage(_ rev: String) throws {
        try FileManager.default.copyItem(atPath: Self.fixtures + "/" + rev, toPath: t.sub("up/" + rev))
        let r = try Programs.run("courier-stage", ["run", "--config", t.sub("stage.toml")])
        #expect(r.status == 0, "\(r.stderr)")
    }

    /// A relay's config: `upstream` URLs, mirror into `name/mirror`.
    func relay(_ name: String, upstream: [String], revisions: Int = 3, extra: String = "") -> String {
        let list = upstream.map { "\"\($0)\"" }.joined(separator: ", ")
        t.write(
            "\(name)/relay.toml",
            "root = \"mirror\"\nupstream = [\(list)]\ntrust = \"\(trust)\"\nrevisions = \(revisions)\nstate_dir = \"state\"\n\(extra)\n[http]\nretry_for = \"2s\"\n"
        )
        return t.sub("\(name)/relay.toml")
    }

    /// A client: its inboxd.toml (inbox, state, trust, virus-defs) and pull.toml with `mirrors`.
    func client(_ name: String, mirrors: [String], extra: String = "", testCommand: String? = nil) -> String {
        let list = mirrors.map { "\"\($0)\"" }.joined(separator: ", ")
        try! FileManager.default.createDirectory(atPath: t.sub("\(name)/inbox"), withIntermediateDirectories: true)
        t.write(
            "\(name)/inboxd.toml",
            """
            inbox = "inbox"
            state_dir = "state"
            trust = "\(trust)"
            [types.virus-defs]
            keep = 2
            \(testCommand.map { "test_command = \"\($0)\"" } ?? "")
            """)
        t.write(
            "\(name)/pull.toml",
            "inboxd_config = \"inboxd.toml\"\nmirrors = [\(list)]\n\(extra)\n[http]\nretry_for = \"2s\"\nconnect_timeout = \"2s\"\n"
        )
        return t.sub("\(name)/pull.toml")
    }

    /// `courier-pull run --no-splay --json`: the exit status and the JSON report.
    func pull(_ config: String, _ more: [String] = []) throws -> (status: Int32, json: [String: Any], stderr: String) {
        let r = try Programs.run("courier-pull", ["run", "--config", config, "--no-splay", "--json"] + more)
        let obj = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        return (r.status, obj, r.stderr)
    }

    func apply(_ name: String) throws -> Programs.Result {
        try Programs.run("courier-inboxd", ["run", "--config", t.sub("\(name)/inboxd.toml"), "--once", "--quiet"])
    }

    func installed(_ name: String) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: t.sub("\(name)/state/store/virus-defs/current"))
    }

    /// Every `.cpkg` visible in a served directory (no path component starting with a dot).
    static func visiblePackages(_ root: String) -> [String] {
        var out: [String] = []
        guard let e = FileManager.default.enumerator(atPath: root) else { return out }
        while let p = e.nextObject() as? String {
            if p.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
            if p.hasSuffix(".cpkg") { out.append(p) }
        }
        return out.sorted()
    }

    /// The mirror as a client sees it: every visible package verifies, and index.json (if any)
    /// names only packages that exist, with their sizes.
    func checkServedTreeIsComplete(_ root: String) throws {
        for p in Self.visiblePackages(root) {
            let v = try Programs.run("courier-deliver", ["verify", "--trust", trust, root + "/" + p])
            #expect(v.status == 0, "visible package \(p) does not verify: \(v.stdout)")
        }
        guard let data = FileManager.default.contents(atPath: root + "/index.json") else { return }
        let idx = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        for (_, info) in idx["types"] as! [String: Any] {
            for rev in (info as! [String: Any])["revisions"] as! [[String: Any]] {
                for pkg in rev["packages"] as! [[String: Any]] {
                    let file = pkg["file"] as! String
                    let attrs = try? FileManager.default.attributesOfItem(atPath: root + "/" + file)
                    #expect(attrs != nil, "index.json names \(file), which is not there")
                    #expect(
                        (attrs?[.size] as? NSNumber)?.int64Value == (pkg["size"] as? NSNumber)?.int64Value,
                        "\(file): size differs from index.json")
                }
            }
        }
    }
}

func typeLines(_ json: [String: Any]) -> [[String: Any]] { json["types"] as? [[String: Any]] ?? [] }
