import CourierCore
import CourierStage
import Crypto
import Foundation
import Testing

@Suite struct CycleTests {
    func virusTypes(_ w: StageWorkspace, keep: Int = 5, deltas: Int = 3) -> String {
        """
        [types.virus-defs]
        source = "dir"
        path = "upstream/virus-defs"
        keep_revisions = \(keep)
        deltas = \(deltas)
        """
    }

    func publishRevision(_ w: StageWorkspace, _ rev: UInt64, daily: String) {
        w.write("upstream/virus-defs/\(rev)/main.ndb", stableRules)  // large and unchanged: deltas pay
        w.write("upstream/virus-defs/\(rev)/daily.ndb", daily)
    }

    @Test func dirRevisionsPublishDeltasIndexAndRetention() async throws {
        let w = StageWorkspace()
        publishRevision(w, 20_261_120_001, daily: "one\n")
        let cfg = try w.config(virusTypes(w, keep: 2, deltas: 3))

        let r1 = try await run(cfg)
        #expect(r1.exitCode == 0)
        #expect(r1.types[0].status == .published && r1.types[0].revision == 20_261_120_001)
        #expect(r1.types[0].deltas.isEmpty)
        #expect(
            w.listing("outbox") == [
                "index.json", "virus-defs", "virus-defs/20261120001",
                "virus-defs/20261120001/virus-defs_20261120001.cpkg", "virus-defs/latest", "virus-defs/latest.txt",
            ])
        #expect(
            try FileManager.default.destinationOfSymbolicLink(atPath: w.path("outbox/virus-defs/latest"))
                == "20261120001")
        #expect(try String(contentsOfFile: w.path("outbox/virus-defs/latest.txt"), encoding: .utf8) == "20261120001\n")

        // Nothing new: a no-op, and the index is not rewritten.
        let idxBefore = try Data(contentsOf: URL(fileURLWithPath: w.path("outbox/index.json")))
        let r2 = try await run(cfg)
        #expect(r2.exitCode == 0 && r2.types[0].status == .unchanged)
        #expect(try Data(contentsOf: URL(fileURLWithPath: w.path("outbox/index.json"))) == idxBefore)

        publishRevision(w, 20_261_121_001, daily: "two\n")
        let r3 = try await run(cfg)
        #expect(r3.types[0].status == .published && r3.types[0].previous == 20_261_120_001)
        #expect(r3.types[0].deltas.map(\.base) == [20_261_120_001])
        #expect(
            FileManager.default.fileExists(
                atPath: w.path("outbox/virus-defs/20261121001/virus-defs_20261121001_from_20261120001.cpkg")))

        publishRevision(w, 20_261_122_001, daily: "three\n")
        let r4 = try await run(cfg)
        #expect(r4.types[0].deltas.map(\.base) == [20_261_120_001, 20_261_121_001])
        #expect(r4.types[0].removedRevisions == [20_261_120_001])  // keep_revisions = 2
        #expect(try Outbox(root: w.path("outbox")).revisions("virus-defs") == [20_261_121_001, 20_261_122_001])

        let idx = try Outbox(root: w.path("outbox")).readIndex()
        let info = try #require(idx.types["virus-defs"])
        #expect(info.latest == 20_261_122_001)
        #expect(info.revisions.map(\.revision) == [20_261_121_001, 20_261_122_001])
        let pk = info.revisions[1].packages
        #expect(pk.count == 3)
        for p in pk {
            let data = try Data(contentsOf: URL(fileURLWithPath: w.path("outbox/" + p.file)))
            #expect(Int64(data.count) == p.size)
            #expect(sha256Hex(Array(data)) == p.sha256)
        }

        // Every package verifies with the public key, and each delta applied gives the upstream tree.
        let trust = TrustStore(keys: [w.key.publicKey])
        for p in pk {
            _ = try PackageVerifier.verify(
                path: w.path("outbox/" + p.file), options: VerifyOptions(trust: trust, limits: Limits()))
        }
        let base = w.path("client/20261121001")
        try Sys.mkdirs(base)
        try SafeExtractor.extract(
            PackageReader(
                path: w.path("outbox/virus-defs/20261121001/virus-defs_20261121001.cpkg"),
                options: VerifyOptions(trust: trust, limits: Limits())), into: base)
        try DeltaApplier.apply(
            PackageReader(
                path: w.path("outbox/virus-defs/20261122001/virus-defs_20261122001_from_20261121001.cpkg"),
                options: VerifyOptions(trust: trust, limits: Limits())), base: base, to: w.path("client/20261122001"))
        #expect(treeContents(w.path("client/20261122001")) == treeContents(w.path("upstream/virus-defs/20261122001")))
    }

    @Test func snapshotSourceMakesDatedRevisionsOnlyWhenContentChanges() async throws {
        let w = StageWorkspace()
        w.write("import/rules.txt", "alert 1\n")
        w.write("import/community.rules", stableRules)
        let cfg = try w.config(
            """
            [types.feed]
            source = "dir"
            layout = "snapshot"
            path = "import"
            """)
        let day: Int64 = 1_795_305_600  // 2026-11-22T00:00:00Z
        let r1 = try await run(cfg, now: day + 3600)
        #expect(r1.types[0].revision == 20_261_122_001)
        let r2 = try await run(cfg, now: day + 7200)
        #expect(r2.types[0].status == .unchanged && r2.types[0].detail.contains("unchanged since revision 20261122001"))
        w.write("import/rules.txt", "alert 2\n")
        let r3 = try await run(cfg, now: day + 9000)
        #expect(r3.types[0].revision == 20_261_122_002)
        #expect(r3.types[0].deltas.map(\.base) == [20_261_122_001])
        w.write("import/rules.txt", "alert 3\n")
        let r4 = try await run(cfg, now: day + 86400 + 60)  // next day
        #expect(r4.types[0].revision == 20_261_123_001)
    }

    @Test func oneFailingTypeDoesNotStopTheOthers() async throws {
        let w = StageWorkspace()
        publishRevision(w, 5, daily: "x\n")
        let cfg = try w.config(
            virusTypes(w) + """

                [types.broken]
                source = "dir"
                path = "upstream/does-not-exist"
                """)
        let r = try await run(cfg)
        #expect(r.exitCode == 16)
        let byType = Dictionary(uniqueKeysWithValues: r.types.map { ($0.type, $0) })
        #expect(byType["virus-defs"]?.status == .published)
        #expect(byType["broken"]?.status == .failed)
        #expect(byType["broken"]?.detail.contains("source directory does not exist") == true)
        #expect(r.summary().contains("broken: FAILED"))
        // Only the broken type: its own exit code (4, no valid source).
        let only = try await run(cfg, only: ["broken"])
        #expect(only.exitCode == 4)
    }

    @Test func aHeldLockStopsASecondRun() async throws {
        let w = StageWorkspace()
        publishRevision(w, 1, daily: "x\n")
        let cfg = try w.config(virusTypes(w))
        try Sys.mkdirs(w.path("state"))
        let held = try RunLock(path: w.path("state/lock"))
        await expectCourierError(.locked, "pid \(getpid())") { _ = try await run(cfg) }
        withExtendedLifetime(held) {}
        #expect(!FileManager.default.fileExists(atPath: w.path("outbox/virus-defs")))
    }

    @Test func leftoversOfAnInterruptedPublishAreCleaned() async throws {
        let w = StageWorkspace()
        publishRevision(w, 7, daily: "x\n")
        let cfg = try w.config(virusTypes(w))
        w.write("outbox/virus-defs/.staging-7/virus-defs_7.cpkg", "half a package")
        let r = try await run(cfg)
        #expect(r.types[0].status == .published)
        #expect(!w.listing("outbox/virus-defs").contains { $0.hasPrefix(".") })
    }

    /// Key rotation: after the stager switches to a new key, packages signed only by the old one
    /// are still delta bases when `verify_keys` lists the old public key; without it, the run says why.
    @Test func keyRotationWithVerifyKeys() async throws {
        let w = StageWorkspace()
        publishRevision(w, 1, daily: "one\n")
        _ = try await run(try w.config(virusTypes(w)))
        let newKey = SigningKey()
        try newKey.write(to: w.path("new.key"))
        try FileManager.default.copyItem(atPath: w.path("stage.key.pub"), toPath: w.path("old.pub"))
        publishRevision(w, 2, daily: "two\n")
        var cfg = try w.config(virusTypes(w))
        cfg.keys = [w.path("new.key")]
        let failed = try await run(cfg)
        #expect(
            failed.types[0].status == .failed && failed.types[0].detail.contains("no valid signature by a trusted key"))
        cfg.verifyKeys = [w.path("old.pub")]
        let ok = try await run(cfg)
        #expect(ok.types[0].status == .published && ok.types[0].deltas.map(\.base) == [1])
        let delta = w.path("outbox/virus-defs/2/virus-defs_2_from_1.cpkg")
        let v = try PackageVerifier.verify(
            path: delta, options: VerifyOptions(trust: TrustStore(keys: [newKey.publicKey]), limits: Limits()))
        #expect(v.signers == [newKey.keyID])
    }

    @Test func metricsText() async throws {
        let w = StageWorkspace()
        publishRevision(w, 9, daily: "x\n")
        let cfg = try w.config(virusTypes(w))
        let r = try await run(cfg)
        let text = Metrics.text(report: r, lastSuccess: 1_700_000_000, now: 1_700_000_100, latest: ["virus-defs": 9])
        #expect(text.contains("courier_stage_last_success_timestamp_seconds 1700000000"))
        #expect(text.contains("courier_stage_type_revision{type=\"virus-defs\"} 9"))
        #expect(text.contains("courier_stage_type_published{type=\"virus-defs\"} 1"))
        #expect(text.contains("# TYPE courier_stage_errors gauge"))
    }
}

func sha256Hex(_ b: [UInt8]) -> String { Hex.encode(SHA256.hash(data: b)) }
