import CourierCore
import Foundation
import Glibc
import Testing

/// Helpers of `InboxdTortureTests`: real copier processes, a daemon of several content types,
/// the sampling of a process's /proc entries, and small statistics.
enum InboxdTorture {
    /// The copiers of the kill storm, each a real process doing what the real tool does.
    enum Copier: String, CaseIterable {
        /// `cp`: creates the final name and writes it in place (IN_CREATE, then IN_CLOSE_WRITE).
        case cp
        /// `rsync`: a dot-named temporary `.name.XXXXXX` in the inbox, then a rename.
        case rsync
        /// `mv` on the same file system: a rename (IN_MOVED_TO).
        case mv
        /// `mv` from /dev/shm (tmpfs, another file system): copies into the final name, then
        /// unlinks the source — a copy in place, like `cp`.
        case mvShm = "mv-shm"
        /// `install -m 0644`: writes the final name in place.
        case install
        /// A writer holding the final name open and writing it in 8 chunks 0.1 s apart (~0.8 s).
        case slow
        /// `courier-deliver push` from an outbox: a dot-named temporary, syncfs, a rename.
        case push
    }

    /// Starts `/bin/sh -c script` with its output appended to `log`.
    static func shell(_ script: String, log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script]
        p.standardInput = FileHandle.nullDevice
        if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try h.seekToEnd()
        p.standardOutput = h
        p.standardError = h
        try p.run()
        try h.close()
        return p
    }

    static func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// Publishes the fixture's packages as courier-stage lays out an outbox (Outbox.swift):
    /// `outbox/<type>/<revision>/` with the full package and the delta from the revision before
    /// (hard links), and `latest.txt`. Enough for `courier-deliver push --revision N`.
    static func outbox(for fx: CrashFixture, at root: String) throws {
        let fm = FileManager.default
        for (rev, full) in fx.full {
            let dir = "\(root)/\(CrashFixture.type)/\(rev)"
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try fm.linkItem(atPath: full.path, toPath: dir + "/" + full.name)
            if let d = fx.delta[rev] { try fm.linkItem(atPath: d.path, toPath: dir + "/" + d.name) }
        }
        let latest = fx.full.keys.max()!
        try "\(latest)\n".write(toFile: "\(root)/\(CrashFixture.type)/latest.txt", atomically: true, encoding: .utf8)
    }

    /// The `package` a `push --json` reported as delivered (its file name), if any.
    static func pushedPackage(_ jsonLines: String) -> String? {
        for line in jsonLines.split(separator: "\n") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let p = o["package"] as? String
            else { continue }
            return (p as NSString).lastPathComponent
        }
        return nil
    }

    /// Median of a non-empty array (the lower middle for an even count).
    static func median<T: Comparable>(_ xs: [T]) -> T { xs.sorted()[(xs.count - 1) / 2] }

    static func mib(_ kib: Int) -> String { String(format: "%.1f MiB", Double(kib) / 1024) }
}

/// One sample of a process: resident memory (VmRSS), threads, open descriptors.
struct ProcSample {
    var rssKiB: Int
    var threads: Int
    var fds: Int

    /// nil once the process is gone.
    static func read(_ pid: Int32) -> ProcSample? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        var rss = -1
        var threads = -1
        for line in status.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let value = parts[1].trimmingCharacters(in: .whitespaces)
            if parts[0] == "VmRSS" { rss = Int(value.split(separator: " ").first ?? "") ?? -1 }
            if parts[0] == "Threads" { threads = Int(value) ?? -1 }
            if parts[0] == "State", value.hasPrefix("Z") { return nil }
        }
        guard rss >= 0, threads >= 0,
            let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")
        else { return nil }
        return ProcSample(rssKiB: rss, threads: threads, fds: fds.count)
    }
}

/// Samples a process every `period` seconds on a thread of its own until stopped.
final class ProcSampler: @unchecked Sendable {
    private let lock = NSLock()
    private var _samples: [(t: Double, s: ProcSample)] = []
    private var _stopped = false
    private var _vanished = false
    private let done = DispatchSemaphore(value: 0)
    let pid: Int32
    let start = Date()

    init(pid: Int32, period: Double = 1.0) {
        self.pid = pid
        let t = Thread { [self] in
            while true {
                let stop = self.lock.withLock { self._stopped }
                if stop { break }
                if let s = ProcSample.read(self.pid) {
                    let at = Date().timeIntervalSince(self.start)
                    self.lock.withLock { self._samples.append((at, s)) }
                } else {
                    self.lock.withLock { self._vanished = true }
                }
                usleep(UInt32(period * 1_000_000))
            }
            self.done.signal()
        }
        t.start()
    }

    var samples: [(t: Double, s: ProcSample)] { lock.withLock { _samples } }
    /// True when a sample found the process gone (or a zombie).
    var vanished: Bool { lock.withLock { _vanished } }

    func stop() {
        lock.withLock { _stopped = true }
        done.wait()
    }
}

/// A client of several content types for the burst and the soak: its own config, a daemon
/// process whose output goes to `daemon.log`, and readers of its store and state.
final class TortureClient {
    let dir = TempDir()
    let types: [String]
    var config: String { dir.sub("inboxd.toml") }
    var inbox: String { dir.sub("inbox") }
    var daemonLog: String { dir.sub("daemon.log") }
    let key: SigningKey
    var daemon: Process?

    init(types: [String], keep: Int = 2, applyCommand: Bool = false, deltaWait: String = "30s") throws {
        self.types = types
        let fm = FileManager.default
        let keygen = try Programs.run("courier-stage", ["keygen", "--out", dir.sub("stage.key")])
        try #require(keygen.status == 0, "keygen: \(keygen.stderr)")
        key = try SigningKey.load(dir.sub("stage.key"))
        try fm.createDirectory(atPath: dir.sub("trust"), withIntermediateDirectories: true)
        try fm.copyItem(atPath: dir.sub("stage.key.pub"), toPath: dir.sub("trust/stage.key.pub"))
        try fm.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        let tables = types.map { t in
            "[types.\(t)]\nkeep = \(keep)\n"
                + (applyCommand ? "apply_command = \"echo $COURIER_REVISION >> \(dir.sub("hook-\(t).log"))\"\n" : "")
        }.joined(separator: "\n")
        dir.write(
            "inboxd.toml",
            "inbox = \"inbox\"\nstate_dir = \"state\"\ntrust = \"trust\"\ndelta_wait = \"\(deltaWait)\"\n\n" + tables)
    }

    deinit {
        if let d = daemon, d.isRunning {
            kill(d.processIdentifier, SIGKILL)
            d.waitUntilExit()
        }
    }

    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Programs.binDir + "/courier-inboxd")
        p.arguments = ["run", "--config", config]
        var e = ProcessInfo.processInfo.environment
        e["COURIER_FAULT"] = nil
        p.environment = e
        FileManager.default.createFile(atPath: daemonLog, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: daemonLog))
        p.standardOutput = h
        p.standardError = h
        p.standardInput = FileHandle.nullDevice
        try p.run()
        try h.close()
        daemon = p
    }

    /// Waits until the daemon logged that it watches the inbox (its inotify instance exists).
    func waitWatching(_ seconds: Double = 20) -> Bool { waitFor(seconds) { self.log().contains("watching ") } }

    /// SIGTERM; the exit status (nil if it was not running any more).
    func stop() -> Int32? {
        guard let d = daemon else { return nil }
        daemon = nil
        guard d.isRunning else {
            d.waitUntilExit()
            return nil
        }
        kill(d.processIdentifier, SIGTERM)
        d.waitUntilExit()
        return d.terminationReason == .exit ? d.terminationStatus : -d.terminationStatus
    }

    func log() -> String { (try? String(contentsOfFile: daemonLog, encoding: .utf8)) ?? "" }
    func logTail(_ n: Int = 2000) -> String { String(log().suffix(n)) }

    func current(_ t: String) -> UInt64? {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: dir.sub("state/store/\(t)/current"))).flatMap {
            UInt64($0)
        }
    }

    func inboxNames() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: inbox)) ?? [] }

    func quarantined() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.sub("state/quarantine"))) ?? []).filter {
            !$0.hasSuffix(".reason.json")
        }
    }

    func reason(_ name: String) -> [String: Any]? {
        FileManager.default.contents(atPath: dir.sub("state/quarantine/\(name).reason.json"))
            .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
    }

    /// Every history line as (type, event, revision).
    func history() -> [(type: String, event: String, revision: UInt64?)] {
        let text = (try? String(contentsOfFile: dir.sub("state/history.jsonl"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let t = o["type"] as? String, let e = o["event"] as? String
            else { return nil }
            return (t, e, (o["revision"] as? NSNumber)?.uint64Value)
        }
    }

    /// `installed` per type in status.json.
    func statusInstalled() -> [String: UInt64] {
        guard let d = FileManager.default.contents(atPath: dir.sub("state/status.json")),
            let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
            let types = o["types"] as? [String: Any]
        else { return [:] }
        var out: [String: UInt64] = [:]
        for (t, v) in types {
            if let i = ((v as? [String: Any])?["installed"] as? NSNumber)?.uint64Value { out[t] = i }
        }
        return out
    }

    /// Revision directories kept in the store for `t`.
    func kept(_ t: String) -> [UInt64] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.sub("state/store/\(t)"))) ?? []).compactMap {
            UInt64($0)
        }.sorted()
    }
}
