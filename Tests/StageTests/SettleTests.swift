import CourierCore
import CourierStage
import Foundation
import Testing

/// Issue #12.4: a `dir` source is staged only once it is finished — settled for `settle`, or
/// marked by `ready_file` — and "still being written" is not an error.
@Suite struct SettleTests {
    @Test func aSnapshotBeingWrittenIsNotStagedUntilSettled() async throws {
        let w = StageWorkspace()
        let cfg = try w.config(
            """
            [types.yara]
            source = "dir"
            layout = "snapshot"
            path = "import"
            settle = "3s"
            """)
        w.write("import/a.yar", "rule a { condition: true }\n")
        let now = Int64(Date().timeIntervalSince1970)
        let first = try await run(cfg, now: now)
        #expect(first.exitCode == 0)
        #expect(
            first.types[0].status == .unchanged && first.types[0].detail.contains("still being written"),
            "\(first.types[0].detail)")
        #expect(!FileManager.default.fileExists(atPath: w.path("outbox/yara")))

        // More files arrive 1 s later: still not staged.
        sleep(1)
        w.write("import/b.yar", "rule b { condition: false }\n")
        let second = try await run(cfg, now: Int64(Date().timeIntervalSince1970))
        #expect(second.types[0].status == .unchanged && second.types[0].detail.contains("still being written"))

        // Quiet for the settle time: staged, with both files.
        sleep(4)
        let third = try await run(cfg, now: Int64(Date().timeIntervalSince1970))
        #expect(third.types[0].status == .published, "\(third.types[0].detail)")
        let idx = try Outbox(root: w.path("outbox")).readIndex()
        #expect(idx.types["yara"]?.revisions.first?.files == 2)
    }

    /// Clocks that disagree (ctimes from a file server in the future): two runs that see the
    /// same folder `settle` apart settle it too.
    @Test func theSameFolderSeenTwiceSettleApartIsSettledWhateverTheClock() async throws {
        let w = StageWorkspace()
        let cfg = try w.config(
            """
            [types.yara]
            source = "dir"
            layout = "snapshot"
            path = "import"
            settle = "60s"
            """)
        w.write("import/a.yar", "rule a { condition: true }\n")
        let now = Int64(Date().timeIntervalSince1970)
        let a = try await run(cfg, now: now - 3600)  // this host's clock is an hour behind the files
        #expect(a.types[0].status == .unchanged)
        let b = try await run(cfg, now: now - 3600 + 30)
        #expect(b.types[0].status == .unchanged, "only 30 s apart")
        let c = try await run(cfg, now: now - 3600 + 61)
        #expect(c.types[0].status == .published, "\(c.types[0].detail)")
    }

    @Test func aRevisionDirectoryNeedsItsReadyMarker() async throws {
        let w = StageWorkspace()
        let cfg = try w.config(
            """
            [types.virus-defs]
            source = "dir"
            path = "up"
            ready_file = "READY"
            """)
        w.write("up/1/main.cvd", "one\n")
        let r1 = try await run(cfg)
        #expect(r1.exitCode == 0 && r1.types[0].status == .unchanged)
        #expect(r1.types[0].detail.contains("no 'READY' marker yet"), "\(r1.types[0].detail)")
        w.write("up/1/READY", "")
        let r2 = try await run(cfg)
        #expect(r2.types[0].status == .published)
        // The marker is a signal, not content.
        let idx = try Outbox(root: w.path("outbox")).readIndex()
        #expect(idx.types["virus-defs"]?.revisions.first?.files == 1)
    }

    @Test func settleKeysAreForDirSourcesOnly() throws {
        let w = StageWorkspace()
        #expect(throws: CourierError.self) {
            _ = try w.config(
                """
                [types.x]
                source = "url"
                url = "http://127.0.0.1:1/x"
                settle = "30s"
                """)
        }
        #expect(throws: CourierError.self) {
            _ = try w.config(
                """
                [types.x]
                source = "dir"
                path = "up"
                ready_file = "../READY"
                """)
        }
    }
}
