// swift-tools-version:6.1
import PackageDescription

// A separate package so the main build and `swift test` never compile the benchmark harness.
// Run from this folder: swift package benchmark
let package = Package(
    name: "TapestryBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Tapestry", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // What both executables build their frames and datapaths with.
        .target(
            name: "BenchmarkFrames",
            dependencies: [
                .product(name: "TapestryDatapath", package: "Tapestry"),
                .product(name: "TapestryWire", package: "Tapestry"),
            ],
            path: "Sources/BenchmarkFrames"
        ),
        .executableTarget(
            name: "Pipeline",
            dependencies: [
                "BenchmarkFrames",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TapestryDatapath", package: "Tapestry"),
                .product(name: "TapestryWire", package: "Tapestry"),
            ],
            path: "Benchmarks/Pipeline",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The firewall's TCP established path timed by hand (firewall-timing.sh): the benchmark
        // runner reports nothing under Swift 6.3 on Linux without swift-runtime-interposer.
        .executableTarget(
            name: "FirewallTiming",
            dependencies: [
                "BenchmarkFrames",
                .product(name: "TapestryDatapath", package: "Tapestry"),
                .product(name: "TapestryWire", package: "Tapestry"),
            ],
            path: "Sources/FirewallTiming"
        ),
    ]
)
