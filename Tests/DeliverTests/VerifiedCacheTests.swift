import CourierCore
import Foundation
import Testing

@testable import CourierDeliver

/// Push's verification cache (`VerifiedCache`, `--verify-cache`): a package verified once is
/// not verified again while it is the same file under the same trust; anything that changes
/// the file or the trust makes push verify again; the checks that depend on the moment run on
/// every hit; the directory must be private.
@Suite(.serialized) struct VerifiedCacheTests {
    /// No minimum age: the packages here are a moment old (`recentPackageIsNotRemembered` tests it).
    func cache(_ f: Fleet) throws -> VerifiedCache { try VerifiedCache(dir: f.root + "/verified", minimumAge: 0) }

    func push(_ f: Fleet, _ inbox: String, cache: VerifiedCache?, now: Int64? = nil, trust: TrustStore? = nil) throws
        -> Pusher.Summary
    {
        for n in f.names(inbox) { try? FileManager.default.removeItem(atPath: inbox + "/" + n) }
        var p = try f.pusher(f.targets([inbox]), types: ["virus-defs"])
        p.verifiedCache = cache
        p.verify.now = now
        if let trust { p.verify.trust = trust }
        return p.run()
    }

    /// The second push of the same package remembers; the copy is still byte for byte; the
    /// record is private (0600) and says what the manifest said.
    @Test func secondPushRemembers() throws {
        let f = Fleet("vcache")
        try f.publish("virus-defs", 1, extra: 200_000)
        let c = try cache(f)
        let ib = f.inbox("a")
        let first = try push(f, ib, cache: c)
        #expect(first.copied == 1 && first.verified == 1 && first.remembered == 0)
        let records = f.names(c.dir)
        #expect(records.count == 1)
        let st = try #require(try Sys.lstat(c.dir + "/" + records[0]))
        #expect(st.st_mode & 0o777 == 0o600)
        let r = try JSONDecoder().decode(
            VerifiedCache.Record.self, from: try #require(f.bytes(c.dir + "/" + records[0])))
        #expect(r.type == "virus-defs" && r.revision == 1 && r.base == nil)
        let second = try push(f, ib, cache: c)
        #expect(second.copied == 1 && second.verified == 0 && second.remembered == 1)
        #expect(f.bytes(ib + "/virus-defs_1.cpkg") == f.bytes(f.fullPath("virus-defs", 1)))
        // Without the cache, it is verified again.
        let third = try push(f, ib, cache: nil)
        #expect(third.verified == 1 && third.remembered == 0)
    }

    /// A byte changed in place (same inode, size and mtime put back): the change time differs,
    /// so push verifies again and refuses it; nothing reaches the inbox.
    @Test func tamperedInPlaceIsVerifiedAgain() throws {
        let f = Fleet("vcache-tamper")
        try f.publish("virus-defs", 1, extra: 200_000)
        let c = try cache(f)
        let ib = f.inbox("a")
        #expect(try push(f, ib, cache: c).remembered == 0)
        let pkg = f.fullPath("virus-defs", 1)
        let before = try #require(try Sys.lstat(pkg))
        let h = try #require(FileHandle(forUpdatingAtPath: pkg))
        let size = Int(before.st_size)
        try h.seek(toOffset: UInt64(size / 2))
        let b = try #require(try h.read(upToCount: 1))
        try h.seek(toOffset: UInt64(size / 2))
        try h.write(contentsOf: Data([b[0] ^ 0x55]))
        try h.close()
        var times = [before.st_atim, before.st_mtim]
        #expect(utimensat(AT_FDCWD, pkg, &times, 0) == 0)
        let after = try #require(try Sys.lstat(pkg))
        #expect(after.st_ino == before.st_ino && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec)
        let s = try push(f, ib, cache: c)
        #expect(s.remembered == 0 && s.failed == 1 && s.copied == 0)
        #expect(f.names(ib).isEmpty)
    }

    /// Another package renamed over the path (a new inode): verified, and its manifest found
    /// not to be what the path says.
    @Test func replacedFileIsVerifiedAgain() throws {
        let f = Fleet("vcache-replace")
        try f.publish("virus-defs", 1, extra: 100_000)
        try f.publish("virus-defs", 2, extra: 100_000)
        let c = try cache(f)
        let ib = f.inbox("a")
        var p = try f.pusher(f.targets([ib]), types: ["virus-defs"])
        p.defaultSpec = .named(1)
        p.verifiedCache = c
        #expect(p.run().copied == 1)
        #expect(f.names(ib) == ["virus-defs_1.cpkg"])
        for n in f.names(ib) { try FileManager.default.removeItem(atPath: ib + "/" + n) }
        let one = f.fullPath("virus-defs", 1)
        try FileManager.default.copyItem(atPath: f.fullPath("virus-defs", 2), toPath: one + ".new")
        #expect(rename(one + ".new", one) == 0)
        let s = p.run()
        #expect(s.remembered == 0 && s.verified == 1 && s.failed == 1)
        let why = s.outcomes.first?.error ?? ""
        #expect(why.contains("its manifest says revision 2"), "\(why)")
        #expect(f.names(ib).isEmpty)
    }

    /// A remembered package that has since expired is refused as verification would refuse it;
    /// another trust store does not use the record.
    @Test func expiryAndTrustCheckedOnEveryHit() throws {
        let f = Fleet("vcache-expiry")
        try f.publish("virus-defs", 1)
        let c = try cache(f)
        let ib = f.inbox("a")
        #expect(try push(f, ib, cache: c).verified == 1)
        let later = Int64(time(nil)) + 400 * 86400
        let s = try push(f, ib, cache: c, now: later)
        #expect(s.failed == 1 && s.copied == 0)
        let why = s.outcomes.first?.error ?? ""
        #expect(why.contains("expired"), "\(why)")
        let other = TrustStore(keys: [f.key.publicKey, SigningKey().publicKey])
        let t = try push(f, ib, cache: c, trust: other)
        #expect(t.verified == 1 && t.remembered == 0 && t.copied == 1)
        #expect(f.names(c.dir).count == 2)
    }

    /// A package written to while it was being verified is not remembered: `remember` compares
    /// the file's identity (ctime among it) with the one taken before verification.
    @Test func changedDuringVerificationIsNotRemembered() throws {
        let f = Fleet("vcache-race")
        try f.publish("virus-defs", 1)
        let c = try cache(f)
        let pkg = f.fullPath("virus-defs", 1)
        let fd = open(pkg, O_RDWR | O_CLOEXEC)
        #expect(fd >= 0)
        defer { close(fd) }
        var o = VerifyOptions(trust: f.trust, limits: Limits())
        o.expectedType = "virus-defs"
        let before = c.identity(fd: fd, path: pkg)
        let m = try PackageVerifier.verify(path: pkg, options: o, sameFileAs: fd).manifest
        // Same byte written back, a clock tick later: the content is unchanged, the ctime is not.
        usleep(20_000)
        var b: UInt8 = 0
        #expect(pread(fd, &b, 1, 100) == 1 && pwrite(fd, &b, 1, 100) == 1)
        c.remember(fd: fd, path: pkg, before: before, options: o, manifest: m)
        #expect(f.names(c.dir).isEmpty)
        // Unchanged since its identity was taken: remembered.
        let now = c.identity(fd: fd, path: pkg)
        c.remember(fd: fd, path: pkg, before: now, options: o, manifest: m)
        #expect(f.names(c.dir).count == 1)
    }

    /// A package changed within the last `minimumAge` seconds is verified but not remembered.
    @Test func recentPackageIsNotRemembered() throws {
        let f = Fleet("vcache-recent")
        try f.publish("virus-defs", 1)
        let c = try VerifiedCache(dir: f.root + "/verified", minimumAge: 3600)
        let ib = f.inbox("a")
        #expect(try push(f, ib, cache: c).verified == 1)
        #expect(f.names(c.dir).isEmpty)
        #expect(try push(f, ib, cache: c).remembered == 0)
    }

    /// The directory: created 0700; refused when others may write it, when it is a symlink, or
    /// (as root) when another user owns it.
    @Test func directoryMustBePrivate() throws {
        let f = Fleet("vcache-dir")
        let c = try cache(f)
        #expect(try #require(try Sys.lstat(c.dir)).st_mode & 0o777 == 0o700)
        #expect(chmod(c.dir, 0o777) == 0)
        #expect(throws: CourierError.self) { try VerifiedCache(dir: c.dir) }
        #expect(chmod(c.dir, 0o700) == 0)
        #expect(symlink(c.dir, f.root + "/link") == 0)
        #expect(throws: CourierError.self) { try VerifiedCache(dir: f.root + "/link") }
        if geteuid() == 0 {
            #expect(chown(c.dir, 65534, 65534) == 0)
            #expect(throws: CourierError.self) { try VerifiedCache(dir: c.dir) }
        }
    }

    /// Pruning: records unused for two weeks go, temporaries of dead writes go after an hour,
    /// and beyond the cap the least recently used go first.
    @Test func pruning() throws {
        let f = Fleet("vcache-prune")
        let c = try cache(f)
        let now = Int64(time(nil))
        func record(_ i: Int, age: Int64) {
            let name = Hex.sha256(Array("\(i)".utf8))
            #expect(FileManager.default.createFile(atPath: c.dir + "/" + name, contents: Data("{}".utf8)))
            var t = [timespec(tv_sec: Int(now - age), tv_nsec: 0), timespec(tv_sec: Int(now - age), tv_nsec: 0)]
            _ = utimensat(AT_FDCWD, c.dir + "/" + name, &t, 0)
        }
        record(0, age: 15 * 86400)
        for i in 1...5 { record(i, age: Int64(i) * 60) }
        #expect(FileManager.default.createFile(atPath: c.dir + "/.x.tmp-1", contents: Data()))
        var old = [timespec(tv_sec: Int(now - 7200), tv_nsec: 0), timespec(tv_sec: Int(now - 7200), tv_nsec: 0)]
        _ = utimensat(AT_FDCWD, c.dir + "/.x.tmp-1", &old, 0)
        #expect(FileManager.default.createFile(atPath: c.dir + "/unrelated", contents: Data()))
        #expect(c.prune(now: now, maxRecords: 3) == 1 + 1 + 2)
        let left = Set(f.names(c.dir))
        #expect(left == Set([1, 2, 3].map { Hex.sha256(Array("\($0)".utf8)) } + ["unrelated"]))
    }
}
