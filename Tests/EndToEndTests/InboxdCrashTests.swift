import Foundation
import Glibc
import Testing

/// `courier-inboxd` killed with SIGKILL at many points of the apply path, then restarted: after
/// every kill and every restart the store, the inbox and the state must satisfy the crash-safety
/// invariants of issue 4:
///
///  (a) `current` names a complete tree equal, byte for byte, to the upstream tree of its revision;
///  (b) every delivered package is either still in the inbox or gone and recorded (installed
///      revision at or above it, an event for it in history.jsonl); none is quarantined;
///  (c) after a restart, no `*.tmp` (or other) leftovers in the store or the state directory, and
///      every kept revision is complete;
///  (d) after the restart without fault, the newest delivered revision is installed and the inbox
///      is empty;
///  (e) `status --json` reports `current` as installed (and the hook last announced it).
///
/// Two ways of killing: the daemon's named fault points (`COURIER_FAULT`) at every package of a
/// full/delta sequence, and `kill -9` after a random 0–300 ms while a real `run` (inotify) applies
/// a few packages of several MiB. The random delays come from a seeded generator
/// (`COURIER_CRASH_SEED` replays another run).
@Suite(.serialized) struct InboxdCrashTests {
    static let faultPoints = [
        "after-extract", "before-rename", "before-switch", "switch-before-rename",
        "after-switch", "before-state", "before-unlink",
    ]
    /// Points at which `current` already names the new revision.
    static let committedPoints: Set<String> = ["after-switch", "before-state", "before-unlink"]

    static var seed: UInt64 {
        if let s = ProcessInfo.processInfo.environment["COURIER_CRASH_SEED"], let v = UInt64(s) { return v }
        return 0xC0_0121_E4
    }

    /// Every named fault point × every package of full 1, delta 2, delta 3, full 4, delta 5 (with
    /// the later packages of the sequence waiting in the inbox), and the delta packages again with
    /// `hardlink_unchanged = true` (the base tree shares inodes with the new one).
    @Test func killedAtEveryNamedFaultPointOfEveryPackage() throws {
        let fx = try CrashFixture()
        let seq = Array(fx.sequenceA.prefix(5))
        var cases: [(point: String, index: Int, hardlink: Bool)] = []
        for point in Self.faultPoints {
            for k in seq.indices { cases.append((point, k, false)) }
            for k in seq.indices where seq[k].base != nil { cases.append((point, k, true)) }
        }
        var kills = 0
        for c in cases {
            let ws = try CrashWorkspace(fx, hardlink: c.hardlink)
            let ctx = "\(c.point) at \(seq[c.index].name)\(c.hardlink ? " (hardlink_unchanged)" : "")"
            if c.index > 0 {
                for p in seq[..<c.index] { try ws.drop(p) }
                let pre = try ws.runOnce()
                try #require(pre.exited && pre.status == 0, "\(ctx): preparing run failed: \(ws.logTail())")
            }
            for p in seq[c.index...] { try ws.drop(p) }
            let killed = try ws.runOnce(fault: c.point)
            #expect(
                killed.killedBySIGKILL,
                "\(ctx): the daemon was not killed at the fault point (exit \(killed.status)): \(ws.logTail())")
            kills += 1
            ws.check(fx, delivered: seq, restarted: false, context: ctx + ", after the kill")
            let before = c.index > 0 ? seq[c.index - 1].revision : nil
            let expected = Self.committedPoints.contains(c.point) ? seq[c.index].revision : before
            #expect(
                ws.current() == expected,
                "\(ctx): current is \(ws.current().map(String.init) ?? "absent"), expected \(expected.map(String.init) ?? "absent") at this point"
            )

            let again = try ws.runOnce()
            #expect(again.exited && again.status == 0, "\(ctx): restart exited \(again.status): \(ws.logTail())")
            ws.check(fx, delivered: seq, restarted: true, context: ctx + ", after the restart")
        }
        print(
            "InboxdCrashTests: \(kills) SIGKILLs at \(Self.faultPoints.count) named fault points × packages, invariants checked after each kill and restart"
        )
        #expect(kills >= 50)
    }

    /// `courier-inboxd run` (inotify) applying three or four packages of ~14 MiB, some there at
    /// start-up and some renamed in while it runs, killed after a random delay; sometimes the
    /// restart is killed too; then `run --once`, and the next batch.
    @Test func killedAtRandomMomentsWhileApplying() throws {
        // Twice the size of the named-fault fixture: a batch takes most of the 300 ms window.
        let fx = try CrashFixture(scale: 2)
        var rng = CrashRNG(seed: Self.seed)
        let target = 64
        var kills = 0
        var midWork = 0
        var workspaces = 0
        var delays: [Int] = []
        while kills < target {
            workspaces += 1
            let hardlink = rng.next() % 2 == 0
            let seq = rng.next() % 2 == 0 ? fx.sequenceA : fx.sequenceB
            let ws = try CrashWorkspace(fx, hardlink: hardlink)
            var delivered: [CrashFixture.Package] = []
            var i = 0
            while i < seq.count && kills < target {
                let n = min(seq.count - i, 3 + Int(rng.next() % 2))
                let batch = Array(seq[i..<(i + n)])
                i += n
                // Half the time everything is there at start-up (the rescan); otherwise the first
                // package is, and the rest is renamed in 0–100 ms after the start (inotify).
                let split = rng.next() % 2 == 0 ? batch.count : 1
                let lateAfter = Int(rng.next() % 100_000)
                let delay = Int(rng.next() % 300_001)
                delays.append(delay)
                let ctx =
                    "seed \(Self.seed), workspace \(workspaces), kill \(kills + 1) after \(delay / 1000) ms, batch \(batch.map(\.name))\(hardlink ? " (hardlink_unchanged)" : "")"
                for p in batch[..<split] { try ws.drop(p) }
                delivered += batch
                let d = try ws.launch(["run", "--config", ws.config, "--exit-when-idle", "60s"])
                let lateDropped = split < batch.count && lateAfter < delay
                if lateDropped {
                    usleep(UInt32(lateAfter))
                    for p in batch[split...] { try ws.drop(p) }
                    usleep(UInt32(delay - lateAfter))
                } else {
                    usleep(UInt32(delay))
                }
                #expect(d.isRunning, "\(ctx): the daemon exited on its own (\(d.terminationStatus)): \(ws.logTail())")
                kill(d.processIdentifier, SIGKILL)
                d.waitUntilExit()
                kills += 1
                if ws.hasWorkLeft(lateDropped ? batch : Array(batch[..<split])) { midWork += 1 }
                // Packages not yet renamed in arrive while the daemon is down.
                if !lateDropped { for p in batch[split...] { try ws.drop(p) } }
                ws.check(fx, delivered: delivered, restarted: false, context: ctx + ", after the kill")

                // One time in four the restart is killed too (during recovery, or the next apply).
                if rng.next() % 4 == 0 && kills < target {
                    let delay2 = Int(rng.next() % 150_001)
                    delays.append(delay2)
                    let d2 = try ws.launch(["run", "--config", ws.config, "--exit-when-idle", "60s"])
                    usleep(UInt32(delay2))
                    kill(d2.processIdentifier, SIGKILL)
                    d2.waitUntilExit()
                    kills += 1
                    if ws.hasWorkLeft(batch) { midWork += 1 }
                    ws.check(
                        fx, delivered: delivered, restarted: false,
                        context: ctx + ", restart killed after \(delay2 / 1000) ms")
                }

                let again = try ws.runOnce()
                #expect(again.exited && again.status == 0, "\(ctx): restart exited \(again.status): \(ws.logTail())")
                ws.check(fx, delivered: delivered, restarted: true, context: ctx + ", after the restart")
            }
        }
        let distinct = Set(delays).count
        print(
            "InboxdCrashTests: \(kills) random SIGKILLs (seed \(Self.seed), \(distinct) distinct delays 0–300 ms, \(midWork) with work still pending) over \(workspaces) workspaces, invariants checked after each kill and restart"
        )
        #expect(kills >= target)
        // The packages are big enough that most kills land while there is work to do (about three
        // in four with the debug build on two cores); far fewer would make this test toothless.
        #expect(midWork >= target / 4, "only \(midWork) of \(kills) kills landed while packages were pending")
    }
}

/// SplitMix64: small, fast, seedable, so a failing run can be replayed.
struct CrashRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A content tree as the comparison sees it: relative path → directory or file (data, exec bit).
enum CrashTree {
    enum Entry: Equatable {
        case dir
        case file(Data, exec: Bool)
        case other(mode_t)
    }

    /// Reads a directory tree without following symlinks; nil when `root` is not a directory.
    static func read(_ root: String) -> [String: Entry]? {
        var out: [String: Entry] = [:]
        func walk(_ rel: String) -> Bool {
            let dir = rel.isEmpty ? root : root + "/" + rel
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return false }
            for n in names {
                let r = rel.isEmpty ? n : rel + "/" + n
                var st = stat()
                guard lstat(root + "/" + r, &st) == 0 else { return false }
                switch st.st_mode & S_IFMT {
                case S_IFDIR:
                    out[r] = .dir
                    guard walk(r) else { return false }
                case S_IFREG:
                    guard let d = FileManager.default.contents(atPath: root + "/" + r) else { return false }
                    out[r] = .file(d, exec: st.st_mode & 0o100 != 0)
                default:
                    out[r] = .other(st.st_mode)
                }
            }
            return true
        }
        var st = stat()
        guard lstat(root, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, walk("") else { return nil }
        return out
    }

    /// nil when equal; otherwise a short account of the differences.
    static func diff(_ got: [String: Entry]?, _ want: [String: Entry]) -> String? {
        guard let got else { return "not a readable directory" }
        if got == want { return nil }
        let missing = Set(want.keys).subtracting(got.keys).sorted()
        let extra = Set(got.keys).subtracting(want.keys).sorted()
        let differ = want.keys.filter { got[$0] != nil && got[$0] != want[$0] }.sorted()
        var parts: [String] = []
        if !missing.isEmpty { parts.append("missing \(missing.prefix(5))") }
        if !extra.isEmpty { parts.append("extra \(extra.prefix(5))") }
        if !differ.isEmpty { parts.append("different \(differ.prefix(5))") }
        return parts.joined(separator: "; ")
    }
}

/// Upstream trees (seven revisions, ~7 MiB each: files that change every revision, every other,
/// every third, never; files added and removed, a directory that disappears; an executable) and
/// their signed packages, full and delta, built once per test and linked into each workspace.
final class CrashFixture {
    struct Package {
        var name: String
        var path: String
        var revision: UInt64
        var base: UInt64?
    }

    static let type = "virus-defs"
    static let firstRevision: UInt64 = 20_261_121_000
    static let count = 7

    let dir = TempDir()
    /// revision → expected tree.
    var trees: [UInt64: [String: CrashTree.Entry]] = [:]
    var full: [UInt64: Package] = [:]
    var delta: [UInt64: Package] = [:]  // revision → delta from revision - 1

    static func revision(_ i: Int) -> UInt64 { firstRevision + UInt64(i) }

    /// full 1, delta 2, delta 3, full 4, delta 5, delta 6, delta 7
    var sequenceA: [Package] {
        (1...Self.count).map { i in [1, 4].contains(i) ? full[Self.revision(i)]! : delta[Self.revision(i)]! }
    }
    /// full 1, delta 2, delta 3, delta 4, delta 5, full 6, delta 7
    var sequenceB: [Package] {
        (1...Self.count).map { i in [1, 6].contains(i) ? full[Self.revision(i)]! : delta[Self.revision(i)]! }
    }

    /// `scale` multiplies the size of the big files (~7 MiB per tree at 1).
    init(scale: Int = 1) throws {
        let stage = try Programs.run("courier-stage", ["keygen", "--out", dir.sub("stage.key")])
        try #require(stage.status == 0, "keygen: \(stage.stderr)")
        var cache: [String: Data] = [:]
        func blob(_ name: String, _ version: Int, _ size: Int) -> Data {
            let key = "\(name)#\(version)"
            if let d = cache[key] { return d }
            var g = CrashRNG(
                seed: UInt64(truncatingIfNeeded: name.utf8.reduce(5381) { ($0 &* 33) &+ Int($1) }) &+ UInt64(version)
                    &* 0x1_0000_0001)
            var d = Data(count: size)
            d.withUnsafeMutableBytes { raw in
                let words = raw.bindMemory(to: UInt64.self)
                for i in words.indices { words[i] = g.next() }
            }
            cache[key] = d
            return d
        }
        let mib = scale << 20
        for i in 1...Self.count {
            let rev = Self.revision(i)
            var files: [String: (Data, Bool)] = [
                "db/main.cvd": (blob("main", i / 3, 3 * mib), false),
                "db/daily.cvd": (blob("daily", i, 2 * mib), false),
                "db/bytecode.cvd": (blob("bytecode", 0, mib), false),
                "bin/reload.sh": (Data("#!/bin/sh\nexit 0\n".utf8), true),
                "README": (Data("revision \(rev)\n".utf8), false),
                "extra/only-\(rev).txt": (Data("only in \(rev)\n".utf8), false),
            ]
            for k in 0..<4 { files["rules/set-\(k).yar"] = (blob("set\(k)", (i + k) / 2, mib / 4), false) }
            if i % 2 == 1 { files["old/deep/gone-\(rev).txt"] = (Data("odd revisions only\n".utf8), false) }
            var tree: [String: CrashTree.Entry] = [:]
            let root = dir.sub("upstream/\(rev)")
            for (path, (data, exec)) in files {
                let full = root + "/" + path
                try FileManager.default.createDirectory(
                    atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try #require(
                    FileManager.default.createFile(
                        atPath: full, contents: data, attributes: [.posixPermissions: exec ? 0o755 : 0o644]))
                tree[path] = .file(data, exec: exec)
                var comps = path.split(separator: "/").dropLast()
                while !comps.isEmpty {
                    tree[comps.joined(separator: "/")] = .dir
                    comps = comps.dropLast()
                }
            }
            trees[rev] = tree
            try build(rev, root, deltaFrom: nil)
            if i > 1 { try build(rev, root, deltaFrom: Self.revision(i - 1)) }
        }
    }

    private func build(_ rev: UInt64, _ tree: String, deltaFrom base: UInt64?) throws {
        var args = [
            "build", "--tree", tree, "--type", Self.type, "--revision", String(rev),
            "--key", dir.sub("stage.key"), "--out-dir", dir.sub("packages"),
        ]
        if let base { args += ["--delta-from", full[base]!.path] }
        let r = try Programs.run("courier-stage", args)
        try #require(r.status == 0, "courier-stage \(args.joined(separator: " ")): \(r.stderr)")
        let name = base.map { "\(Self.type)_\(rev)_from_\($0).cpkg" } ?? "\(Self.type)_\(rev).cpkg"
        let p = Package(name: name, path: dir.sub("packages/" + name), revision: rev, base: base)
        try #require(FileManager.default.fileExists(atPath: p.path), "courier-stage did not write \(p.path)")
        if base == nil { full[rev] = p } else { delta[rev] = p }
    }
}

/// One client: inbox, state, store, trust, hook log; the packages are hard-linked in from the
/// fixture (a real copier's way: a dot-name, then a rename).
final class CrashWorkspace {
    let dir = TempDir()
    let config: String
    var inbox: String { dir.sub("inbox") }
    var typeStore: String { dir.sub("state/store/\(CrashFixture.type)") }
    var hookLog: String { dir.sub("hook.log") }
    var daemonLog: String { dir.sub("daemon.log") }

    struct Run {
        var status: Int32
        var exited: Bool
        var killedBySIGKILL: Bool { !exited && status == SIGKILL }
    }

    init(_ fx: CrashFixture, hardlink: Bool) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir.sub("trust"), withIntermediateDirectories: true)
        try fm.copyItem(atPath: fx.dir.sub("stage.key.pub"), toPath: dir.sub("trust/stage.key.pub"))
        try fm.createDirectory(atPath: dir.sub("inbox"), withIntermediateDirectories: true)
        dir.write(
            "inboxd.toml",
            """
            inbox = "inbox"
            state_dir = "state"
            trust = "trust"
            delta_wait = "2s"

            [types.\(CrashFixture.type)]
            keep = 2
            hardlink_unchanged = \(hardlink)
            apply_command = "echo $COURIER_REVISION >> \(dir.sub("hook.log"))"
            """)
        config = dir.sub("inboxd.toml")
    }

    func drop(_ p: CrashFixture.Package) throws {
        let tmp = inbox + "/." + p.name + ".part"
        if link(p.path, tmp) != 0 { try FileManager.default.copyItem(atPath: p.path, toPath: tmp) }
        guard rename(tmp, inbox + "/" + p.name) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: inbox + "/" + p.name])
        }
    }

    func launch(_ args: [String], env: [String: String] = [:]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Programs.binDir + "/courier-inboxd")
        p.arguments = args
        var e = ProcessInfo.processInfo.environment
        e["COURIER_FAULT"] = nil
        for (k, v) in env { e[k] = v }
        p.environment = e
        if !FileManager.default.fileExists(atPath: daemonLog) {
            FileManager.default.createFile(atPath: daemonLog, contents: nil)
        }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: daemonLog))
        try h.seekToEnd()
        p.standardOutput = h
        p.standardError = h
        p.standardInput = FileHandle.nullDevice
        try p.run()
        try h.close()
        return p
    }

    func runOnce(fault: String? = nil) throws -> Run {
        let p = try launch(["run", "--config", config, "--once"], env: fault.map { ["COURIER_FAULT": $0] } ?? [:])
        p.waitUntilExit()
        return Run(status: p.terminationStatus, exited: p.terminationReason == .exit)
    }

    func logTail() -> String {
        let s = (try? String(contentsOfFile: daemonLog, encoding: .utf8)) ?? ""
        return String(s.suffix(1500))
    }

    func current() -> UInt64? {
        guard let t = try? FileManager.default.destinationOfSymbolicLink(atPath: typeStore + "/current") else {
            return nil
        }
        return UInt64(t)
    }

    func inboxNames() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: inbox)) ?? []).sorted() }

    /// True when part of the batch is not yet applied (the kill interrupted something to do).
    func hasWorkLeft(_ batch: [CrashFixture.Package]) -> Bool {
        let cur = current() ?? 0
        return batch.contains { $0.revision > cur || FileManager.default.fileExists(atPath: inbox + "/" + $0.name) }
    }

    func statusInstalled(_ json: Data?) -> UInt64?? {
        guard let json, let obj = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else { return nil }
        let ts = (obj["types"] as? [String: Any])?[CrashFixture.type] as? [String: Any]
        return .some((ts?["installed"] as? NSNumber)?.uint64Value)
    }

    /// (revision, event) of every history line.
    func history() -> [(UInt64, String)] {
        let text = (try? String(contentsOfFile: dir.sub("state/history.jsonl"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let r = (o["revision"] as? NSNumber)?.uint64Value, let e = o["event"] as? String
            else { return nil }
            return (r, e)
        }
    }

    /// Checks the invariants; `restarted` adds those that hold once a restart has recovered.
    func check(
        _ fx: CrashFixture, delivered: [CrashFixture.Package], restarted: Bool, context: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        var problems: [String] = []
        let fm = FileManager.default
        let cur = current()
        let link = try? fm.destinationOfSymbolicLink(atPath: typeStore + "/current")
        if link != nil && cur == nil { problems.append("(a) current → '\(link!)' is not a revision") }
        // (a) current is complete and equal to upstream.
        if let cur {
            if let want = fx.trees[cur] {
                if let d = CrashTree.diff(CrashTree.read(typeStore + "/\(cur)"), want) {
                    problems.append("(a) current → \(cur) differs from upstream: \(d)")
                }
            } else {
                problems.append("(a) current → \(cur), a revision that was never delivered")
            }
        }
        // (b) each package: still in the inbox, or gone and recorded; never quarantined.
        let statusData = fm.contents(atPath: dir.sub("state/status.json"))
        let recorded = statusInstalled(statusData) ?? nil
        let history = history()
        for p in delivered {
            if fm.fileExists(atPath: inbox + "/" + p.name) { continue }
            if (cur ?? 0) < p.revision {
                problems.append("(b) \(p.name) left the inbox but current is \(cur.map(String.init) ?? "absent")")
            }
            if (recorded ?? 0) < p.revision {
                problems.append(
                    "(b) \(p.name) left the inbox but status.json says installed \(recorded.map(String.init) ?? "nothing")"
                )
            }
            if !history.contains(where: {
                $0.0 == p.revision && ["applied", "recovered", "duplicate-removed"].contains($0.1)
            }) {
                problems.append(
                    "(b) \(p.name) left the inbox with no applied/recovered/duplicate-removed event in history.jsonl")
            }
        }
        let quarantined = (try? fm.contentsOfDirectory(atPath: dir.sub("state/quarantine"))) ?? []
        if !quarantined.isEmpty { problems.append("(b) packages quarantined: \(quarantined)") }

        if restarted {
            // (c) no leftovers; every kept revision complete.
            let names = (try? fm.contentsOfDirectory(atPath: typeStore)) ?? []
            for n in names where n != "current" {
                if let r = UInt64(n) {
                    if let want = fx.trees[r] {
                        if let d = CrashTree.diff(CrashTree.read(typeStore + "/" + n), want) {
                            problems.append("(c) kept revision \(n) differs from upstream: \(d)")
                        }
                    } else {
                        problems.append("(c) unknown revision directory \(n)")
                    }
                } else if n.hasSuffix(".manifest.json"), let r = UInt64(n.dropLast(14)) {
                    // The manifest kept beside a revision (for rollback's check); never without it.
                    if !names.contains(String(r)) { problems.append("(c) manifest without its revision: \(n)") }
                } else {
                    problems.append("(c) leftover in the store: \(n)")
                }
            }
            // Nor in the state directory (status.json is rewritten through a temporary file).
            let stateLeft = ((try? fm.contentsOfDirectory(atPath: dir.sub("state"))) ?? []).filter {
                $0.hasPrefix(".") || $0.contains(".tmp")
            }
            if !stateLeft.isEmpty { problems.append("(c) leftover in the state directory: \(stateLeft)") }
            // (d) everything delivered is applied, the inbox is empty.
            let newest = delivered.map(\.revision).max()
            if cur != newest {
                problems.append(
                    "(d) current is \(cur.map(String.init) ?? "absent"), newest delivered is \(newest.map(String.init) ?? "none")"
                )
            }
            let left = inboxNames()
            if !left.isEmpty { problems.append("(d) inbox not empty: \(left)") }
            // (e) status --json agrees with current; the hook announced it last.
            if let s = try? Programs.run("courier-inboxd", ["status", "--config", config, "--json"]) {
                if s.status != 0 {
                    problems.append("(e) status --json exited \(s.status): \(s.stderr)")
                } else if let installed = statusInstalled(Data(s.stdout.utf8)), installed == cur {
                } else {
                    problems.append(
                        "(e) status --json installed ≠ current \(cur.map(String.init) ?? "absent"): \(s.stdout.prefix(400))"
                    )
                }
            }
            let hook = ((try? String(contentsOfFile: hookLog, encoding: .utf8)) ?? "").split(separator: "\n").last.map(
                String.init)
            if let cur, hook != String(cur) {
                problems.append("(e) the apply command last announced \(hook ?? "nothing"), current is \(cur)")
            }
        }
        #expect(
            problems.isEmpty, "\(context): \(problems.joined(separator: " | "))\n--- daemon log:\n\(logTail())",
            sourceLocation: sourceLocation)
    }
}
