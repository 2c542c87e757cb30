import CourierCore
import CourierTestSupport
import Foundation
import Testing

@testable import CourierInbox

/// inboxd's state lock on the shared `FileLock` (#17.1): it waits for a holder up to its timeout,
/// then refuses with the same message as before, without running the body.
@Suite struct StateLockTests {
    @Test func aHolderBlocksUntilTheTimeoutThenTheBodyRunsOnceItIsFree() throws {
        let s = InboxSandbox("statelock")
        let dir = s.root + "/state"
        try Sys.mkdirs(dir)
        var other = try FileLock.tryAcquire(dir + "/lock")
        #expect(other != nil)
        var ran = false
        let t0 = Date()
        let e = expectCourierError(.locked) { try StateLock.with(dir, timeout: 0.3) { ran = true } }
        #expect(e?.message == "\(dir)/lock: held by another courier-inboxd process for more than 0 s")
        #expect(!ran)
        #expect(Date().timeIntervalSince(t0) >= 0.25)
        withExtendedLifetime(other) {}
        other = nil
        let value = try StateLock.with(dir, timeout: 1) { () throws -> Int in
            // Held while the body runs: nobody else gets it meanwhile.
            #expect(try FileLock.tryAcquire(dir + "/lock") == nil)
            return 42
        }
        #expect(value == 42)
        #expect(try FileLock.tryAcquire(dir + "/lock") != nil, "released after the body")
    }
}
