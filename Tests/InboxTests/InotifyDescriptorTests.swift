import CourierCore
import Foundation
import Testing

@testable import CourierInbox

/// `Inotify` owns three descriptors (the inotify instance and the two ends of its wake-up socket
/// pair) and closes them in `stop()`, after the reader thread has returned (#17.1). Checked in
/// /proc/self by identities no other test can share: the sockets' inode numbers, and the watched
/// directory's inode in the inotify descriptor's fdinfo.
@Suite(.serialized) struct InotifyDescriptorTests {
    /// What /proc/self/fd/<n> points at ("socket:[123]", "anon_inode:inotify"), nil when closed.
    func target(_ n: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(n)")
    }

    /// Everything this process has open now.
    func allTargets() -> Set<String> {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return Set(fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0) })
    }

    /// Whether descriptor `n` is an inotify instance watching the inode `ino` (its fdinfo lists
    /// one `inotify wd:… ino:<hex> …` line per watch).
    func watches(_ n: Int32, inode ino: UInt64) -> Bool {
        guard let info = try? String(contentsOfFile: "/proc/self/fdinfo/\(n)", encoding: .utf8) else { return false }
        return info.contains("ino:\(String(ino, radix: 16)) ")
    }

    @Test func stopClosesTheInotifyDescriptorAndBothEndsOfTheWakePair() throws {
        let box = InboxSandbox("fd-stop")
        let ino = try #require(try Sys.lstat(box.inbox)).st_ino
        let inotify = try Inotify()
        try inotify.addWatch(box.inbox, mask: InotifyMask.closeWrite)
        let core = inotify.core
        #expect(target(core.fd) == "anon_inode:inotify")
        #expect(watches(core.fd, inode: UInt64(ino)), "the check must see our watch while it is open")
        let read = try #require(target(core.wakeRead))
        let write = try #require(target(core.wakeWrite))
        #expect(read.hasPrefix("socket:[") && write.hasPrefix("socket:[") && read != write)

        inotify.stop()
        #expect(!inotify.isReaderRunning)
        let open = allTargets()
        #expect(!open.contains(read), "the wake pair's read end is still open after stop()")
        #expect(!open.contains(write), "the wake pair's write end is still open after stop()")
        #expect(!watches(core.fd, inode: UInt64(ino)), "the inotify descriptor is still open after stop()")
        inotify.stop()  // idempotent: closes nothing twice (a second close could hit a reused number)
    }

    @Test func droppingTheLastReferenceClosesThemToo() async throws {
        let box = InboxSandbox("fd-deinit")
        let ino = try #require(try Sys.lstat(box.inbox)).st_ino
        var inotify: Inotify? = try Inotify()
        try inotify!.addWatch(box.inbox, mask: InotifyMask.closeWrite)
        let (fd, readEnd, writeEnd) = (inotify!.core.fd, inotify!.core.wakeRead, inotify!.core.wakeWrite)
        let read = try #require(target(readEnd))
        let write = try #require(target(writeEnd))
        #expect(watches(fd, inode: UInt64(ino)))
        inotify = nil
        let open = allTargets()
        #expect(!open.contains(read) && !open.contains(write), "the wake pair outlived its Inotify")
        #expect(!watches(fd, inode: UInt64(ino)), "the inotify descriptor outlived its Inotify")
    }
}
