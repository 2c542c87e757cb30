// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Courier",
    products: [
        .executable(name: "courier-stage", targets: ["courier-stage"]),
        .executable(name: "courier-deliver", targets: ["courier-deliver"]),
        .executable(name: "courier-inboxd", targets: ["courier-inboxd"]),
        .executable(name: "courier-tuf", targets: ["courier-tuf"]),
        .executable(name: "courier-pull", targets: ["courier-pull"]),
        .library(name: "CourierCore", targets: ["CourierCore"]),
        // For the fuzzers (Fuzz/, a package of their own: `make fuzz`).
        .library(name: "CourierFuzzing", targets: ["CourierFuzzing"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // Already resolved for async-http-client; named for the fetcher's `ca_file`/`ca_dir`.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // TOMLKit 0.6.0, vendored with one change (FoundationEssentials instead of Foundation):
        // Vendor/README.md.
        .package(path: "Vendor/TOMLKit"),
    ],
    targets: [
        // libarchive (and zlib/zstd through it). The shim exposes what Swift cannot import.
        // No pkgConfig: its `-L/usr/lib/<arch>` would come first in the linker's search order and
        // defeat `make release`, which links the static libarchive.a (scripts/build/static-libs.sh).
        .systemLibrary(
            name: "CArchive",
            providers: [.apt(["libarchive-dev", "zlib1g-dev"])]
        ),
        .target(name: "CCourierShim"),
        // libzstd itself (already linked through libarchive): in-file binary deltas (patch-from)
        // and compression on several threads. `make release` links the static libzstd.a.
        .systemLibrary(name: "CZstd", providers: [.apt(["libzstd-dev"])]),
        .target(
            name: "CourierCore",
            dependencies: [
                "CArchive",
                "CCourierShim",
                "CZstd",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // HTTP: linked by courier-stage, courier-pull and courier-tuf; courier-deliver and
        // courier-inboxd do not link it (start-up time). Checked with `nm` on the binaries: no
        // AsyncHTTPClient or NIOCore symbol in those two.
        .target(
            name: "CourierFetch",
            dependencies: [
                "CourierCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The Update Framework: metadata model, canonical JSON, key types and the trusted-metadata
        // state machine (pure: bytes in, verified metadata or a CourierError out), and the updater
        // that fetches through CourierFetch (issue #14).
        .target(
            name: "CourierTUF",
            dependencies: [
                "CourierCore",
                "CourierFetch",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // TOML configuration files with errors naming file, line and key. The only target that
        // depends on TOMLKit (issue #17.4): the others read their files through its TableReader.
        // Every program but courier-tuf links it, for its own configuration file.
        .target(
            name: "CourierConfig",
            dependencies: ["CourierCore", .product(name: "TOMLKit", package: "TOMLKit")]
        ),
        // The staging cycle: configuration, sources, outbox, reporting.
        .target(
            name: "CourierStage",
            dependencies: [
                "CourierCore",
                "CourierFetch",
                "CourierTUF",
                "CourierConfig",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Delivery: choosing delta or full per client, copying into inboxes, the fleet report.
        .target(
            name: "CourierDeliver",
            dependencies: ["CourierCore", "CourierConfig", "CCourierShim"]
        ),
        // The client agent: watching the inbox, ordering, applying, state.
        .target(
            name: "CourierInbox",
            dependencies: [
                "CourierCore",
                "CCourierShim",
                "CourierConfig",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "CourierCLI",
            dependencies: [
                "CourierCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Stage's commands live apart so that courier-deliver and courier-inboxd do not link the
        // stager's HTTP, TUF and sources.
        .target(
            name: "StageCLI",
            dependencies: [
                "CourierCLI", "CourierCore", "CourierStage", "CourierFetch",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "courier-stage",
            dependencies: ["StageCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .target(
            name: "DeliverCLI",
            dependencies: [
                "CourierCLI", "CourierCore", "CourierDeliver",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "InboxCLI",
            dependencies: [
                "CourierCLI", "CourierCore", "CourierInbox",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // courier-tuf: the TUF conformance suite's client-under-test CLI (init, refresh, download).
        .target(
            name: "TUFCLI",
            dependencies: [
                "CourierCLI", "CourierCore", "CourierTUF", "CourierFetch",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "courier-tuf", dependencies: ["TUFCLI"]),
        // The pull copier and relay (issue #16): HTTP from any web server serving an outbox into
        // the client's inbox, and a relay's mirror of a subset of an upstream outbox. A program of
        // its own so that courier-inboxd stays free of HTTP: pull is just another copier. It
        // reuses the stager's HTTP client (CourierFetch) and delivery's decision (CourierDeliver).
        .target(
            name: "CourierPull",
            dependencies: [
                "CourierCore", "CourierConfig", "CourierFetch", "CourierDeliver", "CourierInbox",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "PullCLI",
            dependencies: [
                "CourierCLI", "CourierCore", "CourierPull", "CourierFetch",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "courier-pull",
            dependencies: ["PullCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // The parsers of attacker-reachable bytes as fuzz targets (bytes in, verdict out), driven
        // by libFuzzer from Fuzz/ and replayed over Fixtures/fuzz by FuzzTests (issue #15).
        .target(
            name: "CourierFuzzing",
            dependencies: [
                "CourierCore", "CourierConfig", "CourierTUF", "CourierStage", "CourierInbox",
                "CourierDeliver", "CourierFetch",
            ]
        ),
        .executableTarget(name: "courier-deliver", dependencies: ["DeliverCLI"]),
        .executableTarget(
            name: "courier-inboxd",
            dependencies: ["InboxCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // What several test targets share (the Python test servers' starter, the CourierError
        // expectation); not shipped. It imports Testing, the toolchain's, as the test targets do.
        .target(name: "CourierTestSupport", dependencies: ["CourierCore"], path: "Tests/Support/Swift"),
        .testTarget(
            name: "CourierCoreTests",
            dependencies: [
                "CourierCore", "CArchive", "CourierTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tests/CourierCoreTests"
        ),
        .testTarget(
            name: "FetchTests",
            dependencies: ["CourierFetch", "CourierCore", "CourierTestSupport"],
            path: "Tests/FetchTests"
        ),
        .testTarget(
            name: "StageTests",
            dependencies: [
                "CourierStage", "CourierFetch", "CourierCore", "CourierConfig", "CourierTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/StageTests"
        ),
        .testTarget(
            name: "InboxTests",
            dependencies: [
                "CourierInbox", "CourierCore", "CourierTestSupport", .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/InboxTests"
        ),
        .testTarget(
            name: "DeliverTests",
            dependencies: ["CourierDeliver", "CourierCore", "CourierConfig"],
            path: "Tests/DeliverTests"
        ),
        .testTarget(
            name: "TUFTests",
            dependencies: [
                "CourierTUF", "CourierCore", "CourierFetch", "CourierTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TUFTests"
        ),
        .testTarget(
            name: "FuzzTests",
            dependencies: ["CourierFuzzing", "CourierCore"],
            path: "Tests/FuzzTests"
        ),
        .testTarget(
            name: "PullTests",
            dependencies: ["CourierPull", "CourierDeliver", "CourierCore", "CourierTestSupport"],
            path: "Tests/PullTests"
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["CourierCore", "CourierTestSupport", .product(name: "Crypto", package: "swift-crypto")],
            path: "Tests/EndToEndTests"
        ),
    ]
)
