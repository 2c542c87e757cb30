import CourierCore
import Foundation
import SystemPackage
import Testing

@testable import CourierInbox

/// The inotify byte parser, fed hand-built buffers laid out as the kernel writes them:
/// `int wd; uint32 mask, cookie, len; char name[len]` in host byte order, names NUL-padded.
@Suite struct ParserTests {
    /// One record, built field by field (not with `InotifyParser.encode`, so the parser is not
    /// checked against itself).
    func record(wd: Int32, mask: UInt32, cookie: UInt32 = 0, name: [UInt8], len: Int) -> [UInt8] {
        var out: [UInt8] = []
        withUnsafeBytes(of: wd) { out += $0 }
        withUnsafeBytes(of: mask) { out += $0 }
        withUnsafeBytes(of: cookie) { out += $0 }
        withUnsafeBytes(of: UInt32(len)) { out += $0 }
        precondition(name.count <= len)
        out += name
        out += [UInt8](repeating: 0, count: len - name.count)
        return out
    }

    @Test func severalEventsWithPadding() {
        var buf: [UInt8] = []
        buf += record(wd: 1, mask: InotifyMask.closeWrite, name: Array("a.cpkg".utf8), len: 16)
        buf += record(
            wd: 1, mask: InotifyMask.movedTo, cookie: 77, name: Array("virus-defs_20261121001.cpkg".utf8), len: 32)
        buf += record(wd: 2, mask: InotifyMask.create | InotifyMask.isDir, name: Array("sub".utf8), len: 16)
        let (events, consumed) = InotifyParser.parse(buf)
        #expect(consumed == buf.count)
        #expect(
            events == [
                InotifyEvent(wd: 1, mask: InotifyMask.closeWrite, name: "a.cpkg"),
                InotifyEvent(wd: 1, mask: InotifyMask.movedTo, cookie: 77, name: "virus-defs_20261121001.cpkg"),
                InotifyEvent(wd: 2, mask: InotifyMask.create | InotifyMask.isDir, name: "sub"),
            ])
        #expect(events[2].has(InotifyMask.isDir))
    }

    @Test func zeroLengthNamesAndOverflow() {
        var buf: [UInt8] = []
        buf += record(wd: 1, mask: InotifyMask.deleteSelf, name: [], len: 0)
        buf += record(wd: -1, mask: InotifyMask.queueOverflow, name: [], len: 0)
        buf += record(wd: 1, mask: InotifyMask.ignored, name: [], len: 0)
        let (events, consumed) = InotifyParser.parse(buf)
        #expect(consumed == 48)
        #expect(events.map(\.wd) == [1, -1, 1])
        #expect(events.map(\.nameBytes) == [[], [], []])
        #expect(events[1].has(InotifyMask.queueOverflow))
        #expect(events[1].name == "")
    }

    @Test func truncatedTailIsNotConsumed() {
        let first = record(wd: 3, mask: InotifyMask.closeWrite, name: Array("x.cpkg".utf8), len: 16)
        let second = record(wd: 3, mask: InotifyMask.movedTo, name: Array("y.cpkg".utf8), len: 16)
        let whole = first + second
        // Every cut inside the second record: in its header, and in its name.
        for cut in first.count..<whole.count {
            let (events, consumed) = InotifyParser.parse(Array(whole[..<cut]))
            #expect(events.map(\.name) == ["x.cpkg"], "cut at \(cut)")
            #expect(consumed == first.count, "cut at \(cut)")
        }
        // Resuming with the tail plus the rest yields the second record.
        let (rest, consumed) = InotifyParser.parse(Array(whole[first.count...]))
        #expect(rest.map(\.name) == ["y.cpkg"])
        #expect(consumed == second.count)
    }

    @Test func emptyAndShortBuffers() {
        #expect(InotifyParser.parse([UInt8]()).consumed == 0)
        #expect(InotifyParser.parse([UInt8](repeating: 0, count: 15)).events.isEmpty)
        // A header claiming a name longer than the buffer: nothing consumed, no crash.
        let bogus = record(wd: 1, mask: 8, name: [], len: 0).dropLast(4) + [0xff, 0xff, 0xff, 0xff]
        #expect(InotifyParser.parse(Array(bogus)).consumed == 0)
    }

    @Test func nameFillingLenWithoutNULAndNonUTF8() {
        let exact = record(wd: 1, mask: InotifyMask.closeWrite, name: Array("abcdefghijklmnop".utf8), len: 16)
        let latin1 = record(
            wd: 1, mask: InotifyMask.closeWrite, name: [0x63, 0x61, 0x66, 0xe9, 0x2e, 0x63, 0x70, 0x6b, 0x67], len: 16)
        let (events, consumed) = InotifyParser.parse(exact + latin1)
        #expect(consumed == 64)
        #expect(events[0].name == "abcdefghijklmnop")
        #expect(events[1].name == nil)  // "caf\xe9.cpkg": bytes kept, no lossy String
        #expect(events[1].nameBytes.count == 9)
        #expect(!InboxNames.isCandidate(bytes: events[1].nameBytes))
    }

    @Test func parsesFromAnUnalignedOffset() {
        // Records after an odd-length prefix: the parser must not assume alignment.
        let rec = record(wd: 9, mask: InotifyMask.movedTo, cookie: 5, name: Array("z.cpkg".utf8), len: 16)
        let padded = [0x42] + rec
        padded.withUnsafeBytes { raw in
            let (events, consumed) = InotifyParser.parse(UnsafeRawBufferPointer(rebasing: raw[1...]))
            #expect(consumed == rec.count)
            #expect(events == [InotifyEvent(wd: 9, mask: InotifyMask.movedTo, cookie: 5, name: "z.cpkg")])
        }
    }

    @Test func encodeRoundTrips() {
        let events = [
            InotifyEvent(wd: 1, mask: InotifyMask.closeWrite, name: "a.cpkg"),
            InotifyEvent(wd: -1, mask: InotifyMask.queueOverflow),
            InotifyEvent(wd: 4, mask: InotifyMask.movedTo, cookie: 9, name: String(repeating: "n", count: 255)),
        ]
        let bytes = events.flatMap { InotifyParser.encode($0) }
        #expect(bytes.count % 4 == 0)
        let (back, consumed) = InotifyParser.parse(bytes)
        #expect(back == events)
        #expect(consumed == bytes.count)
    }

    /// The mask constants match the C header's (they are spelled out in Swift on purpose).
    @Test func maskConstantsMatchGlibc() {
        #expect(InotifyMask.closeWrite == UInt32(IN_CLOSE_WRITE))
        #expect(InotifyMask.movedTo == UInt32(IN_MOVED_TO))
        #expect(InotifyMask.create == UInt32(IN_CREATE))
        #expect(InotifyMask.deleteSelf == UInt32(IN_DELETE_SELF))
        #expect(InotifyMask.moveSelf == UInt32(IN_MOVE_SELF))
        #expect(InotifyMask.unmount == UInt32(IN_UNMOUNT))
        #expect(InotifyMask.queueOverflow == UInt32(IN_Q_OVERFLOW))
        #expect(InotifyMask.ignored == UInt32(IN_IGNORED))
        #expect(InotifyMask.onlyDir == UInt32(IN_ONLYDIR))
        #expect(InotifyMask.isDir == UInt32(bitPattern: IN_ISDIR))
        #expect(InotifyParser.headerSize == MemoryLayout<inotify_event>.size)
    }

    @Test func candidateNames() {
        for ok in [
            "virus-defs_20261121001.cpkg", "ips_rules_7_from_6.cpkg", "a.cpkg", "x y.cpkg", "é.cpkg",
            String(repeating: "a", count: 250) + ".cpkg",
        ] {
            #expect(InboxNames.isCandidate(ok), "\(ok)")
        }
        for bad in [
            "", ".cpkg", ".virus-defs_1.cpkg.XyZ12a", ".virus-defs_1.cpkg", ".ansible_tmpk2j3_virus-defs_1.cpkg",
            "virus-defs_1.cpkg.partial", "virus-defs_1.cpkg.part", "virus-defs_1.cpkg.tmp", "virus-defs_1.tmp",
            "virus-defs_1.cpkg~", "virus-defs_1.cpkg.swp", ".virus-defs_1.cpkg.swp", "virus-defs_1.CPKG",
            "virus-defs_1.tar", "notes.txt", "a/b.cpkg", "a\nb.cpkg", "a\u{0}b.cpkg", "a\u{7f}.cpkg",
            String(repeating: "a", count: 251) + ".cpkg",
        ] {
            #expect(!InboxNames.isCandidate(bad), "\(bad)")
        }
    }

    @Test func signalDescriptions() {
        #expect(WatchSignal.file("a.cpkg").description == "file 'a.cpkg'")
        #expect(WatchSignal.rescan("start-up").description == "rescan (start-up)")
    }
}

/// The operator-facing explanations of inotify's limit errors (the sysctl itself is never changed
/// by the tests; the function that words the errno is tested instead).
@Suite struct LimitMessageTests {
    @Test func enospcFromAddWatchNamesTheSysctlAndThePollFallback() throws {
        let m = try #require(
            InotifyLimits.explanation(
                errno: .noSpace, call: .addWatch,
                path: "/var/lib/courier/inbox", currentLimit: 8192))
        #expect(m.hasPrefix("/var/lib/courier/inbox: cannot watch"))
        #expect(m.contains("fs.inotify.max_user_watches = 8192"))
        #expect(m.contains("the disk is not full"))
        #expect(m.contains("sysctl -w fs.inotify.max_user_watches="))
        #expect(m.contains("/etc/sysctl.d/"))
        #expect(m.contains("--poll SECONDS"))
    }

    @Test func enospcWithoutAReadableLimit() throws {
        let m = try #require(
            InotifyLimits.explanation(errno: .noSpace, call: .addWatch, path: "/in", currentLimit: nil))
        #expect(m.contains("fs.inotify.max_user_watches is shared"))
    }

    @Test func emfileFromInitNamesInstancesAndUlimit() throws {
        let m = try #require(
            InotifyLimits.explanation(errno: .tooManyOpenFiles, call: .initialize, path: nil, currentLimit: 128))
        #expect(m.hasPrefix("cannot start inotify"))
        #expect(m.contains("fs.inotify.max_user_instances = 128"))
        #expect(m.contains("ulimit -n"))
        #expect(m.contains("sysctl -w fs.inotify.max_user_instances="))
        #expect(m.contains("--poll SECONDS"))
    }

    @Test func otherErrnosAreNotLimits() {
        #expect(
            InotifyLimits.explanation(errno: .noSuchFileOrDirectory, call: .addWatch, path: "/x", currentLimit: nil)
                == nil)
        #expect(
            InotifyLimits.explanation(errno: .permissionDenied, call: .addWatch, path: "/x", currentLimit: nil) == nil)
        // ENOSPC means the watch limit only for add_watch; EMFILE the instance limit only for init.
        #expect(
            InotifyLimits.explanation(errno: .tooManyOpenFiles, call: .addWatch, path: "/x", currentLimit: nil) == nil)
        #expect(InotifyLimits.explanation(errno: .noSpace, call: .initialize, path: nil, currentLimit: nil) == nil)
    }

    @Test func readsTheCurrentLimitFromProc() {
        // Present on any Linux with inotify; the value is whatever this machine has.
        if FileManager.default.fileExists(atPath: InotifyLimits.maxUserWatchesPath) {
            let v = InotifyLimits.readLimit(for: .noSpace, call: .addWatch)
            #expect((v ?? 0) > 0)
        }
        #expect(InotifyLimits.readLimit(for: .noSpace, call: .initialize) == nil)
    }

    /// The wrapper turns a failing add_watch into a `.daemon` error that keeps errno.
    @Test func addWatchFailureKeepsErrno() throws {
        let inotify = try Inotify()
        defer { inotify.stop() }
        let error = #expect(throws: CourierError.self) {
            try inotify.addWatch("/nonexistent/courier-\(UUID())", mask: InboxWatcher.inboxMask)
        }
        #expect(error?.code == .daemon)
        #expect(error?.cause as? Errno == .noSuchFileOrDirectory)
    }
}
