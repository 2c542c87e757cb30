import CourierCore
import Foundation
import Testing

/// The shared `expectCourierError` (CourierTestSupport) must fail a test whenever the refusal is
/// not the one asked for; otherwise every test written with it could pass for the wrong reason.
/// `withKnownIssue` fails the test when the helper records nothing. The errors are real: reading
/// a file that is not there.
@Suite struct ExpectCourierErrorTests {
    let missing = NSTemporaryDirectory() + "courier-expect-\(getpid())-\(UUID())/none"

    @Test func returnsTheErrorWhenCodeAndReasonMatch() throws {
        let e = expectCourierError(.io, missing) { _ = try Sys.readFile(missing) }
        #expect(e?.code == .io)
        let any = expectCourierError { _ = try Sys.readFile(missing) }
        #expect(any?.message == e?.message)
    }

    @Test func recordsAnIssueWhenTheBodySucceeds() {
        withKnownIssue { #expect(expectCourierError(.io) { _ = try Sys.readFile("/proc/self/stat") } == nil) }
    }

    @Test func recordsAnIssueForAnotherCodeOrAMessageWithoutTheReason() {
        withKnownIssue { #expect(expectCourierError(.config) { _ = try Sys.readFile(missing) }?.code == .io) }
        withKnownIssue { expectCourierError(.io, "not in the message") { _ = try Sys.readFile(missing) } }
    }

    @Test func recordsAnIssueForAnErrorThatIsNotACourierError() {
        struct Other: Error {}
        withKnownIssue { #expect(expectCourierError(.io) { throw Other() } == nil) }
    }

    @Test func theAsyncVariantChecksTheSame() async {
        let e = await expectCourierError(.io, missing) {
            try await Task.sleep(for: .milliseconds(1))
            _ = try Sys.readFile(missing)
        }
        #expect(e?.code == .io)
        await withKnownIssue { await expectCourierError(.io) { try await Task.sleep(for: .milliseconds(1)) } }
        await withKnownIssue {
            await expectCourierError(.limit) {
                try await Task.sleep(for: .milliseconds(1))
                _ = try Sys.readFile(missing)
            }
        }
    }
}
