// swift-tools-version:5.9
// TOMLKit 0.6.0 (https://github.com/LebJe/TOMLKit, MIT, LICENSE beside this file), vendored by
// Courier with one change: its `import struct Foundation.X` lines import FoundationEssentials
// where it exists, so the programs do not link all of Foundation. Vendor/README.md says why.
// The upstream test target, its test-only dependency and the DocC catalog are left out.
import PackageDescription

let package = Package(
    name: "TOMLKit",
    products: [
        .library(name: "TOMLKit", targets: ["TOMLKit"]),
    ],
    targets: [
        .target(
            name: "CTOML",
            cxxSettings: [
                .define("TOML_EXCEPTIONS", to: "1"),
            ]
        ),
        .target(
            name: "TOMLKit",
            dependencies: ["CTOML"]
        ),
    ],
    cLanguageStandard: .c99,
    cxxLanguageStandard: .cxx17
)
