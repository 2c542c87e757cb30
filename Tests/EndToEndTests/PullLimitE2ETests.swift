import Foundation
import Glibc
import Testing

/// The download caps of pull and the relay, against a real nginx: an `index.json` is stopped at
/// 64 MiB (not at `http.max_bytes`, 2 GiB), and a package at the size its index entry gives.
@Suite(.serialized, .enabled(if: Nginx.available, "nginx is not installed")) struct PullLimitE2ETests {
    /// Bytes under `dir`, files only (what a refused download left on disk).
    static func bytesUnder(_ dir: String) -> Int64 {
        var total: Int64 = 0
        guard let e = FileManager.default.enumerator(atPath: dir) else { return 0 }
        while let p = e.nextObject() as? String {
            let a = try? FileManager.default.attributesOfItem(atPath: dir + "/" + p)
            if a?[.type] as? FileAttributeType == .typeRegular { total += (a?[.size] as? NSNumber)?.int64Value ?? 0 }
        }
        return total
    }

    @Test func anIndexOverSixtyFourMiBIsRefusedAtDownload() throws {
        let w = try PullWorld()
        let served = w.t.sub("huge")
        try FileManager.default.createDirectory(atPath: served, withIntermediateDirectories: true)
        // A valid JSON object padded with spaces to one byte over the cap.
        let head = Array("{\"format\":1,\"types\":{}}".utf8)
        var body = [UInt8](repeating: 0x20, count: (64 << 20) + 1)
        body.replaceSubrange(0..<head.count, with: head)
        FileManager.default.createFile(atPath: served + "/index.json", contents: Data(body))
        let nginx = try Nginx(root: served, dir: w.t.sub("nginx"))
        defer { nginx.stop() }
        let relayConf = w.relay("relay", upstream: [nginx.url])
        let r = try Programs.run("courier-pull", ["mirror", "--config", relayConf])
        #expect(r.status == 10, "\(r.status) \(r.stderr)")
        // Stopped at the announced length, before any body byte: not read whole and refused after.
        #expect(
            r.stderr.contains("announces \((64 << 20) + 1) bytes, more than the limit of \(64 << 20)"), "\(r.stderr)")
        #expect(Self.bytesUnder(w.t.sub("relay/state")) < 1 << 20, "the refused index was written to disk")
        #expect(!FileManager.default.fileExists(atPath: w.t.sub("relay/mirror/index.json")))
        // The client's pull the same way.
        let p = try w.pull(w.client("c1", mirrors: [nginx.url]))
        #expect(p.status == 10, "\(p.status) \(p.stderr)")
        #expect(p.stderr.contains("more than the limit of \(64 << 20)"), "\(p.stderr)")
        #expect(Self.bytesUnder(w.t.sub("c1/state")) < 1 << 20)
    }

    /// A served package longer than its index entry says: stopped at the indexed size (exit 10,
    /// the limit), where it used to be downloaded whole and then refused as an integrity error.
    @Test func aPackageOverItsIndexedSizeIsStopped() throws {
        let w = try PullWorld()
        try w.stage("20261120001")
        let full = w.outbox + "/virus-defs/20261120001/virus-defs_20261120001.cpkg"
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: full)
        let h = try #require(FileHandle(forWritingAtPath: full))
        h.seekToEndOfFile()
        h.write(Data(repeating: 0x41, count: 3 << 20))
        h.closeFile()
        let nginx = try Nginx(root: w.outbox, dir: w.t.sub("nginx"))
        defer { nginx.stop() }
        let relayConf = w.relay("relay", upstream: [nginx.url])
        let r = try Programs.run("courier-pull", ["mirror", "--config", relayConf])
        #expect(r.status == 10, "\(r.status) \(r.stderr)")
        #expect(r.stderr.contains("more than the limit of"), "\(r.stderr)")
        #expect(PullWorld.visiblePackages(w.t.sub("relay/mirror")).isEmpty)
        #expect(Self.bytesUnder(w.t.sub("relay/mirror")) < 1 << 20, "the oversized package was written")
    }
}
