import Foundation
import Glibc
import Testing

/// The pull copier on a thin link: a 20 MiB incompressible package served by nginx, pulled under
/// `bwlimit`; a pull killed mid-download leaves only dot-names and the next one resumes.
@Suite(.serialized, .enabled(if: Nginx.available, "nginx is not installed")) struct PullThrottleE2ETests {
    static let rev = "20261201001"
    static let name = "virus-defs_20261201001.cpkg"

    /// A stager whose only revision holds 20 MiB of random bytes (zstd cannot shrink them), and
    /// nginx serving its outbox.
    static func bigWorld() throws -> (PullWorld, Nginx) {
        let w = try PullWorld()
        let dir = w.t.sub("up/" + rev)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var rng = SystemRandomNumberGenerator()
        var data = Data(count: 20 << 20)
        data.withUnsafeMutableBytes { p in
            let words = p.bindMemory(to: UInt64.self)
            for i in words.indices { words[i] = rng.next() }
        }
        try data.write(to: URL(fileURLWithPath: dir + "/main.cvd"))
        let r = try Programs.run("courier-stage", ["run", "--config", w.t.sub("stage.toml")])
        #expect(r.status == 0, "\(r.stderr)")
        return (w, try Nginx(root: w.outbox, dir: w.t.sub("nginx")))
    }

    /// 20 MiB at 2 MiB/s: the download takes 10 s ± 15 % (the bucket lets a quarter second of
    /// rate through at once, so about 9.75 s are expected).
    @Test func aCapOf2MiBPerSecondTakesTenSecondsFor20MiB() throws {
        let (w, server) = try Self.bigWorld()
        let pkg = w.outbox + "/virus-defs/\(Self.rev)/\(Self.name)"
        let size = (try FileManager.default.attributesOfItem(atPath: pkg)[.size] as! NSNumber).int64Value
        #expect(size >= 20 << 20, "the package should be incompressible: \(size) bytes")
        let conf = w.client("c1", mirrors: [server.url], extra: "bwlimit = \"2M\"")
        let t0 = Date()
        let r = try w.pull(conf)
        let wall = Date().timeIntervalSince(t0)
        #expect(r.status == 0, "\(r.stderr)")
        let line = typeLines(r.json).first ?? [:]
        let transfer = (line["transfer_seconds"] as? NSNumber)?.doubleValue ?? -1
        let expected = Double(size) / Double(2 << 20)
        print(
            "PULL-THROTTLE size=\(size) transfer=\(String(format: "%.2f", transfer))s wall=\(String(format: "%.2f", wall))s expected=\(String(format: "%.2f", expected))s"
        )
        #expect(transfer >= 8.5 && transfer <= 11.5, "20 MiB at 2 MiB/s took \(transfer) s")
        #expect(wall >= 8.5, "the whole run cannot be faster than its download: \(wall) s")
        #expect(
            FileManager.default.contents(atPath: w.t.sub("c1/inbox/" + Self.name))
                == FileManager.default.contents(atPath: pkg))
        // Without a cap the same pull is much faster (the cap is what made it slow).
        let fast = w.client("c2", mirrors: [server.url])
        let t1 = Date()
        #expect(try w.pull(fast).status == 0)
        #expect(Date().timeIntervalSince(t1) < 6)
    }

    /// Killed (SIGKILL) in the middle of a capped download: no visible file in the inbox, a
    /// dot-named partial with its sidecar; the next pull resumes it (a Range request) and delivers.
    @Test func aKilledPullResumes() throws {
        let (w, server) = try Self.bigWorld()
        let conf = w.client("c1", mirrors: [server.url], extra: "bwlimit = \"4M\"")
        let p = try Programs.start("courier-pull", ["run", "--config", conf, "--no-splay"])
        let inbox = w.t.sub("c1/inbox")
        let partial = inbox + "/." + Self.name + ".part.partial"
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let s = try? FileManager.default.attributesOfItem(atPath: partial)[.size] as? NSNumber,
                s.int64Value > 4 << 20
            {
                break
            }
            usleep(100_000)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let left = try FileManager.default.contentsOfDirectory(atPath: inbox).sorted()
        #expect(left.allSatisfy { $0.hasPrefix(".") }, "\(left)")
        #expect(left.contains("." + Self.name + ".part.partial"), "\(left)")
        let r = try w.pull(w.client("c1", mirrors: [server.url]))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(typeLines(r.json).first?["resumed"] as? Bool == true, "\(r.json)")
        #expect(server.requests(matching: "\" 206 ") == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: inbox) == [Self.name])
        #expect(
            FileManager.default.contents(atPath: inbox + "/" + Self.name)
                == FileManager.default.contents(atPath: w.outbox + "/virus-defs/\(Self.rev)/\(Self.name)"))
    }

    /// A relay killed (SIGKILL from outside) in the middle of a capped download: its mirror shows
    /// nothing new (no visible package, no index entry, no `latest`), the partial sits in the
    /// dot-named staging directory, which nginx refuses; the next pass resumes and completes.
    @Test func aRelayKilledMidDownloadShowsNothingAndResumes() throws {
        let (w, _) = try Self.bigWorld()
        let upstream = try Nginx(root: w.outbox, dir: w.t.sub("nginx-up"))
        let conf = w.relay("relay", upstream: [upstream.url], extra: "bwlimit = \"4M\"")
        let mirror = w.t.sub("relay/mirror")
        let partial = mirror + "/virus-defs/.staging-\(Self.rev)/\(Self.name).partial"
        let p = try Programs.start("courier-pull", ["mirror", "--config", conf])
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let s = try? FileManager.default.attributesOfItem(atPath: partial)[.size] as? NSNumber,
                s.int64Value > 4 << 20
            {
                break
            }
            usleep(100_000)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(FileManager.default.fileExists(atPath: partial))
        #expect(PullWorld.visiblePackages(mirror).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: mirror + "/index.json"))
        #expect(!FileManager.default.fileExists(atPath: mirror + "/virus-defs/latest"))
        let served = try Nginx(root: mirror, dir: w.t.sub("nginx-relay"))
        #expect(try served.status("/virus-defs/.staging-\(Self.rev)/\(Self.name).partial") == "404")
        #expect(try served.status("/index.json") == "404")

        let again = try Programs.run("courier-pull", ["mirror", "--config", conf, "--bwlimit", "1G", "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(upstream.requests(matching: "\" 206 ") == 1, "the second pass resumed with a Range request")
        try w.checkServedTreeIsComplete(mirror)
        #expect(PullWorld.visiblePackages(mirror) == ["virus-defs/\(Self.rev)/\(Self.name)"])
        #expect(try served.status("/virus-defs/\(Self.rev)/\(Self.name)") == "200")
    }
}
