// `make release` (`swift build -c release --static-swift-stdlib`) builds this ordinary target
// too, and the toolchain has no static Testing module: without the guard the release build
// fails with "no such module 'Testing'". Test builds have it.
#if canImport(Testing)
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
        verdict(Result { try body() }, code, reason, sourceLocation)
    }

    /// The same for an `async` body.
    @discardableResult
    public func expectCourierError(
        _ code: CourierError.Code? = nil, _ reason: String = "", sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () async throws -> Void
    ) async -> CourierError? {
        let outcome: Result<Void, any Error>
        do {
            try await body()
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        return verdict(outcome, code, reason, sourceLocation)
    }

    /// What both variants check, once the body has run.
    private func verdict(
        _ outcome: Result<Void, any Error>, _ code: CourierError.Code?, _ reason: String, _ at: SourceLocation
    ) -> CourierError? {
        switch outcome {
        case .success:
            let what = [code.map { "\($0)" }, reason.isEmpty ? nil : "'\(reason)'"].compactMap { $0 }
            Issue.record("expected a CourierError \(what.joined(separator: " ")), but it succeeded", sourceLocation: at)
            return nil
        case .failure(let e as CourierError):
            if let code { #expect(e.code == code, "code \(e.code) for: \(e.message)", sourceLocation: at) }
            if !reason.isEmpty {
                #expect(e.message.contains(reason), "'\(e.message)' does not contain '\(reason)'", sourceLocation: at)
            }
            return e
        case .failure(let other):
            Issue.record("expected a CourierError, got: \(other)", sourceLocation: at)
            return nil
        }
    }
#endif
