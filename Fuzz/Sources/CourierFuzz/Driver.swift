import CourierFuzzing
import Foundation

/// The target this process fuzzes (set once in main.swift, before libFuzzer starts).
nonisolated(unsafe) var current: FuzzTarget?

/// libFuzzer's driver, from the toolchain's libclang_rt.fuzzer (linked by -sanitize=fuzzer).
/// Called from our own main because SwiftPM links an executable's entry point itself.
// swift-format-ignore: AlwaysUseLowerCamelCase
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// One input: run, and crash on anything but a verdict. An error that is not a CourierError is a
/// bug as well (the project has one error type that names what is wrong), so it crashes too and
/// libFuzzer keeps the input.
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = (data != nil && size > 0) ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    if case .unexpected(let why) = current!.outcome(bytes) { fatalError("\(current!.name): \(why)") }
    return 0
}
