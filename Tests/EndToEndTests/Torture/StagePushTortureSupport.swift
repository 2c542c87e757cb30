import CourierTestSupport
import Foundation
import Glibc
import Testing

/// Helpers of the stage, push and disk-full torture suites (issue #15): child processes killed
/// after a delay, tmpfs mounts, a directory served over HTTP, a python-tuf repository served on
/// 127.0.0.1, and the outbox invariants every kill must leave intact.
enum StormKit {
    /// The upstreams are on 127.0.0.1: no proxy from the environment may stand in between.
    static let noProxy = [
        "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
        "http_proxy": "", "HTTP_PROXY": "", "https_proxy": "", "HTTPS_PROXY": "",
    ]

    /// Writes `stage.toml` in `t` (outbox, key and state beside it; no HTTP retry window, so a
    /// failure shows at once) with the `[types.…]` tables given; returns its path.
    static func stageConfig(_ t: TempDir, types: String) -> String {
        t.write(
            "stage.toml",
            """
            outbox = "outbox"
            key = "stage.key"
            state_dir = "state"
            [http]
            retry_for = "0s"
            \(types)
            """)
        return t.sub("stage.toml")
    }

    /// Runs a command, output discarded; true on exit 0.
    @discardableResult
    static func sh(_ args: [String]) -> Bool { InboxdStateRepairTests.sh(args) }

    /// Mounts a tmpfs of `size` at `dir` (created); nil when that is not possible here (not
    /// root, no mount permission), with the reason.
    static func mountTmpfs(_ dir: String, size: String) -> String? {
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        if getuid() != 0 { return "not root: cannot mount a tmpfs" }
        return sh(["mount", "-t", "tmpfs", "-o", "size=\(size)", "tmpfs", dir])
            ? nil : "mount -t tmpfs failed at \(dir)"
    }

    static func umount(_ dir: String) { sh(["umount", "-l", dir]) }

    /// Fills the file system of `dir` with `dir/<name>` until it refuses more.
    static func fill(_ dir: String, name: String = "fill") {
        sh(["sh", "-c", "dd if=/dev/zero of='\(dir)/\(name)' bs=4k 2>/dev/null; true"])
    }

    /// A program of this build started with its output discarded.
    static func spawn(_ program: String, _ args: [String], env: [String: String] = [:]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Programs.binDir + "/" + program)
        p.arguments = args
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        p.environment = environment
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// Waits `seconds`, then SIGKILLs `p` if it still runs. True when the kill is what ended it
    /// (false: it had exited by itself; its status is then in `p`).
    static func kill(_ p: Process, after seconds: Double) -> Bool {
        if seconds > 0 { usleep(useconds_t(seconds * 1_000_000)) }
        if p.isRunning { Glibc.kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        return p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGKILL
    }

    /// `count` pseudo-random bytes (incompressible: compression cannot make the work vanish).
    static func randomBytes(_ count: Int, _ rng: inout CrashRNG) -> Data {
        var words = [UInt64](repeating: 0, count: (count + 7) / 8)
        for i in words.indices { words[i] = rng.next() }
        return words.withUnsafeBytes { Data($0.prefix(count)) }
    }

    static func write(_ path: String, _ data: Data) throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// Writes under a dot-name and renames: a server never serves half of it.
    static func writeAtomically(_ path: String, _ data: Data) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = dir + "/." + (path as NSString).lastPathComponent + ".new"
        try write(tmp, data)
        guard rename(tmp, path) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    static func list(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    /// True when nobody holds the flock on `path` (courier-stage's run lock).
    static func lockIsFree(_ path: String) -> Bool {
        let fd = open(path, O_RDWR)
        if fd < 0 { return errno == ENOENT }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return false }
        flock(fd, LOCK_UN)
        return true
    }
}

/// A python-tuf repository (`Tests/Support/tufrepo.py`) served by `Tests/Support/tufserver.py`.
final class StormTUF {
    let dir: String
    let server = Process()
    let port: Int

    init(dir: String) throws {
        self.dir = dir
        try Self.tufrepo(dir, ["init"])
        port = try TestServers.startPython(server, script: "tufserver.py", [dir, dir + ".log"])
    }

    static func tufrepo(_ dir: String, _ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", TestServers.repoRoot + "/Tests/Support/tufrepo.py", dir] + args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            Issue.record("tufrepo.py \(args): \(String(decoding: e, as: UTF8.self))")
            throw POSIXError(.EIO)
        }
    }

    /// One new signed version of the targets role with these files (name → file path).
    func addTargets(_ files: [(name: String, path: String)]) throws {
        try Self.tufrepo(dir, ["add-target"] + files.flatMap { [$0.name, "@" + $0.path] })
    }

    var metadataURL: String { "http://127.0.0.1:\(port)/metadata" }
    var targetsURL: String { "http://127.0.0.1:\(port)/targets" }
    var rootPath: String { dir + "/metadata/1.root.json" }

    deinit {
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
    }
}

/// What a kill may leave in an outbox, and what it must not: checked after every kill.
final class OutboxInvariants {
    let outbox: String
    let trust: String
    /// Packages already verified, by path, inode and size: a visible package never changes, so
    /// it is verified once (a changed inode or size is a new file, verified again).
    private var verified = Set<String>()
    private(set) var verifications = 0

    init(outbox: String, trust: String) {
        self.outbox = outbox
        self.trust = trust
    }

    /// Every visible name in `outbox/<type>/` is a revision directory, `latest` or `latest.txt`;
    /// every revision directory holds its full package and only complete, verifying packages of
    /// that revision, no temporaries; `latest`, `latest.txt` and index.json name only revisions
    /// that are on disk. Returns the problems found (empty when all holds).
    func check(types: [String]) -> [String] {
        var problems: [String] = []
        let fm = FileManager.default
        var toVerify: [(key: String, path: String)] = []
        for type in types {
            let typeDir = outbox + "/" + type
            for name in StormKit.list(typeDir) where !name.hasPrefix(".") {
                if name == "latest" || name == "latest.txt" { continue }
                guard let rev = UInt64(name) else {
                    problems.append("\(type)/\(name): not a revision directory")
                    continue
                }
                let dir = typeDir + "/" + name
                let files = StormKit.list(dir)
                if !files.contains("\(type)_\(rev).cpkg") {
                    problems.append("\(type)/\(rev): no full package (\(files))")
                }
                for f in files {
                    let ok = f == "\(type)_\(rev).cpkg" || (f.hasPrefix("\(type)_\(rev)_from_") && f.hasSuffix(".cpkg"))
                    if !ok {
                        problems.append(
                            "\(type)/\(rev)/\(f): not a package of this revision (a temporary in a visible revision?)")
                        continue
                    }
                    var st = stat()
                    guard stat(dir + "/" + f, &st) == 0 else {
                        problems.append("\(type)/\(rev)/\(f): stat failed")
                        continue
                    }
                    let key = "\(dir)/\(f)#\(st.st_ino)#\(st.st_size)"
                    if !verified.contains(key) { toVerify.append((key, dir + "/" + f)) }
                }
            }
            if let text = try? String(contentsOfFile: typeDir + "/latest.txt", encoding: .utf8) {
                let rev = text.trimmingCharacters(in: .whitespacesAndNewlines)
                if !fm.fileExists(atPath: "\(typeDir)/\(rev)/\(type)_\(rev).cpkg") {
                    problems.append("\(type)/latest.txt names \(rev), not in the outbox")
                }
            }
            if let link = try? fm.destinationOfSymbolicLink(atPath: typeDir + "/latest"),
                !fm.fileExists(atPath: "\(typeDir)/\(link)/\(type)_\(link).cpkg")
            {
                problems.append("\(type)/latest -> \(link), not in the outbox")
            }
        }
        if !toVerify.isEmpty {
            // One process verifies them all (each line OK or not).
            if let v = try? Programs.run("courier-deliver", ["verify", "--trust", trust] + toVerify.map(\.path)) {
                verifications += toVerify.count
                if v.status == 0 {
                    for x in toVerify { verified.insert(x.key) }
                } else {
                    problems.append("verify failed (\(v.status)): \(v.stdout)\(v.stderr)")
                }
            } else {
                problems.append("courier-deliver verify did not run")
            }
        }
        if let d = fm.contents(atPath: outbox + "/index.json") {
            if let idx = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
                let ts = idx["types"] as? [String: Any]
            {
                for (type, v) in ts {
                    guard let info = v as? [String: Any] else { continue }
                    if let l = info["latest"] as? Int,
                        !fm.fileExists(atPath: "\(outbox)/\(type)/\(l)/\(type)_\(l).cpkg")
                    {
                        problems.append("index.json: \(type) latest \(l) is not in the outbox")
                    }
                    for r in (info["revisions"] as? [[String: Any]]) ?? [] {
                        for p in (r["packages"] as? [[String: Any]]) ?? [] {
                            if let f = p["file"] as? String, !fm.fileExists(atPath: outbox + "/" + f) {
                                problems.append("index.json lists \(f), not in the outbox")
                            }
                        }
                    }
                }
            } else {
                problems.append("index.json does not parse")
            }
        }
        return problems
    }

    /// Dot-names left in the outbox's type directories (staging, removed revisions, temporaries).
    func leftovers(types: [String]) -> [String] {
        var out: [String] = []
        for type in types {
            for n in StormKit.list(outbox + "/" + type) where n.hasPrefix(".") { out.append("\(type)/\(n)") }
        }
        for n in StormKit.list(outbox) where n.hasPrefix(".") { out.append(n) }
        return out
    }
}
