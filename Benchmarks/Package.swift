// swift-tools-version:6.1
// In-process micro-benchmarks of CourierCore with package-benchmark (ordo-one/benchmark 1.38.1).
// A package of its own, so that `make test` and `make build` never build package-benchmark:
//     make microbench
//     swift package --package-path Benchmarks --scratch-path .build-bench benchmark
// The figures are explained in docs/BENCHMARKS.md; scripts/bench/micro/run.sh turns them into
// rows of the `make bench` table (BENCH_MICRO=1).
import PackageDescription

// A path dependency is named after its directory (`main`, `courier`, … wherever the repository
// was cloned), lowercased: work the name out instead of hard-coding one checkout's.
let courierPackage = String(Context.packageDirectory.split(separator: "/").dropLast().last ?? "main").lowercased()

let package = Package(
    name: "CourierBenchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(path: ".."),
        // traits: only the malloc interposer (allocation counts). Naming the traits turns off the
        // default "RuntimeInterposer" trait, whose swift-runtime-interposer package Swift 6.3 on
        // Linux would otherwise need and the local package mirror does not hold.
        // ordo-one/benchmark, formerly package-benchmark: the old URL and identifier still resolve
        // but print a deprecation warning at every run.
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1",
                 traits: ["MallocInterposer"]),
        // The same range as the main package: one resolved version.
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        .executableTarget(
            name: "CourierMicro",
            dependencies: [
                .product(name: "CourierCore", package: courierPackage),
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Benchmarks/CourierMicro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
