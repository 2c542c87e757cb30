import CourierCore

/// The parsers that read attacker-reachable bytes, each as one fuzz target: bytes in, a verdict
/// out. The same functions are driven by libFuzzer (`Fuzz/`, `make fuzz`) and replayed over the
/// corpus in `Fixtures/fuzz/<target>/` by `make test` (`Tests/FuzzTests`), so that every input
/// that ever crashed one stays a test.
///
/// A target must never trap. Refusing the input is fine, but only with a `CourierError` — the
/// project's one error type, which names what is wrong; anything else is reported as
/// `.unexpected`, which the replay test fails on (libFuzzer does not see it: it looks for
/// crashes, sanitizer reports and properties broken with `FuzzCheck.require`).
public struct FuzzTarget: Sendable {
    public let name: String
    /// What it reads, and what it checks besides "no crash".
    public let summary: String
    public let run: @Sendable ([UInt8]) throws -> Void

    public init(_ name: String, _ summary: String, _ run: @escaping @Sendable ([UInt8]) throws -> Void) {
        self.name = name
        self.summary = summary
        self.run = run
    }

    public enum Outcome: Equatable, Sendable, CustomStringConvertible {
        case accepted
        case refused(CourierError.Code)
        case unexpected(String)

        public var description: String {
            switch self {
            case .accepted: "accepted"
            case .refused(let c): "refused (\(c))"
            case .unexpected(let s): "unexpected error: \(s)"
            }
        }
    }

    public func outcome(_ bytes: [UInt8]) -> Outcome {
        do {
            try run(bytes)
            return .accepted
        } catch let e as CourierError {
            return .refused(e.code)
        } catch {
            return .unexpected(String(describing: error))
        }
    }
}

public enum FuzzTargets {
    public static let all: [FuzzTarget] = CoreTargets.all + TUFTargets.all + ConfigTargets.all + InboxTargets.all

    public static func named(_ name: String) -> FuzzTarget? {
        all.first { $0.name.utf8.elementsEqual(name.utf8) }
    }
}

/// Properties a target checks beyond "no crash": a broken one traps, so libFuzzer keeps the
/// input as a crash, and the replay test crashes on it too.
public enum FuzzCheck {
    public static func require(
        _ ok: @autoclosure () -> Bool, _ what: @autoclosure () -> String,
        file: StaticString = #fileID, line: UInt = #line
    ) {
        if !ok() { fatalError("fuzz property broken: \(what())", file: file, line: line) }
    }
}
