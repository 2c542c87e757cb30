import CourierCore
@_exported import CourierTestSupport
import Foundation
import Logging

@testable import CourierFetch

/// A temporary directory for one test, removed when the value goes away.
final class Workspace {
    let root: String

    init(_ name: String = "t") {
        let base = FileManager.default.temporaryDirectory.path + "/courier-fetch-tests-\(getpid())"
        try? FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        root = base + "/\(name)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func path(_ rel: String) -> String { root + "/" + rel }

    func read(_ rel: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path(rel)).map { Array($0) }
    }

    func exists(_ rel: String) -> Bool { FileManager.default.fileExists(atPath: path(rel)) }
}

/// The fault server's deterministic content (see faultserver.py): byte `o` is
/// `BLOCK[o % 65521]`, `BLOCK[i] = (i*131 + (i >> 8)) & 0xff`.
func expectedContent(_ size: Int, from start: Int = 0) -> [UInt8] {
    let prime = 65521
    let block = (0..<prime).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ ($0 >> 8)) }
    var out = [UInt8]()
    out.reserveCapacity(size)
    var pos = start
    while out.count < size {
        let off = pos % prime
        let n = min(size - out.count, prime - off)
        out.append(contentsOf: block[off..<off + n])
        pos += n
    }
    return out
}

/// One line of the fault server's request log.
struct LoggedRequest: Decodable {
    var line: String
    var path: String
    var range: String?
    var ifRange: String?
    var ifNoneMatch: String?
    var ifModifiedSince: String?
    var userAgent: String?
    var proxyAuthorization: Bool
    var headers: [String: String]?
}

/// `Tests/Support/faultserver.py`, started for one test on a kernel-chosen port and killed when
/// the test is done (`stop()`, or at the latest when the value goes away).
final class FaultServer: @unchecked Sendable {
    let process = Process()
    let port: Int
    let logPath: String

    let scheme: String

    /// `tls`: serve HTTPS with this certificate and key (PEM files).
    init(_ ws: Workspace, name: String = "server", tls: (cert: String, key: String)? = nil) throws {
        logPath = ws.path(name + ".log")
        scheme = tls == nil ? "http" : "https"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            ["python3", TestServers.repoRoot + "/Tests/Support/faultserver.py", logPath]
            + (tls.map { [$0.cert, $0.key] } ?? [])
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        port = try FaultServer.readPort(out.fileHandleForReading)
    }

    static func readPort(_ h: FileHandle) throws -> Int {
        var text = ""
        while !text.contains("\n") {
            let d = h.availableData
            if d.isEmpty { break }
            text += String(decoding: d, as: UTF8.self)
        }
        guard let p = Int(text.split(separator: "\n").first ?? "") else {
            throw CourierError(.io, "faultserver.py did not print its port: '\(text)'")
        }
        return p
    }

    func url(_ path: String) -> String { "\(scheme)://127.0.0.1:\(port)\(path)" }

    /// The requests the server has seen so far.
    func requests() -> [LoggedRequest] {
        guard let data = FileManager.default.contents(atPath: logPath) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONDecoder().decode(LoggedRequest.self, from: Data($0.utf8))
        }
    }

    /// SIGKILL, not `terminate()`: children started from the test process inherit its blocked
    /// signal mask (SIGTERM included), so a polite signal would wait forever.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

/// Debian's tinyproxy on a loopback port, in the foreground, with a generated configuration;
/// optionally with `BasicAuth`. Its log tells which CONNECTs it made.
final class TinyProxy: @unchecked Sendable {
    let process = Process()
    let port: Int
    let logPath: String

    static var available: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/tinyproxy") }

    init(_ ws: Workspace, auth: (user: String, password: String)? = nil) throws {
        port = try freePort()
        logPath = ws.path("tinyproxy.log")
        var conf = """
            Port \(port)
            Listen 127.0.0.1
            Allow 127.0.0.1
            Timeout 30
            MaxClients 20
            LogFile "\(logPath)"
            LogLevel Info
            DisableViaHeader Yes

            """
        if let auth { conf += "BasicAuth \(auth.user) \(auth.password)\n" }
        let confPath = ws.path("tinyproxy.conf")
        try conf.write(toFile: confPath, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/tinyproxy")
        process.arguments = ["-d", "-c", confPath]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready when it accepts connections.
        for _ in 0..<100 {
            if canConnect(port) { return }
            usleep(50_000)
        }
        stop()
        throw CourierError(.io, "tinyproxy did not start listening on \(port)")
    }

    var log: String {
        FileManager.default.contents(atPath: logPath).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// SIGKILL, not `terminate()`: children started from the test process inherit its blocked
    /// signal mask (SIGTERM included), so a polite signal would wait forever.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

/// A TCP port nobody listens on right now (bind to 0, read it back, close).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sp in
            bind(fd, sp, len) == 0 && getsockname(fd, sp, &len) == 0
        }
    }
    guard ok else { throw CourierError(.io, "cannot find a free port") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

func canConnect(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    return withUnsafePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}

/// Collects every log line (message and metadata) at trace level, so tests can assert what
/// the fetcher — and async-http-client below it — wrote.
final class LogCapture: Sendable {
    private let lines = Locked<[String]>([])  // not Mutex: ThreadSanitizer sees no lock in it (CourierCore Locked)

    func append(_ s: String) { lines.withLock { $0.append(s) } }
    var all: [String] { lines.withLock { $0 } }

    func logger(_ label: String = "fetch-test") -> Logger {
        var l = Logger(label: label) { _ in CaptureHandler(capture: self) }
        l.logLevel = .trace
        return l
    }
}

struct CaptureHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let md = metadata.merging(event.metadata ?? [:]) { $1 }
        capture.append("\(event.level) \(event.message) \(md)")
    }
}

/// A policy for tests: short timeouts and backoffs, no environment proxy, a state directory in
/// the workspace.
func testPolicy(_ ws: Workspace, retryFor: Int64 = 0) -> FetchPolicy {
    var p = FetchPolicy()
    p.connectTimeout = 2
    p.readTimeout = 2
    p.retryFor = retryFor
    p.initialBackoff = 0.1
    p.maxBackoff = 0.5
    p.userAgent = "courier-stage/test"
    p.environment = [:]
    p.stateDir = ws.path("state")
    return p
}

/// Runs `body` with a fetcher and shuts it down afterwards, whatever happens.
func withFetcher<T>(
    _ policy: FetchPolicy, logger: Logger = Logger(label: "fetch-test"),
    _ body: (Fetcher) async throws -> T
) async throws -> T {
    let f = Fetcher(policy: policy, logger: logger)
    do {
        let r = try await body(f)
        try await f.shutdown()
        return r
    } catch {
        try? await f.shutdown()
        throw error
    }
}

/// Debian's Squid with its stock configuration (`/etc/squid/squid.conf`), changed only where a
/// test must: a loopback port, logs and pid file in the workspace, and — when asked — extra
/// `SSL_ports` so that `CONNECT` to a test server's port is allowed. The stock rules stay,
/// `http_access deny CONNECT !SSL_ports` among them: the reason plain http:// must not be tunnelled.
final class Squid: @unchecked Sendable {
    let process = Process()
    let port: Int
    let dir: String

    static var available: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/sbin/squid")
            && FileManager.default.fileExists(atPath: "/etc/squid/squid.conf")
    }

    init(_ ws: Workspace, sslPorts: [Int] = []) throws {
        port = try freePort()
        dir = ws.path("squid")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o777)  // Squid started by root works as the `proxy` user
        var conf = try String(contentsOfFile: "/etc/squid/squid.conf", encoding: .utf8)
        conf = conf.replacingOccurrences(of: "\nhttp_port 3128\n", with: "\nhttp_port 127.0.0.1:\(port)\n")
        for p in sslPorts {
            conf = conf.replacingOccurrences(
                of: "\nacl SSL_ports port 443\n", with: "\nacl SSL_ports port 443\nacl SSL_ports port \(p)\n")
        }
        conf += """

            access_log \(dir)/access.log
            cache_log \(dir)/cache.log
            pid_filename \(dir)/squid.pid
            cache_store_log none
            shutdown_lifetime 1 seconds

            """
        let confPath = dir + "/squid.conf"
        try conf.write(toFile: confPath, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/squid")
        process.arguments = ["-N", "-f", confPath]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 {
            if canConnect(port) { return }
            usleep(50_000)
        }
        stop()
        throw CourierError(
            .io,
            "squid did not start listening on \(port): \(String(decoding: FileManager.default.contents(atPath: dir + "/cache.log") ?? Data(), as: UTF8.self).suffix(2000))"
        )
    }

    /// The access log (Squid writes it as requests finish).
    var log: String {
        FileManager.default.contents(atPath: dir + "/access.log").map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

/// A private CA and a certificate for 127.0.0.1 signed by it, made with openssl for one test.
struct PrivateCA {
    let caPath: String
    let certPath: String
    let keyPath: String

    init(_ ws: Workspace) throws {
        let d = ws.path("ca")
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        caPath = d + "/ca.pem"
        certPath = d + "/server.pem"
        keyPath = d + "/server.key"
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        let script = """
            set -e
            cd '\(d)'
            openssl req -x509 \(ec) -keyout ca.key -out ca.pem -days 2 -subj '/CN=Courier Test CA' 2>/dev/null
            openssl req \(ec) -keyout server.key -out server.csr -subj '/CN=127.0.0.1' 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf 2>/dev/null
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", script]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CourierError(.io, "openssl failed making the test CA") }
    }
}
