import CourierCore
import Foundation
import Testing

/// `Sys` as the only door to the system (#17.1): the one lock type, pipes that no child inherits,
/// the thread id from the shim, and the check that keeps raw libc calls out of the rest.
@Suite(.serialized) struct SysDoorTests {
    // MARK: FileLock

    @Test func aSecondHolderIsRefusedUntilTheFirstLetsGo() throws {
        let w = Workspace("lock")
        let path = w.path("lock")
        var first = try FileLock.tryAcquire(path, recordingPid: true)
        #expect(first != nil)
        #expect(FileLock.holder(path) == "\(getpid())")
        // flock locks belong to an open file description: a second open in this process is refused too.
        #expect(try FileLock.tryAcquire(path) == nil)
        let t0 = Date()
        #expect(try FileLock.acquire(path, timeout: 0.3) == nil)
        #expect(Date().timeIntervalSince(t0) >= 0.25, "acquire must wait out its timeout")
        first = nil
        #expect(FileLock.holder(path) == "", "the pid is cleared on release")
        #expect(try FileLock.tryAcquire(path) != nil)
    }

    @Test func aLockHeldByAnotherProcessIsRefusedAndFreedWhenItDies() throws {
        let w = Workspace("lock")
        let path = w.path("lock")
        // util-linux flock(1) takes the same kind of lock on fd 9, then the shell becomes `sleep`
        // (same pid, fd 9 kept): a real other process that holds it until it is killed.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/bin/sh")
        holder.arguments = ["-c", "exec 9>>\"$0\" && /usr/bin/flock -x 9 && exec /usr/bin/sleep 30", path]
        try holder.run()
        defer { if holder.isRunning { holder.terminate() } }
        var held = false
        for _ in 0..<200 {
            if (try? String(contentsOfFile: "/proc/locks", encoding: .utf8))?.contains("FLOCK") == true,
                try FileLock.tryAcquire(path) == nil
            {
                held = true
                break
            }
            usleep(10_000)
        }
        #expect(held, "flock(1) never took the lock")
        let t0 = Date()
        holder.terminate()
        holder.waitUntilExit()
        #expect(try FileLock.acquire(path, timeout: 5) != nil, "the kernel drops the lock of a dead process")
        #expect(Date().timeIntervalSince(t0) < 5)
    }

    @Test func aLockFileThatIsASymlinkIsRefused() throws {
        let w = Workspace("lock")
        try Sys.symlink(w.path("elsewhere"), w.path("lock"))
        #expect(throws: CourierError.self) { _ = try FileLock.tryAcquire(w.path("lock")) }
        #expect(!FileManager.default.fileExists(atPath: w.path("elsewhere")))
    }

    // MARK: pipes and children

    /// The descriptors of a running process that are pipes: "pipe:[inode]".
    private func pipes(of pid: pid_t) -> Set<String> {
        let dir = "/proc/\(pid)/fd"
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return Set(
            fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/" + $0) }
                .filter { $0.hasPrefix("pipe:") })
    }

    private func inode(_ fd: Int32) -> String {
        var st = stat()
        #expect(fstat(fd, &st) == 0)
        return "pipe:[\(st.st_ino)]"
    }

    /// Spawns `sleep 30` with plain posix_spawn, which (unlike `ChildProcess`) closes nothing:
    /// the child keeps every descriptor that is not close-on-exec.
    private func spawnSleeper() throws -> pid_t {
        var pid: pid_t = 0
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup("/usr/bin/sleep"), strdup("30"), nil]
        defer { for p in argv { free(p) } }
        let rc = posix_spawn(&pid, "/usr/bin/sleep", nil, nil, &argv, environ)
        try #require(rc == 0)
        return pid
    }

    private func reap(_ pid: pid_t) {
        kill(pid, SIGKILL)
        var st: Int32 = 0
        waitpid(pid, &st, 0)
    }

    @Test func aChildSpawnedWhileAPipeIsOpenDoesNotInheritIt() throws {
        let ours = try Sys.pipe(display: "test")  // both ends closed at the end of the test
        // The control: a pipe made the old way (pipe(2), no O_CLOEXEC) does leak into the
        // child, so this check can see a leak when there is one.
        var leaky: [Int32] = [-1, -1]
        try #require(pipe(&leaky) == 0)
        defer {
            close(leaky[0])
            close(leaky[1])
        }
        let pid = try spawnSleeper()
        defer { reap(pid) }
        let inherited = pipes(of: pid)
        #expect(inherited.contains(inode(leaky[0])), "the control pipe must be seen in the child: \(inherited)")
        #expect(!inherited.contains(inode(ours.read.raw)), "Sys.pipe's read end leaked into a child")
        #expect(!inherited.contains(inode(ours.write.raw)), "Sys.pipe's write end leaked into a child")
    }

    /// The race CommandRunner had: another thread spawns a child while `ChildProcess.run` holds
    /// its output pipe open. That child must not hold the write end, or the command's reader
    /// would wait for an end of file that comes only when the stranger exits.
    @Test func aChildSpawnedDuringACommandDoesNotHoldItsOutputPipe() async throws {
        // What any child inherits from the test runner itself (its stdout may be a pipe).
        let before = try spawnSleeper()
        let baseline = pipes(of: before)
        reap(before)
        let started = Date()
        async let outcome = Task.detached {
            try ChildProcess.run(
                ["/bin/sh", "-c", "echo out; sleep 1"], environment: ChildProcess.currentEnvironment(), timeout: 20)
        }.value
        // While the command runs, spawn a stranger that lives for 30 s.
        try await Task.sleep(nanoseconds: 300_000_000)
        let stranger = try spawnSleeper()
        defer { reap(stranger) }
        let strangerPipes = pipes(of: stranger).subtracting(baseline)
        let result = try await outcome
        #expect(result.ok)
        #expect(String(decoding: result.output, as: UTF8.self).contains("out"))
        #expect(strangerPipes.isEmpty, "a concurrently spawned child inherited \(strangerPipes)")
        #expect(Date().timeIntervalSince(started) < 15, "the command's reader waited for the stranger")
    }

    @Test func theThreadIDIsTheKernelsAndDiffersBetweenThreads() throws {
        let here = Sys.threadID()
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")
        #expect(link.hasSuffix("/task/\(here)"), "\(link) vs \(here)")
        let other = Locked<pid_t>(0)
        let t = Thread { other.withLock { $0 = Sys.threadID() } }
        t.start()
        for _ in 0..<500 where other.withLock({ $0 }) == 0 { usleep(10_000) }
        let tid = other.withLock { $0 }
        #expect(tid != 0 && tid != here)
    }

    // MARK: the check

    private static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    private func check(_ root: String) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [Self.repo + "/scripts/check/libc-door.sh", root]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func theCheckFindsRawCallsAndIgnoresCommentsStringsAndSys() throws {
        let w = Workspace("door")
        w.tree(
            "Sources/Mod",
            [
                "Bad.swift": bytes(
                    """
                    import Glibc
                    func f(_ path: String) {
                        // close(fd) in a comment is fine
                        /* so is unlink(path) /* nested */ here */
                        let s = "open(\\(path)) in a string is fine"
                        let fd = open(path, O_RDONLY)
                        let tmp = ".tmp-\\(getpid())"
                        _ = Glibc.unlink(tmp)
                        var st = stat()
                        _ = (fd, s, st)
                    }
                    enum E { case wait(Int) }
                    struct R { func read() {}; func g() { read() } }
                    """)
            ])
        w.tree("Sources/CourierCore/System", ["Sys.swift": bytes("func f() { _ = getpid(); _ = close(3) }\n")])
        let r = try check(w.root)
        #expect(r.status == 1, "\(r.output)")
        let lines = r.output.split(separator: "\n").filter { $0.hasPrefix("Sources/") }.map(String.init)
        #expect(
            lines == [
                "Sources/Mod/Bad.swift:6: raw open() outside Sys; use (or add) a checked wrapper in Sources/CourierCore/System/",
                "Sources/Mod/Bad.swift:7: raw getpid() outside Sys; use (or add) a checked wrapper in Sources/CourierCore/System/",
                "Sources/Mod/Bad.swift:8: raw unlink() outside Sys; use (or add) a checked wrapper in Sources/CourierCore/System/",
            ], "\(r.output)")
    }

    @Test func theCheckFindsRawDescriptorsOutsideSystem() throws {
        let w = Workspace("door-fd")
        w.tree(
            "Sources/CourierCore/Package",
            [
                "Raw.swift": bytes(
                    """
                    func f(_ dir: Int32) throws {
                        let d = try Sys.openDirectoryAt(dir, "x")
                        // Sys.close(d) in a comment is fine, and so is "Sys.open(" in a string
                        defer { Sys.close(d) }
                        let o = try OwnedFD.open(at: d, "y", 0)
                        _ = o.raw
                    }
                    """)
            ])
        w.tree(
            "Sources/CourierCore/System",
            ["OwnedFD.swift": bytes("func g() throws { Sys.close(try Sys.open(\"/\", 0)) }\n")])
        let r = try check(w.root)
        #expect(r.status == 1, "\(r.output)")
        let lines = r.output.split(separator: "\n").filter { $0.hasPrefix("Sources/") }.map(String.init)
        let why = "hands out or closes a raw descriptor; use OwnedFD (Sources/CourierCore/System/OwnedFD.swift)"
        #expect(
            lines == [
                "Sources/CourierCore/Package/Raw.swift:2: Sys.openDirectoryAt() \(why)",
                "Sources/CourierCore/Package/Raw.swift:4: Sys.close() \(why)",
            ], "\(r.output)")
    }

    @Test func theTreeHasNoRawCallsOutsideSys() throws {
        let r = try check(Self.repo)
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.isEmpty, "\(r.output)")
    }
}
