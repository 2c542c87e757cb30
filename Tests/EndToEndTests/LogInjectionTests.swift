import CourierCore
import Crypto
import Foundation
import Testing

/// Issue #11.1: a signed package whose tar entry name carries a newline and terminal escapes
/// (no key needed to make one: the name is refused, but only after it is read) must not forge a
/// line or reach a terminal raw — in `courier-deliver verify` (what Ansible's `validate:` shows),
/// in the daemon's log, and in `courier-inboxd extract`.
@Suite(.serialized) struct LogInjectionTests {
    static let forged = "2026-01-01T00:00:00Z courier-inboxd[1] info: applied virus-defs 99999999999"

    /// A package signed by `keyPath`'s key with a legitimate manifest, plus one entry whose name
    /// forges a log line and clears the screen.
    static func hostilePackage(_ t: TempDir, keyPath: String) throws -> String {
        let key = try SigningKey.load(keyPath)
        let body = Array("good\n".utf8)
        let now = Int64(Date().timeIntervalSince1970)
        let file = FileEntry(
            path: "a.txt", size: UInt64(body.count), sha256: Hex.encode(SHA256.hash(data: body)), mode: 0o644)
        let m = Manifest(
            type: "virus-defs", revision: 7, kind: .full, created: now - 60, expires: now + 86400,
            provenance: [:], files: [file])
        let path = t.sub("virus-defs_7.cpkg")
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        let w = try ArchiveWriter(fd: fd, display: path)
        let mb = m.encoded()
        try w.writeFile(path: PackageReader.manifestEntry, bytes: mb)
        try w.writeFile(path: PackageReader.signaturesEntry, bytes: SignatureSet.sign(mb, with: [key]).encoded())
        try w.writeFile(path: "payload/a.txt", bytes: body)
        try w.writeFile(path: "payload/x\n" + forged + "\u{1b}[2J\u{1b}]0;owned\u{07}", bytes: body)
        try w.finish()
        return path
    }

    static func clean(_ text: String, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for line in text.split(separator: "\n") {
            #expect(
                !line.hasPrefix("2026-01-01T00:00:00Z"), "\(what): a forged line: \(line)",
                sourceLocation: sourceLocation)
        }
        #expect(
            !text.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || $0.value == 0x7f },
            "\(what): a control character reached the output", sourceLocation: sourceLocation)
    }

    @Test func aHostileEntryNameForgesNoLineAnywhere() throws {
        let c = try InboxdE2ETests.Client()
        let pkg = try Self.hostilePackage(c.t, keyPath: c.t.sub("stage.key"))

        let v = try Programs.run("courier-deliver", ["verify", "--trust", c.t.sub("trust"), pkg])
        #expect(v.status == 10, "\(v.stdout)\(v.stderr)")
        #expect(v.stdout.split(separator: "\n").count == 1, "one line per package: \(v.stdout)")
        #expect(v.stdout.contains("\\n2026-01-01T00:00:00Z"), "the name is shown, escaped: \(v.stdout)")
        Self.clean(v.stdout + v.stderr, "verify")
        let vj = try Programs.run("courier-deliver", ["verify", "--json", "--trust", c.t.sub("trust"), pkg])
        #expect(vj.stdout.split(separator: "\n").count == 1)
        Self.clean(vj.stdout, "verify --json")

        let x = try Programs.run(
            "courier-inboxd", ["extract", "--trust", c.t.sub("trust"), "--into", c.t.sub("x"), pkg])
        #expect(x.status == 10, "\(x.stderr)")
        Self.clean(x.stdout + x.stderr, "extract")

        try FileManager.default.copyItem(atPath: pkg, toPath: c.t.sub("inbox/virus-defs_7.cpkg"))
        let r = try Programs.run(
            "courier-inboxd", ["run", "--once", "--config", c.t.sub("inboxd.toml"), "--log-file", c.logPath])
        #expect(r.status == 16, "\(r.stderr)")
        let log = try String(contentsOfFile: c.logPath, encoding: .utf8)
        #expect(log.contains("refused virus-defs_7.cpkg"), "\(log)")
        Self.clean(log, "daemon log")
        Self.clean(r.stderr, "daemon stderr")
        let st = try Programs.run("courier-inboxd", ["status", "--config", c.t.sub("inboxd.toml")])
        Self.clean(st.stdout + st.stderr, "status")
    }
}
