import CourierCore
import Testing

// One way for every test target to say "this must be refused with that code" (#17.5): the test
// targets each had their own (`expectCode`, `expectRefusal`, `errorCode`, two `courierError`s and
// hand-written `do … catch let e as CourierError` blocks), with different messages on failure.

/// Runs `body` and expects it to throw a `CourierError` with `code` (any code when nil) whose
/// message contains `reason` (not checked when empty). Records an issue at the caller's line when
/// `body` succeeds, throws another error type, or the code or message differ. Returns the error
/// thrown, when it is a `CourierError`, so that the caller can check more of it.
@discardableResult
public func expectCourierError(
    _ code: CourierError.Code? = nil, _ reason: String = "", sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) -> CourierError? {
    do {
        try body()
    } catch let e as CourierError {
        check(e, code, reason, sourceLocation)
        return e
    } catch {
        Issue.record("expected a CourierError, got: \(error)", sourceLocation: sourceLocation)
        return nil
    }
    succeeded(code, reason, sourceLocation)
    return nil
}

/// The same for an `async` body.
@discardableResult
public func expectCourierError(
    _ code: CourierError.Code? = nil, _ reason: String = "", sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async -> CourierError? {
    do {
        try await body()
    } catch let e as CourierError {
        check(e, code, reason, sourceLocation)
        return e
    } catch {
        Issue.record("expected a CourierError, got: \(error)", sourceLocation: sourceLocation)
        return nil
    }
    succeeded(code, reason, sourceLocation)
    return nil
}

private func check(_ e: CourierError, _ code: CourierError.Code?, _ reason: String, _ at: SourceLocation) {
    if let code { #expect(e.code == code, "code \(e.code) for: \(e.message)", sourceLocation: at) }
    if !reason.isEmpty {
        #expect(e.message.contains(reason), "'\(e.message)' does not contain '\(reason)'", sourceLocation: at)
    }
}

private func succeeded(_ code: CourierError.Code?, _ reason: String, _ at: SourceLocation) {
    let what = [code.map { "\($0)" }, reason.isEmpty ? nil : "'\(reason)'"].compactMap { $0 }.joined(separator: " ")
    Issue.record("expected a CourierError \(what), but it succeeded", sourceLocation: at)
}
