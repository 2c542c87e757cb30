import Foundation
import Glibc
import Testing

/// What can be checked here of the power-loss argument of docs/RELIABILITY.md: a power cut cannot
/// be made on this machine, but the order in which each program makes bytes durable (`fsync`,
/// `syncfs`) and makes them visible (`rename`, `symlink`, `unlink`) can be watched on the real
/// programs with `strace`. The argument holds if every barrier comes before what depends on it:
///
/// - courier-stage: the package file is fsynced before its rename, the staging directory before
///   it is renamed into the outbox, the type directory after; only then `latest` moves;
/// - courier-deliver push: one `syncfs` per file system before the first rename into an inbox,
///   one after the last (and none with `--no-sync`, which says so in its help);
/// - courier-inboxd: `syncfs` of the store before the tree is renamed in and `current` switched;
///   the package leaves the inbox after that — and when the inbox is on another file system than
///   the store (where the journal orders nothing between them), only after an fsync of the
///   store's type directory.
@Suite(.serialized) struct DurabilityOrderTests {
    static let type = "virus-defs"
    static let revision = "2026112901"
    static let calls = "syncfs,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat,symlink,symlinkat"

    /// One line of `strace -f -y`: "PID call(args) = result"; failed calls are dropped.
    struct Call {
        var name: String
        var args: String
        var line: String
    }

    /// Runs `program args` under strace; returns the exit status and the successful traced calls.
    static func traced(_ dir: TempDir, _ program: String, _ args: [String]) throws -> (Int32, [Call]) {
        let out = dir.sub("trace-\(UUID().uuidString.prefix(6))")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/strace")
        p.arguments =
            ["-f", "-y", "-qq", "-s", "4096", "-o", out, "-e", "trace=" + calls, Programs.binDir + "/" + program] + args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        // Under `make test-asan`: LeakSanitizer cannot run in a traced process (it stops with a
        // fatal error at exit), so the traced program runs without it; AddressSanitizer stays on.
        var env = ProcessInfo.processInfo.environment
        if let asan = env["ASAN_OPTIONS"] { env["ASAN_OPTIONS"] = asan + ":detect_leaks=0" }
        p.environment = env
        try p.run()
        p.waitUntilExit()
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        try #require(!text.isEmpty, "strace wrote nothing (is ptrace allowed?)")
        let list = text.split(separator: "\n").compactMap { raw -> Call? in
            let line = String(raw)
            guard !line.contains(" = -1 "), let open = line.firstIndex(of: "("),
                let space = line[..<open].lastIndex(of: " ")
            else { return nil }
            return Call(name: String(line[line.index(after: space)..<open]), args: String(line[open...]), line: line)
        }
        return (p.terminationStatus, list)
    }

    /// The index of the first call at or after `from` named one of `names` whose arguments
    /// contain every string of `all`.
    static func find(_ list: [Call], _ names: Set<String>, _ all: [String], from: Int = 0) -> Int? {
        guard from < list.count else { return nil }
        return list[from...].firstIndex { names.contains($0.name) && all.allSatisfy($0.args.contains) }
    }

    static let renames: Set<String> = ["rename", "renameat", "renameat2"]
    static let fsyncs: Set<String> = ["fsync", "fdatasync"]

    /// The calls in the order they must come; fails naming the first one missing or out of order.
    static func expectOrder(
        _ list: [Call], _ steps: [(String, Set<String>, [String])],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        var at = 0
        for (what, names, args) in steps {
            guard let i = find(list, names, args, from: at) else {
                let anywhere = find(list, names, args).map { "it comes earlier, at call \($0)" } ?? "it never happens"
                Issue.record(
                    "\(what): not found after call \(at) (\(anywhere)):\n\(list.map(\.line).joined(separator: "\n"))",
                    sourceLocation: sourceLocation)
                return
            }
            at = i + 1
        }
    }

    /// A signing key, one upstream revision and a stage config with its outbox.
    final class Setup {
        let t = TempDir()
        init() throws {
            t.write("up/\(DurabilityOrderTests.revision)/README", "revision 1\n")
            t.write("up/\(DurabilityOrderTests.revision)/db/daily.cvd", "daily 1\n")
            var g = CrashRNG(seed: 7)
            let blob = Data((0..<200_000).map { _ in UInt8(truncatingIfNeeded: g.next()) })
            try blob.write(to: URL(fileURLWithPath: t.sub("up/\(DurabilityOrderTests.revision)/db/main.cvd")))
            let k = try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
            try #require(k.status == 0, "keygen: \(k.stderr)")
            try FileManager.default.createDirectory(atPath: t.sub("trust"), withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: t.sub("stage.key.pub"), toPath: t.sub("trust/stage.key.pub"))
            t.write(
                "stage.toml",
                """
                outbox = "\(t.sub("outbox"))"
                key = "\(t.sub("stage.key"))"
                state_dir = "\(t.sub("stage-state"))"
                [types.\(DurabilityOrderTests.type)]
                source = "dir"
                path = "\(t.sub("up"))"
                """)
        }
        var package: String {
            t.sub(
                "outbox/\(DurabilityOrderTests.type)/\(DurabilityOrderTests.revision)/\(DurabilityOrderTests.type)_\(DurabilityOrderTests.revision).cpkg"
            )
        }
        func stage() throws {
            let r = try Programs.run("courier-stage", ["run", "--config", t.sub("stage.toml")])
            try #require(
                r.status == 0 && FileManager.default.fileExists(atPath: package), "courier-stage run: \(r.stderr)")
        }
    }

    @Test func stageMakesThePackageDurableBeforeItIsVisible() throws {
        let s = try Setup()
        let (status, list) = try Self.traced(s.t, "courier-stage", ["run", "--config", s.t.sub("stage.toml")])
        try #require(status == 0, "courier-stage run exited \(status)")
        let tdir = s.t.sub("outbox/\(Self.type)")
        let name = "\(Self.type)_\(Self.revision).cpkg"
        Self.expectOrder(
            list,
            [
                ("fsync of the package's temporary file", Self.fsyncs, ["/.staging-\(Self.revision)/.\(name).tmp"]),
                ("rename of the package to its name", Self.renames, ["/.staging-\(Self.revision)/\(name)\""]),
                ("fsync of the staging directory", Self.fsyncs, ["\(tdir)/.staging-\(Self.revision)>"]),
                (
                    "rename of the staging directory into the outbox", Self.renames,
                    ["\(tdir)/.staging-\(Self.revision)\"", "\(tdir)/\(Self.revision)\""]
                ),
                ("fsync of the type directory", Self.fsyncs, ["\(tdir)>"]),
                ("rename of latest", Self.renames, ["\(tdir)/latest\""]),
            ])
        Self.expectOrder(
            list,
            [
                ("rename of the revision into the outbox", Self.renames, ["\(tdir)/\(Self.revision)\""]),
                ("fsync of index.json's temporary file", Self.fsyncs, ["/outbox/.index.json.tmp"]),
                ("rename of index.json", Self.renames, ["/outbox/index.json\""]),
            ])
    }

    @Test(arguments: [false, true]) func pushFlushesBeforeAndAfterItsRenames(noSync: Bool) throws {
        let s = try Setup()
        try s.stage()
        for c in ["c1", "c2"] {
            try FileManager.default.createDirectory(atPath: s.t.sub("\(c)/inbox"), withIntermediateDirectories: true)
        }
        let (status, list) = try Self.traced(
            s.t, "courier-deliver",
            [
                "push", "--outbox", s.t.sub("outbox"), "--trust", s.t.sub("trust"), "--inbox", s.t.sub("c*/inbox"),
                "--verify-cache", s.t.sub("verified"),
            ] + (noSync ? ["--no-sync"] : []))
        try #require(status == 0, "push exited \(status)")
        let name = "\(Self.type)_\(Self.revision).cpkg"
        let into = ["c1", "c2"].compactMap { c in Self.find(list, Self.renames, ["\(s.t.sub(c))/inbox/\(name)\""]) }
        #expect(
            into.count == 2,
            "the package was not renamed into both inboxes:\n\(list.map(\.line).joined(separator: "\n"))")
        let flushes = list.indices.filter { list[$0].name == "syncfs" && list[$0].args.contains(s.t.path) }
        if noSync {
            #expect(flushes.isEmpty, "--no-sync flushed: \(flushes.map { list[$0].line })")
        } else {
            #expect(
                flushes.contains { $0 < into.min()! },
                "no syncfs of the inboxes' file system before the first rename into an inbox:\n\(list.map(\.line).joined(separator: "\n"))"
            )
            #expect(
                flushes.contains { $0 > into.max()! },
                "no syncfs of the inboxes' file system after the last rename into an inbox:\n\(list.map(\.line).joined(separator: "\n"))"
            )
        }
    }

    /// `inboxOnTmpfs`: the inbox on a file system of its own (a tmpfs mount), the store on /tmp's.
    @Test(arguments: [false, true]) func inboxdSwitchesDurablyBeforeThePackageLeaves(inboxOnTmpfs: Bool) throws {
        let s = try Setup()
        try s.stage()
        let inbox = s.t.sub("client/inbox")
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        if inboxOnTmpfs {
            try #require(
                InboxdStateRepairTests.mountTmpfs(inbox, size: "8m"), "mount a tmpfs for the inbox (needs root)")
        }
        defer { if inboxOnTmpfs { InboxdStateRepairTests.sh(["umount", "-l", inbox]) } }
        s.t.write(
            "client/inboxd.toml",
            """
            inbox = "inbox"
            state_dir = "state"
            trust = "\(s.t.sub("trust"))"
            [types.\(Self.type)]
            keep = 2
            """)
        let name = "\(Self.type)_\(Self.revision).cpkg"
        try FileManager.default.copyItem(atPath: s.package, toPath: inbox + "/" + name)
        let (status, list) = try Self.traced(
            s.t, "courier-inboxd", ["run", "--config", s.t.sub("client/inboxd.toml"), "--once"])
        try #require(status == 0, "courier-inboxd exited \(status)")
        #expect(!FileManager.default.fileExists(atPath: inbox + "/" + name), "the package was not applied")
        let store = s.t.sub("client/state/store/\(Self.type)")
        var steps: [(String, Set<String>, [String])] = [
            ("syncfs of the store", ["syncfs"], ["\(store)>"]),
            (
                "rename of the new tree into the store", Self.renames,
                ["\(store)/\(Self.revision).tmp\"", "\(store)/\(Self.revision)\""]
            ),
            ("rename of current", Self.renames, ["\(store)/current\""]),
        ]
        if inboxOnTmpfs { steps.append(("fsync of the store's type directory", Self.fsyncs, ["\(store)>"])) }
        steps.append(("unlink of the package from the inbox", ["unlink", "unlinkat"], ["\(inbox)/\(name)\""]))
        Self.expectOrder(list, steps)
        if !inboxOnTmpfs {
            // One file system: the journal orders the unlink after the switch; no extra commit.
            let cur = Self.find(list, Self.renames, ["\(store)/current\""]) ?? 0
            let gone = Self.find(list, ["unlink", "unlinkat"], ["\(inbox)/\(name)\""]) ?? 0
            #expect(
                !list[cur..<gone].contains { Self.fsyncs.contains($0.name) && $0.args.contains("\(store)>") },
                "an fsync of the store between the switch and the unlink on one file system")
        }
    }
}
