import Foundation
import Glibc
import Testing

/// Issue #15: `courier-stage run` SIGKILLed after random delays, over and over, while its three
/// kinds of upstream — a `dir` of revisions, a `url` served by python's http.server and a `tuf`
/// repository made by python-tuf, both on 127.0.0.1 — move to a new revision between runs.
/// After every kill the outbox holds only complete, verifying packages and `latest`,
/// `latest.txt` and index.json name only revisions on disk; the next run without a kill exits 0,
/// publishes the newest upstream revision (its package extracts to exactly the upstream's
/// bytes), frees the lock and leaves no dot-leftovers or work directory behind.
/// `COURIER_CRASH_SEED` replays a run.
@Suite(.serialized) struct StageTortureTests {
    static let seed: UInt64 =
        ProcessInfo.processInfo.environment["COURIER_CRASH_SEED"].flatMap { UInt64($0) } ?? 0x5747_4531_2026

    enum Source: String, CaseIterable { case dir, url, tuf }
    static func typeName(_ s: Source) -> String {
        ["dir": "virus-defs", "url": "feed-url", "tuf": "rules-tuf"][s.rawValue]!
    }

    /// The upstream's content: a large file of which each revision changes one 64 KiB block
    /// (deltas are worth building, so the stager patches), and a small file new every time.
    struct Upstream {
        var base: Data
        var rng: CrashRNG
        var revision = 0
        mutating func next() -> (main: Data, daily: Data) {
            revision += 1
            let block = 64 << 10
            let at = (revision * 7919 * block) % (base.count - block)
            base.replaceSubrange(at..<(at + block), with: StormKit.randomBytes(block, &rng))
            return (base, StormKit.randomBytes(96 << 10, &rng))
        }
    }

    @Test func killStormOverDirURLAndTUFSources() throws {
        let target = Torture.size(short: 12, full: 105)
        var rng = CrashRNG(seed: Self.seed)
        let t = TempDir()
        let fm = FileManager.default
        let env = StormKit.noProxy
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        try fm.createDirectory(atPath: t.sub("www"), withIntermediateDirectories: true)
        try fm.createDirectory(atPath: t.sub("upstream"), withIntermediateDirectories: true)
        let http = try DirServer(root: t.sub("www"))
        let tuf = try StormTUF(dir: t.sub("tufrepo"))
        try fm.copyItem(atPath: tuf.rootPath, toPath: t.sub("vendor-root.json"))
        let cfg = StormKit.stageConfig(
            t,
            types: """
                [types.virus-defs]
                source = "dir"
                path = "upstream"
                keep_revisions = 3
                deltas = 1

                [types.feed-url]
                source = "url"
                url = "\(http.url("feed.db"))"
                keep_revisions = 3
                deltas = 1

                [types.rules-tuf]
                source = "tuf"
                metadata_url = "\(tuf.metadataURL)"
                targets_url = "\(tuf.targetsURL)"
                trusted_root = "vendor-root.json"
                target_pattern = "rules/*"
                keep_revisions = 3
                deltas = 1
                """)
        let size = 3 << 20
        var upstream: [Source: Upstream] = [:]
        for (i, s) in Source.allCases.enumerated() {
            var r = CrashRNG(seed: Self.seed &+ UInt64(i + 1))
            upstream[s] = Upstream(base: StormKit.randomBytes(size, &r), rng: r)
        }
        /// What the newest upstream revision of each source is, as a tree: path → bytes.
        var expected: [Source: [String: Data]] = [:]
        var dirRevision = 0
        var urlTime = Date().timeIntervalSince1970 - 1_000_000
        func advance(_ s: Source) throws {
            let (main, daily) = upstream[s]!.next()
            switch s {
            case .dir:
                dirRevision += 1
                // Built beside and renamed in: the stager never sees half a revision directory.
                let tmp = t.sub("upstream/.new")
                try StormKit.write(tmp + "/main.db", main)
                try StormKit.write(tmp + "/daily.db", daily)
                #expect(rename(tmp, t.sub("upstream/\(dirRevision)")) == 0)
                expected[s] = ["main.db": main, "daily.db": daily]
            case .url:
                try StormKit.writeAtomically(t.sub("www/feed.db"), main + daily)
                // http.server's Last-Modified has whole seconds: move it on explicitly, or a
                // change within the second would be a 304 (as a real server would answer).
                urlTime += 10
                try fm.setAttributes(
                    [.modificationDate: Date(timeIntervalSince1970: urlTime)], ofItemAtPath: t.sub("www/feed.db"))
                expected[s] = ["feed.db": main + daily]
            case .tuf:
                try StormKit.write(t.sub("tufsrc/main.db"), main)
                try StormKit.write(t.sub("tufsrc/daily.db"), daily)
                try tuf.addTargets([
                    ("rules/main.db", t.sub("tufsrc/main.db")), ("rules/daily.db", t.sub("tufsrc/daily.db")),
                ])
                expected[s] = ["rules/main.db": main, "rules/daily.db": daily]
            }
        }
        let allTypes = Source.allCases.map(Self.typeName)
        let inv = OutboxInvariants(outbox: t.sub("outbox"), trust: t.sub("stage.key.pub"))
        func latest(_ s: Source) -> String? {
            try? String(contentsOfFile: t.sub("outbox/\(Self.typeName(s))/latest.txt"), encoding: .utf8)
        }
        /// The newest upstream revision is `latest`, and its full package extracts to exactly it.
        func checkNewestPublished(_ s: Source, _ context: String) throws {
            let type = Self.typeName(s)
            guard let l = latest(s)?.trimmingCharacters(in: .whitespacesAndNewlines) else {
                Issue.record("\(context): \(type) has no latest")
                return
            }
            if s == .dir { #expect(l == "\(dirRevision)", "\(context): latest \(l), upstream \(dirRevision)") }
            let into = t.sub("extract")
            try? fm.removeItem(atPath: into)
            let x = try Programs.run(
                "courier-inboxd",
                [
                    "extract", "--trust", t.sub("stage.key.pub"), "--into", into,
                    t.sub("outbox/\(type)/\(l)/\(type)_\(l).cpkg"),
                ])
            #expect(x.status == 0, "\(context): extract \(type) \(l): \(x.stderr)")
            let got = treeContents(into)
            #expect(
                got == expected[s]!,
                "\(context): \(type) \(l) holds \(got.keys.sorted()), not the newest upstream revision")
            try? fm.removeItem(atPath: into)
        }

        // The first revision of each, published without a kill: the measure of a run's length.
        var seconds: [Source: Double] = [:]
        for s in Source.allCases {
            try advance(s)
            let t0 = Date()
            let r = try Programs.run("courier-stage", ["run", "--config", cfg, "--type", Self.typeName(s)], env: env)
            seconds[s] = Date().timeIntervalSince(t0)
            #expect(r.status == 0, "\(s): \(r.stderr)")
            try checkNewestPublished(s, "first \(s) run")
        }

        var kills: [Source: Int] = [:]
        var midWork: [Source: Int] = [:]
        var attempts: [Source: Int] = [:]
        var late = 0
        var finishedFirst = 0
        var doubleKills = 0
        var runs = 0
        var failures = 0
        let started = Date()
        var i = 0
        while kills.values.reduce(0, +) < target && i < target * 4 {
            // The source with the fewest kills so far: every source gets its share.
            let s = Source.allCases.min { (kills[$0] ?? 0) < (kills[$1] ?? 0) }!
            let type = Self.typeName(s)
            i += 1
            try advance(s)
            // Now and then killed twice in a row (the upstream sometimes moving on in between).
            let rounds = rng.next() % 4 == 0 ? 2 : 1
            for round in 0..<rounds {
                if round == 1 && rng.next() % 2 == 0 { try advance(s) }
                let before = latest(s)
                // Up to twice a run's usual length: most kills land mid-work, some after the
                // publication (in the `latest` switch, retention or the index write), a few miss.
                let delay = Double(rng.next() % 1000) / 1000 * seconds[s]! * 2
                let p = try StormKit.spawn("courier-stage", ["run", "--config", cfg, "--type", type], env: env)
                attempts[s, default: 0] += 1
                if StormKit.kill(p, after: delay) {
                    kills[s, default: 0] += 1
                    if round == 1 { doubleKills += 1 }
                    // Killed before this run's revision became `latest`: mid-work.
                    if latest(s) == before { midWork[s, default: 0] += 1 } else { late += 1 }
                } else {
                    finishedFirst += 1
                    #expect(
                        p.terminationStatus == 0, "\(type): a run that was not killed exited \(p.terminationStatus)")
                }
                let problems = inv.check(types: allTypes)
                #expect(
                    problems.isEmpty,
                    "after a kill of \(type) at \(Int(delay * 1000)) ms (seed \(Self.seed), step \(i)): \(problems)")
                if !problems.isEmpty { failures += 1 }
            }
            // The next run, without a kill, completes.
            let t0 = Date()
            let r = try Programs.run("courier-stage", ["run", "--config", cfg, "--type", type, "--json"], env: env)
            runs += 1
            seconds[s] = 0.7 * seconds[s]! + 0.3 * Date().timeIntervalSince(t0)
            #expect(r.status == 0, "\(type) after a kill (seed \(Self.seed), step \(i)): exit \(r.status): \(r.stderr)")
            try checkNewestPublished(s, "step \(i)")
            #expect(StormKit.lockIsFree(t.sub("state/lock")), "the run lock is still held")
            let left = inv.leftovers(types: [type])
            #expect(left.isEmpty, "step \(i): leftovers in the outbox after a complete run: \(left)")
            #expect(
                !fm.fileExists(atPath: t.sub("state/\(type)/work")), "step \(i): \(type)'s work directory left behind")
            let problems = inv.check(types: allTypes)
            #expect(problems.isEmpty, "after the complete run of \(type) (step \(i)): \(problems)")
            if failures > 3 { break }  // a broken invariant repeats: say it a few times, not 100
        }
        let total = kills.values.reduce(0, +)
        let mid = midWork.values.reduce(0, +)
        let per = Source.allCases.map { "\($0.rawValue) \(kills[$0] ?? 0) (\(midWork[$0] ?? 0) mid-work)" }.joined(
            separator: ", ")
        Torture.report(
            "StageTortureTests: \(total) SIGKILLs of courier-stage run — \(per); \(doubleKills) second kills in a row, \(late) after the revision was published, "
                + "\(finishedFirst) runs finished before their kill, \(runs) complete runs, \(inv.verifications) packages verified; "
                + (failures == 0
                    ? "outbox consistent after every kill, newest revision published after every complete run; "
                    : "\(failures) checks FAILED; ") + "seed \(Self.seed), "
                + String(format: "%.0f s", Date().timeIntervalSince(started)))
        #expect(total >= target)
        for s in Source.allCases {
            #expect((kills[s] ?? 0) >= target / 4, "\(s): only \(kills[s] ?? 0) kills of \(attempts[s] ?? 0)")
        }
        // Most kills must land before the run published: else this tests little.
        #expect(mid >= total / 3, "only \(mid) of \(total) kills landed before the run's package appeared")
    }

    /// The two findings of the storm, each at its one moment: a run killed after retention
    /// removed a revision and before its index write (fault point `before-index`) leaves an
    /// index that lists only packages on disk; and the temporary of an interrupted index write
    /// is removed by the next run.
    @Test func killedAfterRetentionTheIndexNamesOnlyWhatIsOnDisk() throws {
        let t = TempDir()
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        t.write(
            "stage.toml",
            "outbox = \"outbox\"\nkey = \"stage.key\"\nstate_dir = \"state\"\n[types.virus-defs]\nsource = \"dir\"\npath = \"up\"\nkeep_revisions = 2\n"
        )
        let cfg = t.sub("stage.toml")
        for rev in 1...2 {
            t.write("up/\(rev)/daily.ndb", "rev \(rev)\n")
            #expect(try Programs.run("courier-stage", ["run", "--config", cfg]).status == 0)
        }
        t.write("up/3/daily.ndb", "rev 3\n")
        let killed = try Programs.run(
            "courier-stage", ["run", "--config", cfg], env: ["COURIER_FAULT": "before-index"])
        #expect(killed.status != 0, "not killed at before-index")
        #expect(
            !FileManager.default.fileExists(atPath: t.sub("outbox/virus-defs/1")),
            "retention did not run before the kill")
        let inv = OutboxInvariants(outbox: t.sub("outbox"), trust: t.sub("stage.key.pub"))
        let problems = inv.check(types: ["virus-defs"])
        #expect(problems.isEmpty, "\(problems)")

        FileManager.default.createFile(atPath: t.sub("outbox/.index.json.tmp-999999"), contents: Data("{".utf8))
        #expect(try Programs.run("courier-stage", ["run", "--config", cfg]).status == 0)
        #expect(inv.leftovers(types: ["virus-defs"]).isEmpty, "\(inv.leftovers(types: ["virus-defs"]))")
        #expect(inv.check(types: ["virus-defs"]).isEmpty)
    }
}
