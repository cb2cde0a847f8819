// swift-tools-version:6.1
import PackageDescription

// The libFuzzer driver, in its own package so the main build and `swift test` never need
// -sanitize=fuzzer (the targets' checks themselves are the main package's TapestryFuzzTargets,
// which the tests run over the corpus). Build and run with scripts/fuzz.sh; docs/fuzzing.md.
let package = Package(
    name: "TapestryFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Tapestry", path: "..")
    ],
    targets: [
        .executableTarget(
            name: "tapestry-fuzz",
            dependencies: [.product(name: "TapestryFuzzTargets", package: "Tapestry")],
            path: "Sources/tapestry-fuzz"
        )
    ],
    swiftLanguageModes: [.v6]
)
