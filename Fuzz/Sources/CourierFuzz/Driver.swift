import CourierFuzzing
import Foundation

/// libFuzzer's entry points. Built with `-parse-as-library -sanitize=fuzzer`: libFuzzer brings
/// `main`, parses its own flags, and calls these.
///
/// Environment: COURIER_FUZZ_TARGET (required: a name from `FuzzTargets.all`);
/// COURIER_FUZZ_LIST=1 prints the targets and exits.
nonisolated(unsafe) var current: FuzzTarget?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    let env = ProcessInfo.processInfo.environment
    if env["COURIER_FUZZ_LIST"] == "1" {
        for t in FuzzTargets.all { print("\(t.name)\t\(t.summary)") }
        exit(0)
    }
    guard let name = env["COURIER_FUZZ_TARGET"], let t = FuzzTargets.named(name) else {
        FileHandle.standardError.write(Data("courier-fuzz: set COURIER_FUZZ_TARGET to one of: \(FuzzTargets.all.map(\.name).joined(separator: " "))\n".utf8))
        exit(2)
    }
    current = t
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = (data != nil && size > 0) ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    // An error that is not a CourierError is a bug as well (the project has one error type that
    // names what is wrong): crash, so libFuzzer keeps the input.
    if case .unexpected(let why) = current!.outcome(bytes) { fatalError("\(current!.name): \(why)") }
    return 0
}
