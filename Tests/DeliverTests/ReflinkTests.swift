import CourierCore
import Foundation
import Testing

@testable import CourierDeliver

/// Push onto a file system that clones (XFS, reflink on by default in mkfs.xfs ≥ 5.1): every copy
/// must be a clone of the outbox package — the same physical extents, marked shared — not a
/// second set of bytes. Needs root (a loop mount); skipped, with the reason, where that or the
/// XFS tools are missing.
@Suite(.serialized) struct ReflinkTests {
    @Test(.enabled(if: getuid() == 0, "needs root to mount a loop-device XFS image"))
    func pushOntoXFSSharesExtents() throws {
        for tool in ["mkfs.xfs", "xfs_info", "filefrag", "truncate", "mount", "umount"] where !onPath(tool) {
            try skip("\(tool) is not installed (scripts/bootstrap.sh installs xfsprogs and e2fsprogs)")
        }
        let base =
            FileManager.default.temporaryDirectory.path + "/courier-reflink-\(getpid())-\(UUID().uuidString.prefix(8))"
        let image = base + ".img"
        let mnt = base + ".mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: mnt)
            try? FileManager.default.removeItem(atPath: image)
        }
        // 300 MiB: room for the tree and the package (2 × 50 MiB), not for ten real copies.
        for cmd in [["truncate", "-s", "300M", image], ["mkfs.xfs", "-q", image]] {
            let r = capture(cmd)
            if !r.ok { try skip("\(cmd.joined(separator: " ")) failed: \(r.output)") }
        }
        let m = capture(["mount", "-o", "loop", image, mnt])
        if !m.ok { try skip("mount -o loop failed (no loop devices in this container?): \(m.output)") }
        defer { if !capture(["umount", mnt]).ok { _ = capture(["umount", "-l", mnt]) } }
        let info = capture(["xfs_info", mnt])
        if !info.output.contains("reflink=1") {
            try skip("this mkfs.xfs made a file system without reflink: \(info.output)")
        }

        try pushTenCopies(under: mnt)
    }

    /// In a function of its own so that the fleet (and its files) is gone before the unmount.
    func pushTenCopies(under mnt: String) throws {
        let f = Fleet("reflink", under: mnt)
        let mib = 50
        try FileManager.default.createDirectory(atPath: f.tree("virus-defs", 1), withIntermediateDirectories: true)
        #expect(capture(["sh", "-c", "head -c \(mib << 20) /dev/urandom > '\(f.tree("virus-defs", 1))/big.bin'"]).ok)
        try f.publish("virus-defs", 1)
        let pkg = f.fullPath("virus-defs", 1)
        let pkgSize = Int64(f.bytes(pkg)?.count ?? 0)
        #expect(pkgSize > Int64(mib) << 20, "random bytes do not compress")
        let inboxes = (0..<10).map { f.inbox(String(format: "c%02d", $0)) }

        let before = freeBytes(mnt)
        let s = try f.pusher(f.targets(inboxes), types: ["virus-defs"]).run()
        let after = freeBytes(mnt)
        #expect(s.failed == 0 && s.copied == 10, "\(s.outcomes.compactMap(\.error))")
        #expect(s.outcomes.allSatisfy { $0.how == "reflink" }, "methods: \(Set(s.outcomes.compactMap(\.how)))")
        // Ten real copies would need 10 × 50 MiB: more than the whole image. Clones need a little
        // metadata each.
        #expect(before - after < 8 << 20, "free space dropped by \(before - after) bytes for 10 × \(pkgSize)")

        let original = extents(pkg)
        #expect(!original.isEmpty)
        for ib in inboxes {
            let copy = ib + "/virus-defs_1.cpkg"
            #expect(f.bytes(copy) == f.bytes(pkg), "\(copy)")
            let e = extents(copy)
            #expect(
                e.map { $0.physical } == original.map { $0.physical }, "\(copy): physical extents \(e) vs \(original)")
            #expect(e.allSatisfy { $0.shared }, "\(copy): extents not marked shared: \(e)")
        }
    }

    /// `filefrag -v`: (logical start, physical start, length, shared) per extent, in blocks.
    func extents(_ path: String) -> [(logical: Int, physical: Int, length: Int, shared: Bool)] {
        let r = capture(["filefrag", "-v", path])
        var out: [(logical: Int, physical: Int, length: Int, shared: Bool)] = []
        for line in r.output.split(separator: "\n") {
            // "   0:        0..   12799:         24..     12823:  12800:             last,shared,eof"
            let f = line.replacingOccurrences(of: "..", with: " ").replacingOccurrences(of: ":", with: " ")
                .split(separator: " ")
            guard f.count >= 6, Int(f[0]) != nil, let l = Int(f[1]), let p = Int(f[3]), let n = Int(f[5]) else {
                continue
            }
            out.append((l, p, n, line.contains("shared")))
        }
        return out
    }

    func freeBytes(_ path: String) -> Int64 {
        var s = statvfs()
        statvfs(path, &s)
        return Int64(s.f_bavail) * Int64(s.f_frsize)
    }

    func onPath(_ tool: String) -> Bool {
        capture(["sh", "-c", "command -v \(tool)"]).ok
    }

    /// Prints why and ends the test as skipped (cancelled), never as a silent pass.
    func skip(_ why: String) throws -> Never {
        print("ReflinkTests: skipped: \(why)")
        try Test.cancel(Comment(rawValue: why))
    }
}

/// Runs a command; its status and its output (stdout and stderr together).
func capture(_ args: [String]) -> (ok: Bool, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    do { try p.run() } catch { return (false, "\(error)") }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus == 0, String(decoding: data, as: UTF8.self))
}
