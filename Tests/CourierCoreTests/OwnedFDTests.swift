import CourierCore
import Foundation
@preconcurrency import Glibc
import Testing

/// `OwnedFD` is what makes "every descriptor is closed once" a property of the types: these check
/// it really closes at the end of its owner's scope, not earlier and not never, and that `release`
/// and `close(display:)` hand over or close exactly once. Liveness is read from /proc/self/fd.
@Suite struct OwnedFDTests {
    /// The inode /proc/self/fd/<n> points at now, nil when `n` is not open.
    private func target(_ n: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(n)")
    }

    private func tempFile(_ tag: String) throws -> String {
        let path = NSTemporaryDirectory() + "ownedfd-\(tag)-\(getpid())"
        try Data("x".utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func staysOpenForTheWholeScopeAndClosesAtItsEnd() throws {
        let path = try tempFile("scope")
        defer { unlink(path) }
        var n: Int32 = -1
        do {
            let fd = try OwnedFD.open(path, O_RDONLY)
            n = fd.raw
            // Work after the last use of `fd` must still see it open: Swift ends a non-copyable
            // `let` at the end of its scope, not after its last use.
            var b: UInt8 = 0
            #expect(Glibc.read(n, &b, 1) == 1)
            #expect(target(n) == path)
        }
        #expect(n >= 0)
        #expect(target(n) != path, "descriptor \(n) is still open after its owner's scope ended")
    }

    @Test func closesWhenAnOpenerThrowsAfterward() throws {
        let path = try tempFile("throw")
        defer { unlink(path) }
        var n: Int32 = -1
        func openThenFail() throws {
            let fd = try OwnedFD.open(path, O_RDONLY)
            n = fd.raw
            throw CourierError(.io, "after open")
        }
        #expect(throws: CourierError.self) { try openThenFail() }
        #expect(n >= 0 && target(n) != path, "an error path leaked descriptor \(n)")
    }

    @Test func releaseHandsTheNumberOnWithoutClosingIt() throws {
        let path = try tempFile("release")
        defer { unlink(path) }
        let n: Int32
        do {
            let fd = try OwnedFD.open(path, O_RDONLY)
            n = fd.release()
        }
        #expect(target(n) == path, "release must not close")
        close(n)
    }

    @Test func explicitCloseClosesOnceAndReportsNothingOnSuccess() throws {
        let path = try tempFile("close")
        defer { unlink(path) }
        let fd = try OwnedFD.open(path, O_RDONLY)
        let n = fd.raw
        try fd.close(display: path)
        #expect(target(n) != path)
    }

    @Test func openersNameTheFileWhenTheyFail() throws {
        let missing = NSTemporaryDirectory() + "ownedfd-missing-\(getpid())/x"
        let e = #expect(throws: CourierError.self) { _ = try OwnedFD.open(missing, O_RDONLY) }
        #expect(e?.message.contains(missing) == true, "\(String(describing: e))")
        let d = try OwnedFD.openDirectory("/")
        #expect(throws: CourierError.self) { _ = try OwnedFD.openDirectory(at: d.raw, "no-such-dir-here") }
    }
}
