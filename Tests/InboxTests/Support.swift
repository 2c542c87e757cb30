import CourierCore
import Foundation
import Testing

@testable import CourierInbox

/// A temporary directory with an `inbox/` and a `src/` (same file system, so `mv` is a rename),
/// removed when the value goes away.
final class InboxSandbox: @unchecked Sendable {
    let root: String
    var inbox: String { root + "/inbox" }
    var src: String { root + "/src" }

    init(_ name: String = "inbox") {
        let base = FileManager.default.temporaryDirectory.path + "/courier-inbox-tests-\(getpid())"
        try? FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        root = base + "/\(name)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: root + "/inbox", withIntermediateDirectories: true)
        try! FileManager.default.createDirectory(atPath: root + "/src", withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// Writes a file of `size` bytes of a repeating pattern into `src/` and returns its path.
    func source(_ name: String, size: Int) -> String {
        var bytes = [UInt8](repeating: 0, count: size)
        for i in 0..<size { bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }
        let data = Data(bytes)
        let path = src + "/" + name
        _ = FileManager.default.createFile(atPath: path, contents: data)
        return path
    }

    /// Creates and closes `name` in the inbox with `contents` (an IN_CLOSE_WRITE), directly with
    /// syscalls so a thousand of them are quick.
    func write(_ name: String, _ contents: String = "x", in dir: String? = nil) {
        let path = (dir ?? inbox) + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        precondition(fd >= 0, "open \(path): \(errno)")
        _ = contents.withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
    }

    /// Candidate names in the inbox right now (what a daemon's rescan would look at).
    func candidates(in dir: String? = nil) -> Set<String> {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir ?? inbox)) ?? []
        return Set(names.filter(InboxNames.isCandidate))
    }
}

func fileSize(_ path: String) -> Int64? {
    var st = stat()
    return stat(path, &st) == 0 ? Int64(st.st_size) : nil
}

/// Runs a program to completion, killing it after `timeout` seconds; returns its exit status.
@discardableResult
func run(_ executable: String, _ args: [String], timeout: Double = 60) async throws -> Int32 {
    let p = try start(executable, args)
    let ok = await waitUntil(timeout) { !p.isRunning }
    if !ok {
        p.terminate()
        Issue.record("\(executable) \(args) did not finish within \(timeout) s")
    }
    p.waitUntilExit()
    return p.terminationStatus
}

/// Starts a program without waiting for it.
func start(_ executable: String, _ args: [String]) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    p.standardInput = FileHandle.nullDevice
    try p.run()
    return p
}

/// Polls `condition` every 10 ms until it holds or `seconds` pass. Every wait in these tests goes
/// through here or another bounded wait, so a failing test fails instead of hanging.
func waitUntil(_ seconds: Double, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

/// Consumes a watcher's signals on a task of its own, recording each with the size the named file
/// had when the signal arrived (the proof that a signal did not come before the writer finished),
/// and, for each rescan, the candidates a listing finds at that moment (what the daemon would do).
final class Collector: @unchecked Sendable {
    struct Entry: Sendable {
        let signal: WatchSignal
        let size: Int64?
        let at: ContinuousClock.Instant
    }

    private let lock = NSLock()
    private var _entries: [Entry] = []
    private var _rescanned: Set<String> = []
    private var _finished = false
    private var _cancelled = false

    /// Starts a thread that takes the watcher's signals with `nextSignal` (as the daemon does)
    /// until the watcher ends or `cancel()`.
    init(_ watcher: any InboxWatching, directory: String) {
        let thread = Thread { [self] in
            loop: while !lock.withLock({ _cancelled }) {
                switch watcher.nextSignal(deadlineNanos: ConditionLock.monotonicNanos() + 100_000_000) {
                case .signal(let signal): record(signal, directory: directory)
                case .timeout: continue
                case .ended: break loop
                }
            }
            lock.withLock { _finished = true }
        }
        thread.name = "test-collector"
        thread.start()
    }

    private func record(_ signal: WatchSignal, directory: String) {
        var size: Int64?
        var listed: Set<String> = []
        switch signal {
        case .file(let name): size = fileSize(directory + "/" + name)
        case .created: break
        case .rescan:
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            listed = Set(names.filter(InboxNames.isCandidate))
        }
        let entry = Entry(signal: signal, size: size, at: .now)
        lock.withLock {
            _entries.append(entry)
            _rescanned.formUnion(listed)
        }
    }

    var entries: [Entry] { lock.withLock { _entries } }
    var signals: [WatchSignal] { entries.map(\.signal) }
    var finished: Bool { lock.withLock { _finished } }

    /// Names from `.file` signals, in order.
    var files: [String] {
        entries.compactMap {
            if case .file(let n) = $0.signal { return n }
            return nil
        }
    }

    var rescans: [String] {
        entries.compactMap {
            if case .rescan(let r) = $0.signal { return r }
            return nil
        }
    }

    /// Every name the daemon would have looked at: `.file` names plus listings at each rescan.
    var seen: Set<String> { lock.withLock { _rescanned }.union(files) }

    func entry(for name: String) -> Entry? {
        entries.first { $0.signal == .file(name) }
    }

    func waitFor(_ seconds: Double = 20, _ condition: (Collector) -> Bool) async -> Bool {
        await waitUntil(seconds) { condition(self) }
    }

    /// Waits for the `.file(name)` signal.
    func waitForFile(_ name: String, timeout: Double = 20) async -> Entry? {
        _ = await waitFor(timeout) { $0.entry(for: name) != nil }
        return entry(for: name)
    }

    /// Stops taking signals (within 100 ms); the watcher goes on.
    func cancel() { lock.withLock { _cancelled = true } }
}

/// Watches `sandbox.inbox` and collects; the first signal (the start-up rescan) is awaited so the
/// test starts from a known state.
func watchInbox(_ sandbox: InboxSandbox) async throws -> (InboxWatcher, Collector) {
    let watcher = try InboxWatcher(directory: sandbox.inbox)
    let collector = Collector(watcher, directory: sandbox.inbox)
    let started = await collector.waitFor(10) { !$0.rescans.isEmpty }
    #expect(started, "no start-up rescan")
    #expect(collector.signals.first == .rescan("start-up"))
    return (watcher, collector)
}

/// Lets stray events arrive before asserting that there are none.
func settle(_ ms: Int = 300) async {
    try? await Task.sleep(for: .milliseconds(ms))
}
