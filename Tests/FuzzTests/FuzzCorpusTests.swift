import CourierCore
import CourierFuzzing
import Foundation
import Testing

/// Every input in `Fixtures/fuzz/<target>/` run through its fuzz target — seeds (`ok-*`, which
/// must be accepted), hand-written hostile inputs (`bad-*`, which must be refused) and whatever
/// libFuzzer ever found (`crash-*`, `oom-*`, `timeout-*`, kept after the fix) — none may trap or
/// throw anything but a `CourierError`. The seeds made now must be accepted too (FuzzSeeds).
@Suite struct FuzzCorpusTests {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path + "/Fixtures/fuzz"
    }()

    static func corpus(_ target: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root + "/" + target)) ?? []).filter {
            !$0.hasPrefix(".")
        }.sorted()
    }

    @Test func everyCorpusDirectoryNamesATarget() throws {
        let dirs = try FileManager.default.contentsOfDirectory(atPath: Self.root).filter {
            !$0.hasPrefix(".") && $0 != "README.md"
        }
        for d in dirs { #expect(FuzzTargets.named(d) != nil, "Fixtures/fuzz/\(d) is not a fuzz target") }
        // Every target has a corpus to start from.
        for t in FuzzTargets.all { #expect(!Self.corpus(t.name).isEmpty, "no corpus for \(t.name)") }
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func theCorpusReplays(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        for file in Self.corpus(name) {
            let bytes = try #require(FileManager.default.contents(atPath: "\(Self.root)/\(name)/\(file)")).map { $0 }
            let outcome = target.outcome(bytes)
            if case .unexpected = outcome { Issue.record("\(name)/\(file): \(outcome)") }
            if file.hasPrefix("ok-") { #expect(outcome == .accepted, "\(name)/\(file): \(outcome)") }
            if file.hasPrefix("bad-") { #expect(outcome != .accepted, "\(name)/\(file): accepted") }
        }
    }

    /// Also `make fuzz-seeds`: with COURIER_WRITE_FUZZ_SEEDS=1 the fresh seeds are written
    /// into Fixtures/fuzz/<target>/ (replacing the committed ones of the same name).
    @Test func freshSeedsAreAccepted() throws {
        let seeds = try FuzzSeeds.make()
        #expect(Set(seeds.map(\.target)).count >= 6)
        for s in seeds {
            let target = try #require(FuzzTargets.named(s.target))
            #expect(target.outcome(s.bytes) == .accepted, "\(s.target)/\(s.name): \(target.outcome(s.bytes))")
        }
        if ProcessInfo.processInfo.environment["COURIER_WRITE_FUZZ_SEEDS"] == "1" {
            for s in seeds {
                let dir = "\(Self.root)/\(s.target)"
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                try Data(s.bytes).write(to: URL(fileURLWithPath: "\(dir)/\(s.name)"))
            }
        }
    }

    @Test func aBrokenSeedIsRefusedNotCrashed() throws {
        // The checks can fail: a byte changed where it is signed is refused — in a package's
        // middle (payload or manifest: hashes or signature), in the base64 of a vendor
        // signature's last line. (Not a patch: PatchCodec decodes; the result's hash is checked
        // by PatchApplier, as FORMAT §3.5 says.)
        var tried = 0
        for s in try FuzzSeeds.make() {
            var b = s.bytes
            switch s.target {
            case "package": b[b.count / 2] ^= 0x5a
            case "vendor-minisign", "vendor-signify": b[b.count - 6] = b[b.count - 6] == 0x41 ? 0x42 : 0x41
            default: continue
            }
            tried += 1
            let target = try #require(FuzzTargets.named(s.target))
            let outcome = target.outcome(b)
            guard case .refused = outcome else {
                Issue.record("\(s.target)/\(s.name) with a changed byte: \(outcome)")
                continue
            }
        }
        #expect(tried == 6)
    }
}
