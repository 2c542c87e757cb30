import CourierCore
import Foundation
import Testing

@testable import CourierDeliver

@Suite(.serialized) struct PushTests {
    /// 1,000 inboxes: a third new, a third holding the delta's base, a third up to date. Every
    /// inbox gets exactly what the rules say, byte for byte, mode 0644, no temporary left; and a
    /// second push copies nothing.
    @Test func thousandInboxesDeltaFullAndIdempotence() throws {
        let f = Fleet("thousand")
        try f.publish("virus-defs", 1)
        try f.publish("virus-defs", 2, bases: [1])
        var inboxes: [String] = []
        for i in 0..<1000 {
            let ib = f.inbox(String(format: "c%04d", i))
            inboxes.append(ib)
            switch i % 3 {
            case 0: break
            case 1: try f.writeStatus(ib, installed: ["virus-defs": 1])
            default: try f.writeStatus(ib, installed: ["virus-defs": 2])
            }
        }
        var p = try f.pusher(f.targets([f.root + "/clients/*/inbox"]), types: ["virus-defs"])
        p.jobs = 8
        let s = p.run()
        #expect(s.failed == 0)
        #expect(s.copied == 667)
        let full = f.bytes(f.fullPath("virus-defs", 2))!
        let delta = f.bytes(f.deltaPath("virus-defs", 2, from: 1))!
        for (i, ib) in inboxes.enumerated() {
            let names = f.names(ib)
            switch i % 3 {
            case 0:
                #expect(names == ["virus-defs_2.cpkg"], "\(ib)")
                #expect(f.bytes(ib + "/virus-defs_2.cpkg") == full)
            case 1:
                #expect(names == ["virus-defs_2_from_1.cpkg"], "\(ib)")
                #expect(f.bytes(ib + "/virus-defs_2_from_1.cpkg") == delta)
            default:
                #expect(names.isEmpty, "\(ib)")
            }
            if let n = names.first {
                let attrs = try FileManager.default.attributesOfItem(atPath: ib + "/" + n)
                #expect((attrs[.posixPermissions] as! NSNumber).intValue == 0o644)
            }
        }
        // Second push: everything is up to date or already waiting.
        let again = p.run()
        #expect(again.copied == 0 && again.failed == 0)
        #expect(again.outcomes.filter { $0.decision?.code == "waiting" }.count == 667)
    }

    /// Missing, read-only, full and immutable targets are reported; the others still get theirs.
    @Test func failingTargetsAreReportedAndOthersSucceed() throws {
        let f = Fleet("failing")
        try f.publish("virus-defs", 1, extra: 256 << 10)
        let good1 = f.inbox("good1")
        let good2 = f.inbox("good2")
        let ro = f.inbox("ro")
        let full = f.inbox("full")
        let imm = f.inbox("immutable")
        let missing = f.root + "/clients/gone/inbox"
        #expect(sh(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", ro]), "mount a read-only tmpfs")
        defer { sh(["umount", ro]) }
        #expect(sh(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", full]), "mount a tiny tmpfs")
        defer { sh(["umount", full]) }
        #expect(sh(["chattr", "+i", imm]), "make a directory immutable")
        defer { sh(["chattr", "-i", imm]) }

        var p = try f.pusher(f.targets([good1, ro, missing, full, imm, good2]), types: ["virus-defs"])
        p.jobs = 3
        let s = p.run()
        let byInbox = Dictionary(grouping: s.outcomes, by: \.inbox)
        #expect(byInbox[good1]!.first!.state == .copied)
        #expect(byInbox[good2]!.first!.state == .copied)
        for (bad, word) in [(ro, "Read-only"), (missing, "missing"), (full, "space"), (imm, "not permitted")] {
            let o = byInbox[bad]!.first!
            #expect(o.state == .failed, "\(bad)")
            #expect(o.error?.contains(word) == true, "\(bad): \(o.error ?? "")")
            #expect(f.names(bad).isEmpty, "nothing, not even a temporary, in \(bad)")
        }
        #expect(s.failed == 4)
        // The full one fails when its blocks are reserved, before a byte is written.
        let why = byInbox[full]!.first!.error ?? ""
        #expect(why.contains("reserve") && why.contains("No space left"), "\(why)")
    }

    /// A package that fails verification in the outbox is never copied anywhere.
    @Test func tamperedPackageIsNeverCopied() throws {
        let f = Fleet("tampered")
        try f.publish("virus-defs", 1)
        let pkg = f.fullPath("virus-defs", 1)
        var b = [UInt8](f.bytes(pkg)!)
        b[b.count - 600] ^= 0x55
        try Data(b).write(to: URL(fileURLWithPath: pkg))
        let a = f.inbox("a")
        let c = f.inbox("b")
        let s = try f.pusher(f.targets([a, c]), types: ["virus-defs"]).run()
        #expect(s.failed == 2 && s.copied == 0)
        #expect(s.outcomes.allSatisfy { $0.error?.contains("failed verification") == true })
        #expect(f.names(a).isEmpty && f.names(c).isEmpty)
    }

    /// Signed by a key the clients do not trust: refused before the first copy.
    @Test func untrustedPackageIsNeverCopied() throws {
        let f = Fleet("untrusted")
        try f.publish("virus-defs", 1)
        let a = f.inbox("a")
        var p = try f.pusher(f.targets([a]), types: ["virus-defs"])
        p.verify = VerifyOptions(trust: TrustStore(keys: [SigningKey().publicKey]), limits: Limits())
        let s = p.run()
        #expect(s.failed == 1 && f.names(a).isEmpty)
    }

    /// Leftovers of a dead push are removed; a live push's temporary is not.
    @Test func leftoversOfDeadPushesAreCleaned() throws {
        let f = Fleet("leftovers")
        try f.publish("virus-defs", 1)
        let a = f.inbox("a")
        let host = InboxCopier.shortHost
        // pid 2^22+1 is beyond pid_max's default: certainly not running.
        let dead = ".courier-push.4194305@\(host).virus-defs_1.cpkg"
        let live = ".courier-push.\(getppid())@\(host).virus-defs_1.cpkg"
        let old = ".courier-push.77@otherhost.virus-defs_1.cpkg"
        for n in [dead, live, old] { FileManager.default.createFile(atPath: a + "/" + n, contents: Data("half".utf8)) }
        // The other host's file is old: two hours.
        var times = [timespec(tv_sec: time(nil) - 7200, tv_nsec: 0), timespec(tv_sec: time(nil) - 7200, tv_nsec: 0)]
        utimensat(AT_FDCWD, a + "/" + old, &times, 0)
        let s = try f.pusher(f.targets([a]), types: ["virus-defs"]).run()
        #expect(Set(s.outcomes.flatMap(\.cleaned)) == [dead, old])
        #expect(f.names(a) == [live, "virus-defs_1.cpkg"].sorted())
    }

    /// --dry-run plans and copies nothing, and does not clean either.
    @Test func dryRunCopiesNothing() throws {
        let f = Fleet("dry")
        try f.publish("virus-defs", 1)
        let a = f.inbox("a")
        var p = try f.pusher(f.targets([a]), types: ["virus-defs"])
        p.dryRun = true
        let s = p.run()
        #expect(s.outcomes.map(\.state) == [.planned])
        #expect(s.outcomes[0].bytes > 0)
        #expect(f.names(a).isEmpty)
    }

    /// --link: the inbox file is the outbox file (same inode), still renamed into place.
    @Test func hardLinkPath() throws {
        let f = Fleet("link")
        try f.publish("virus-defs", 1)
        let a = f.inbox("a")
        var p = try f.pusher(f.targets([a]), types: ["virus-defs"])
        p.method = .link
        let s = p.run()
        #expect(s.outcomes[0].how == "hard link")
        var s1 = stat()
        var s2 = stat()
        stat(f.fullPath("virus-defs", 1), &s1)
        stat(a + "/virus-defs_1.cpkg", &s2)
        #expect(s1.st_ino == s2.st_ino)
    }

    /// A large package on a local disk goes by direct I/O (written once, from the mapping of the
    /// outbox package), its unaligned tail through the page cache: byte for byte the package.
    /// On tmpfs (no disk) through the cache: copy_file_range, or read/write across file systems.
    @Test func largePackageByDirectIOAndUnalignedTail() throws {
        let f = Fleet("direct")
        try f.publish("virus-defs", 1, extra: (3 << 20) + 1234)
        let pkg = f.fullPath("virus-defs", 1)
        #expect(f.bytes(pkg)!.count % 4096 != 0, "the tail is unaligned")
        let disk = f.inbox("disk")
        let mem = f.inbox("tmpfs")
        #expect(sh(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mem]), "mount a tmpfs")
        defer { sh(["umount", mem]) }
        let s = try f.pusher(f.targets([disk, mem]), types: ["virus-defs"]).run()
        #expect(s.failed == 0 && s.copied == 2)
        let how = Dictionary(uniqueKeysWithValues: s.outcomes.map { ($0.inbox, $0.how ?? "") })
        // The file system type, as stat(1) reads it (statfs f_type, in hex).
        let type = capture(["stat", "-f", "-c", "%t", disk]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        if let t = Int64(type, radix: 16), PackageSource.directFileSystems.contains(t) {
            #expect(how[disk] == "direct I/O")
        } else {
            print("PushTests: \(disk) is on file system type 0x\(type), not a local disk one: direct I/O not expected")
        }
        #expect(["copy_file_range", "read/write"].contains(how[mem]), "\(how[mem] ?? "")")
        for ib in [disk, mem] {
            #expect(f.names(ib) == ["virus-defs_1.cpkg"], "\(ib)")
            #expect(f.bytes(ib + "/virus-defs_1.cpkg") == f.bytes(pkg), "\(ib)")
        }
    }

    /// Verification runs beside the copies: a large package that fails it was already being
    /// copied, and none of those copies may stay, not even as a temporary — with or without
    /// the flushes (`--no-sync` changes when bytes reach the disk, never what gets renamed).
    @Test(arguments: [true, false])
    func largeTamperedPackageLeavesNoTemporary(sync: Bool) throws {
        let f = Fleet("tampered-large-\(sync)")
        try f.publish("virus-defs", 1, extra: 4 << 20)
        let pkg = f.fullPath("virus-defs", 1)
        var b = [UInt8](f.bytes(pkg)!)
        b[b.count / 2] ^= 0x55
        try Data(b).write(to: URL(fileURLWithPath: pkg))
        let inboxes = (0..<6).map { f.inbox("c\($0)") }
        var p = try f.pusher(f.targets(inboxes), types: ["virus-defs"])
        p.sync = sync
        let s = p.run()
        #expect(s.failed == 6 && s.copied == 0)
        #expect(
            s.outcomes.allSatisfy { $0.error?.contains("failed verification") == true },
            "\(s.outcomes.compactMap(\.error))")
        for ib in inboxes { #expect(f.names(ib).isEmpty, "\(ib)") }
    }
}
