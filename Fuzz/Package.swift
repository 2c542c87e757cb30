// swift-tools-version:6.0
// libFuzzer drivers for Courier's parsers (CourierFuzzing). A package of its own, built with
// `-sanitize=fuzzer,address` in its own scratch folder, so `make build` and `make test` never
// build it:
//     make fuzz SECONDS=600              every target, SECONDS in total (scripts/fuzz/run.sh)
//     make fuzz TARGETS="manifest patch" SECONDS=120
// One executable for all targets; COURIER_FUZZ_TARGET picks one. Its main hands over to
// libFuzzer (LLVMFuzzerRunDriver).
import PackageDescription

// A path dependency is named after its directory (`main`, `courier`, … wherever the repository
// was cloned), lowercased: work the name out instead of hard-coding one checkout's.
let courierPackage = String(Context.packageDirectory.split(separator: "/").dropLast().last ?? "main").lowercased()

let package = Package(
    name: "CourierFuzz",
    platforms: [.macOS(.v13)],
    dependencies: [.package(path: "..")],
    targets: [
        .executableTarget(
            name: "CourierFuzz",
            dependencies: [.product(name: "CourierFuzzing", package: courierPackage)],
            path: "Sources/CourierFuzz"
        ),
    ]
)
