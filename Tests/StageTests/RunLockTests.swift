import CourierCore
import CourierStage
import Foundation
import Testing

/// courier-stage's run lock on the shared `FileLock` (#17.1): the same refusal, word for word, as
/// before, and the pid in the file only while it is held.
@Suite struct RunLockTests {
    @Test func aSecondRunIsRefusedNamingTheHoldersPid() throws {
        let w = StageWorkspace()
        let path = w.path("lock")
        var held: RunLock? = try RunLock(path: path)
        #expect(String(decoding: try Sys.readFile(path), as: UTF8.self) == "\(getpid())\n")
        let e = expectCourierError(.locked) { _ = try RunLock(path: path) }
        #expect(
            e?.message
                == "another courier-stage run holds \(path) (pid \(getpid())); this run exits without doing anything"
        )
        withExtendedLifetime(held) {}
        held = nil
        #expect(try Sys.readFile(path).isEmpty, "the pid is cleared on release")
        let again = try RunLock(path: path)
        withExtendedLifetime(again) {}
    }
}
