import Foundation
import Glibc
import Testing

/// The copier contract of docs/INBOXD.md against a running `courier-inboxd run`: what real
/// copiers (`ln`, `cp -l`, `ln -s`, `mkfifo`, `cp` twice, a writer that holds the file) leave in
/// the inbox, and what the daemon must make of it (issue #11, items 7 and 10).
@Suite(.serialized) struct InboxdCopierContractTests {
    typealias Client = InboxdE2ETests.Client

    /// A package whose tree holds `mib` MiB of random bytes: incompressible, so the daemon takes
    /// a while to read it — long enough for a second writer to come in mid-read.
    func bigPackage(_ c: Client, _ rev: Int, mib: Int) throws -> String {
        let dir = c.t.sub("up/virus-defs/\(rev)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        #expect(try c.sh("head -c \(mib)M /dev/urandom > \(dir)/random.bin") == 0)
        return try c.build(rev)
    }

    func log(_ c: Client) -> String {
        String((try? String(contentsOfFile: c.logPath, encoding: .utf8)) ?? "").suffix(3000).description
    }

    /// A hard link made into the inbox (`ln`, `cp -l`: `courier-deliver push --link`) produces
    /// only IN_CREATE; it is applied when it appears, not at the next rescan. A symbolic link and
    /// a FIFO are quarantined (the link itself, never its target; the FIFO never opened), with a
    /// reason, and leave nothing pending.
    @Test func hardLinksSymlinksAndFifosInTheInbox() throws {
        let c = try Client()
        let p1 = try c.build(1)
        let p2 = try c.build(2)
        let p3 = try c.build(3)
        try c.start()
        #expect(try c.sh("ln \(p1) inbox/virus-defs_1.cpkg") == 0)
        #expect(
            waitFor(10) { c.installed() == 1 && c.inbox().isEmpty },
            "ln: installed \(String(describing: c.installed())), inbox \(c.inbox()): \(log(c))")
        #expect(try c.sh("cp -l \(p2) inbox/virus-defs_2.cpkg") == 0)
        #expect(waitFor(10) { c.installed() == 2 && c.inbox().isEmpty }, "cp -l: \(log(c))")

        // A symbolic link: the link goes to quarantine, its target stays where it was.
        #expect(try c.sh("ln -s \(p3) inbox/virus-defs_3.cpkg") == 0)
        #expect(waitFor(10) { c.quarantined().contains("virus-defs_3.cpkg") }, "symlink: inbox \(c.inbox()): \(log(c))")
        var st = stat()
        #expect(
            lstat(c.t.sub("state/quarantine/virus-defs_3.cpkg"), &st) == 0 && st.st_mode & S_IFMT == S_IFLNK,
            "the link itself was moved")
        #expect(FileManager.default.fileExists(atPath: p3), "the target is untouched")
        #expect(c.installed() == 2, "a symlink is never followed")
        let reason =
            (try? String(contentsOfFile: c.t.sub("state/quarantine/virus-defs_3.cpkg.reason.json"), encoding: .utf8))
            ?? ""
        #expect(reason.contains("symbolic link"), "\(reason)")

        // A FIFO: never opened (a blocking open would hang the daemon), quarantined.
        #expect(try c.sh("mkfifo inbox/virus-defs_4.cpkg") == 0)
        #expect(waitFor(10) { c.quarantined().contains("virus-defs_4.cpkg") }, "fifo: inbox \(c.inbox()): \(log(c))")
        #expect(c.inbox().isEmpty)
        // The daemon still works after both.
        #expect(try c.sh("cp \(p3) inbox/") == 0)
        #expect(waitFor(10) { c.installed() == 3 }, "after the fifo: \(log(c))")
        #expect(c.stop() == 0)
    }

    /// A symlink and a FIFO that were there before the daemon started are handled by the
    /// start-up rescan the same way (before: "still open for writing" for ever).
    @Test func symlinkAndFifoFoundByTheRescan() throws {
        let c = try Client()
        let p1 = try c.build(1)
        #expect(try c.sh("ln -s \(p1) inbox/virus-defs_1.cpkg && mkfifo inbox/virus-defs_2.cpkg") == 0)
        let once = try Programs.run("courier-inboxd", ["run", "--config", c.t.sub("inboxd.toml"), "--once", "--quiet"])
        #expect(once.status == 16, "\(once.stderr)")
        #expect(c.inbox().isEmpty, "\(c.inbox())")
        #expect(Set(c.quarantined()) == ["virus-defs_1.cpkg", "virus-defs_2.cpkg"])
    }

    /// A retried copy job: the same package copied twice in a row with `cp` (the second opens
    /// the file with O_TRUNC while the daemon may be reading the first). Every package must end
    /// applied, never quarantined.
    @Test func thePackageCopiedTwiceInARowIsNeverQuarantined() throws {
        let c = try Client()
        let n = 8
        var pkgs: [String] = []
        for i in 1...n { pkgs.append(try bigPackage(c, i, mib: 16)) }
        try c.start()
        for i in 1...n {
            #expect(
                try c.sh("cp \(pkgs[i - 1]) inbox/virus-defs_\(i).cpkg; cp \(pkgs[i - 1]) inbox/virus-defs_\(i).cpkg")
                    == 0)
            #expect(
                waitFor(20) { c.installed() == i && c.inbox().isEmpty },
                "copy \(i): installed \(String(describing: c.installed())), inbox \(c.inbox()), quarantine \(c.quarantined())"
            )
        }
        #expect(c.quarantined().isEmpty, "\(c.quarantined()): \(log(c))")
        #expect(c.stop() == 0)
    }

    /// The worst timing of the twice-copied file: the first copy is closed (the daemon starts
    /// reading it) and a moment later a second writer truncates it and rewrites it slowly, holding
    /// it open. The daemon must not refuse what it read half of, nor move the file under the
    /// writer; it applies the package once the writer closed it.
    @Test func aWriterTruncatesTheFileWhileTheDaemonReadsIt() throws {
        let c = try Client()
        let delays = ["0", "0.005", "0.02", "0.05", "0.1", "0.2"]
        var pkgs: [String] = []
        for i in delays.indices { pkgs.append(try bigPackage(c, i + 1, mib: 16)) }
        try c.start()
        for (k, d) in delays.enumerated() {
            let i = k + 1
            let p = pkgs[k]
            let script = """
                cp \(p) inbox/virus-defs_\(i).cpkg; sleep \(d)
                exec 3>inbox/virus-defs_\(i).cpkg
                size=$(stat -c %s \(p)); chunk=$(( size / 4 + 1 ))
                for j in 0 1 2 3; do dd if=\(p) bs=$chunk skip=$j count=1 status=none >&3; sleep 0.3; done
                exec 3>&-
                """
            #expect(try c.sh(script) == 0)
            #expect(
                waitFor(20) { c.installed() == i && c.inbox().isEmpty },
                "delay \(d): installed \(String(describing: c.installed())), inbox \(c.inbox()), quarantine \(c.quarantined())"
            )
        }
        #expect(c.quarantined().isEmpty, "quarantined: \(c.quarantined()): \(log(c))")
        #expect(c.stop() == 0)
    }
}
