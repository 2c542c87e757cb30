import Foundation
import Glibc
import Testing

/// Issue #15: `courier-deliver push` into 8 inboxes at once (8 jobs), SIGKILLed after random
/// delays while it copies packages of several MiB (durable mode: reserved blocks, direct I/O,
/// syncfs, renames). After every kill, every visible file of every inbox is a complete package,
/// byte for byte the outbox's; the next push completes — every inbox holds exactly the packages
/// it should, no temporaries are left — and one more push copies nothing.
/// `COURIER_CRASH_SEED` replays a run.
@Suite(.serialized) struct PushTortureTests {
    static let seed: UInt64 =
        ProcessInfo.processInfo.environment["COURIER_CRASH_SEED"].flatMap { UInt64($0) } ?? 0x9054_2026

    @Test func killStormWhileCopyingIntoEightInboxes() throws {
        let target = Torture.size(short: 12, full: 105)
        let clients = 8
        var rng = CrashRNG(seed: Self.seed)
        let t = TempDir()
        let fm = FileManager.default
        // Two types of one revision each, 12 MiB of incompressible content: 24 MiB per inbox,
        // 192 MiB per push.
        try Programs.run("courier-stage", ["keygen", "--out", t.sub("stage.key")])
        for type in ["virus-defs", "ips-rules"] {
            try StormKit.write(t.sub("up/\(type)/20261129001/main.db"), StormKit.randomBytes(12 << 20, &rng))
        }
        t.write(
            "stage.toml",
            """
            outbox = "outbox"
            key = "stage.key"
            state_dir = "state"
            [types.virus-defs]
            source = "dir"
            path = "up/virus-defs"
            [types.ips-rules]
            source = "dir"
            path = "up/ips-rules"
            """)
        let staged = try Programs.run("courier-stage", ["run", "--config", t.sub("stage.toml")])
        try #require(staged.status == 0, "\(staged.stderr)")
        let names = ["ips-rules_20261129001.cpkg", "virus-defs_20261129001.cpkg"]
        var want: [String: Data] = [:]
        for n in names {
            let type = String(n.prefix { $0 != "_" })
            want[n] = fm.contents(atPath: t.sub("outbox/\(type)/20261129001/\(n)"))
        }
        let inboxes = (0..<clients).map { t.sub("clients/c\($0)/inbox") }
        for ib in inboxes { try fm.createDirectory(atPath: ib, withIntermediateDirectories: true) }
        let env = ["XDG_CACHE_HOME": t.sub("cache")]
        let args = [
            "push", "--outbox", t.sub("outbox"), "--trust", t.sub("stage.key.pub"), "--inbox", t.sub("clients/*/inbox"),
            "--jobs", "\(clients)",
        ]

        func visible(_ dir: String) -> [String] { StormKit.list(dir).filter { !$0.hasPrefix(".") } }
        func hidden(_ dir: String) -> [String] { StormKit.list(dir).filter { $0.hasPrefix(".") } }
        func clear() {
            for ib in inboxes { for n in visible(ib) { try? fm.removeItem(atPath: ib + "/" + n) } }
        }
        /// Every visible file is one of the packages, byte for byte; returns the problems.
        func checkVisible() -> [String] {
            var problems: [String] = []
            for ib in inboxes {
                for n in visible(ib) {
                    guard let w = want[n] else {
                        problems.append("\(ib)/\(n): not a package of the outbox")
                        continue
                    }
                    if fm.contents(atPath: ib + "/" + n) != w {
                        problems.append("\(ib)/\(n): differs from the outbox's (a partial copy visible)")
                    }
                }
            }
            return problems
        }

        // A first push fills the verification cache; the second, from empty inboxes, is the
        // measure of a push's length.
        #expect(try Programs.run("courier-deliver", args, env: env).status == 0)
        clear()
        sleep(2)  // the cache remembers packages unchanged for 2 s
        let t0 = Date()
        let measured = try Programs.run("courier-deliver", args, env: env)
        let seconds = Date().timeIntervalSince(t0)
        #expect(measured.status == 0, "\(measured.stdout)")

        var kills = 0
        var midCopy = 0
        var withTemporaries = 0
        var partialSets = 0
        var doubleKills = 0
        var finishedFirst = 0
        var failures = 0
        var cleanedReported = 0
        let started = Date()
        var step = 0
        while kills < target && step < target * 4 {
            step += 1
            clear()
            let rounds = rng.next() % 4 == 0 ? 2 : 1
            var hadTemporaries = false
            for round in 0..<rounds {
                let delay = Double(rng.next() % 1000) / 1000 * seconds * 1.3
                let p = try StormKit.spawn("courier-deliver", args, env: env)
                if StormKit.kill(p, after: delay) {
                    kills += 1
                    if round == 1 { doubleKills += 1 }
                    let temps = inboxes.flatMap(hidden)
                    let present = inboxes.map { visible($0).count }.reduce(0, +)
                    if !temps.isEmpty {
                        withTemporaries += 1
                        hadTemporaries = true
                    }
                    if present > 0 && present < clients * names.count { partialSets += 1 }
                    if !temps.isEmpty || (present > 0 && present < clients * names.count) { midCopy += 1 }
                } else {
                    finishedFirst += 1
                    #expect(p.terminationStatus == 0, "a push that was not killed exited \(p.terminationStatus)")
                }
                let problems = checkVisible()
                #expect(
                    problems.isEmpty,
                    "after a kill at \(Int(delay * 1000)) ms (seed \(Self.seed), step \(step)): \(problems)")
                if !problems.isEmpty { failures += 1 }
            }
            // Pushed again to completion: exactly the packages, byte for byte, no temporaries.
            let again = try Programs.run("courier-deliver", args, env: env)
            #expect(again.status == 0, "step \(step): \(again.stdout)\(again.stderr)")
            if hadTemporaries && again.stdout.contains("cleaned") { cleanedReported += 1 }
            var bad: [String] = checkVisible()
            for ib in inboxes {
                if visible(ib) != names { bad.append("\(ib) holds \(visible(ib))") }
                if !hidden(ib).isEmpty { bad.append("\(ib): temporaries left \(hidden(ib))") }
            }
            #expect(bad.isEmpty, "after the complete push (step \(step)): \(bad)")
            // And once more: nothing to do, nothing touched.
            let inodes = inboxes.flatMap { ib in
                names.map { n -> UInt64 in
                    var st = stat()
                    stat(ib + "/" + n, &st)
                    return UInt64(st.st_ino)
                }
            }
            let noop = try Programs.run("courier-deliver", args, env: env)
            #expect(
                noop.status == 0 && noop.stdout.contains(" 0 copied"),
                "step \(step): a second push is not a no-op: \(noop.stdout)")
            let after = inboxes.flatMap { ib in
                names.map { n -> UInt64 in
                    var st = stat()
                    stat(ib + "/" + n, &st)
                    return UInt64(st.st_ino)
                }
            }
            #expect(inodes == after, "step \(step): the no-op push replaced files")
            if !bad.isEmpty { failures += 1 }
            if failures > 3 { break }
        }
        Torture.report(
            "PushTortureTests: \(kills) SIGKILLs of courier-deliver push (\(clients) inboxes, \(clients) jobs, 2 packages of 12 MiB each) — "
                + "\(midCopy) mid-copy (\(withTemporaries) left dot-temporaries, \(partialSets) a partly delivered set), "
                + "\(doubleKills) second kills in a row, \(finishedFirst) pushes finished before their kill; "
                + (failures == 0
                    ? "no partial visible file after any kill, every next push complete and the one after it a no-op; "
                    : "\(failures) checks FAILED; ")
                + "a push took \(String(format: "%.2f", seconds)) s; seed \(Self.seed), "
                + String(format: "%.0f s", Date().timeIntervalSince(started)))
        #expect(kills >= target)
        #expect(midCopy >= kills / 3, "only \(midCopy) of \(kills) kills landed mid-copy")
    }
}
