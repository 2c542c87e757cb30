import CourierCore
import Foundation
import Testing

/// `ChildProcess.run` owns its output pipe (`Sys.pipe` returns both ends as owners, #17.1): the
/// parent's copy of the write end is closed right after the spawn — or the reader would wait for
/// an end of file until the timeout — and the read end before `run` returns, whether the command
/// finished or was killed. The child names its own stdout pipe ("pipe:[inode]"), an identity no
/// other test's descriptor can share; after `run` this process must hold no end of it.
@Suite struct ChildProcessDescriptorTests {
    func openTargets() -> Set<String> {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return Set(fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0) })
    }

    @Test func aFinishedCommandReachesEndOfFileAtOnceAndLeavesNoEndOfItsPipeOpen() throws {
        let started = Sys.monotonicSeconds()
        let out = try ChildProcess.run(
            ["/bin/sh", "-c", "readlink /proc/self/fd/1"], environment: ChildProcess.currentEnvironment(),
            timeout: 30)
        let took = Sys.monotonicSeconds() - started
        #expect(out.ok && !out.timedOut)
        #expect(took < 10, "the reader waited \(took) s: the parent's write end stayed open after the spawn")
        let pipe = String(decoding: out.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(pipe.hasPrefix("pipe:["), "the child's stdout: \(pipe)")
        #expect(!openTargets().contains(pipe), "\(pipe) is still open in the parent after run returned")
    }

    @Test func aCommandKilledAtItsTimeoutLeavesNoEndOfItsPipeOpen() throws {
        let out = try ChildProcess.run(
            ["/bin/sh", "-c", "readlink /proc/self/fd/1; exec sleep 30"],
            environment: ChildProcess.currentEnvironment(), timeout: 1)
        #expect(out.timedOut)
        let pipe = String(decoding: out.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(pipe.hasPrefix("pipe:["), "the child's stdout: \(pipe)")
        #expect(!openTargets().contains(pipe), "\(pipe) is still open in the parent after a timeout")
    }
}
