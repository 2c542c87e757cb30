import Foundation
import Glibc
import Testing

/// How a relay pass copes with a bad revision or package upstream (real stager, real nginx):
/// the newest revision is always mirrored, a delta is left out only for what it is, and only
/// packages checked in the pass are published.
@Suite(.serialized, .enabled(if: Nginx.available, "nginx is not installed")) struct PullRelayE2ETests {
    static let old = "virus-defs/20261120001/virus-defs_20261120001.cpkg"
    static let delta = "virus-defs/20261121001/virus-defs_20261121001_from_20261120001.cpkg"

    /// A world with both fixture revisions published.
    static func twoRevisions() throws -> PullWorld {
        let w = try PullWorld()
        try w.stage("20261120001")
        try w.stage("20261121001")
        return w
    }

    static func flipByte(_ path: String) throws {
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0x55
        try bytes.write(to: URL(fileURLWithPath: path))
    }

    @Test func aCorruptOlderRevisionDoesNotHoldBackTheLatest() throws {
        let w = try Self.twoRevisions()
        try Self.flipByte(w.outbox + "/" + Self.old)
        let nginx = try Nginx(root: w.outbox, dir: w.t.sub("nginx"))
        defer { nginx.stop() }
        let m = try Programs.run(
            "courier-pull", ["mirror", "--config", w.relay("relay", upstream: [nginx.url]), "--json"])
        // The only type failed (for its old revision): its own code, 11 (integrity).
        #expect(m.status == 11, "\(m.status) \(m.stderr)")
        #expect(
            m.stdout.contains("\"added\":[20261121001]") && m.stdout.contains("revision 20261120001"), "\(m.stdout)")
        let mirror = w.t.sub("relay/mirror")
        #expect(
            (try? FileManager.default.destinationOfSymbolicLink(atPath: mirror + "/virus-defs/latest")) == "20261121001"
        )
        #expect(!FileManager.default.fileExists(atPath: mirror + "/virus-defs/20261120001"))
        #expect(PullWorld.visiblePackages(mirror).contains("virus-defs/20261121001/virus-defs_20261121001.cpkg"))
        try w.checkServedTreeIsComplete(mirror)
    }

    @Test func aMissingDeltaIsLeftOutAndAStrayStagedPackageIsNotPublished() throws {
        let w = try Self.twoRevisions()
        try FileManager.default.removeItem(atPath: w.outbox + "/" + Self.delta)
        let nginx = try Nginx(root: w.outbox, dir: w.t.sub("nginx"))
        defer { nginx.stop() }
        // A package-named file in the staging of a wanted revision that no index entry names
        // (another pass's, or planted): it must not be renamed into sight unchecked.
        let stray = w.t.sub("relay/mirror/virus-defs/.staging-20261121001/virus-defs_20261121001_from_20261119001.cpkg")
        try FileManager.default.createDirectory(
            atPath: (stray as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: stray, contents: Data("not a package".utf8))
        let m = try Programs.run(
            "courier-pull", ["mirror", "--config", w.relay("relay", upstream: [nginx.url]), "--json"])
        // The delta 404s: content, not transfer — left out, clients take the full package.
        #expect(m.status == 0, "\(m.status) \(m.stderr)")
        #expect(m.stdout.contains("\"added\":[20261120001,20261121001]"), "\(m.stdout)")
        let mirror = w.t.sub("relay/mirror")
        #expect(
            PullWorld.visiblePackages(mirror) == [Self.old, "virus-defs/20261121001/virus-defs_20261121001.cpkg"],
            "\(PullWorld.visiblePackages(mirror))")
        try w.checkServedTreeIsComplete(mirror)
    }

    /// A log file that is a symlink is refused (O_NOFOLLOW), not followed: its target is untouched.
    @Test func aSymlinkedLogFileIsRefused() throws {
        let w = try PullWorld()
        w.t.write("victim", "untouched\n")
        try FileManager.default.createDirectory(atPath: w.t.sub("relay"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: w.t.sub("relay/relay.log"), withDestinationPath: w.t.sub("victim"))
        let m = try Programs.run(
            "courier-pull",
            [
                "mirror", "--config", w.relay("relay", upstream: ["http://127.0.0.1:1"]),
                "--log-file", w.t.sub("relay/relay.log"),
            ])
        #expect(m.status == 12, "\(m.status) \(m.stderr)")
        #expect(m.stderr.contains(w.t.sub("relay/relay.log")), "\(m.stderr)")
        #expect(try String(contentsOfFile: w.t.sub("victim"), encoding: .utf8) == "untouched\n")
    }
}
