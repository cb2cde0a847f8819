// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Tapestry",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tapestry", targets: ["tapestry"]),
        .library(name: "TapestryWire", targets: ["TapestryWire"]),
        .library(name: "TapestryPcap", targets: ["TapestryPcap"]),
        .library(name: "TapestryTopology", targets: ["TapestryTopology"]),
        .library(name: "TapestryDatapath", targets: ["TapestryDatapath"]),
        .library(name: "TapestrySwitchCore", targets: ["TapestrySwitchCore"]),
        .library(name: "TapestryControl", targets: ["TapestryControl"]),
        .library(name: "TapestryReplay", targets: ["TapestryReplay"]),
        .library(name: "TapestryTestSupport", targets: ["TapestryTestSupport"]),
        .library(name: "TapestryPorts", targets: ["TapestryPorts"]),
        // The fuzz targets' checks, driven by libFuzzer from Fuzz/ and replayed over the corpus by
        // the tests (docs/fuzzing.md).
        .library(name: "TapestryFuzzTargets", targets: ["TapestryFuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CPcap", pkgConfig: "libpcap", providers: [.apt(["libpcap-dev"])]),
        .target(name: "TapestryWire"),
        .target(name: "CTapestryLinux"),
        .target(name: "TapestryProcess"),
        .target(name: "TapestryLab", dependencies: ["TapestryProcess"]),
        .target(
            name: "TapestryPorts",
            dependencies: [
                "CTapestryLinux", "TapestryControl", "TapestryDatapath", "TapestryProcess", "TapestryWire", "TapestryTopology",
                "TapestrySwitchCore",
            ]),
        .target(name: "TapestryControl", dependencies: ["TapestryDatapath", "TapestryWire"]),
        .target(name: "TapestryPcap", dependencies: ["CPcap"]),
        .target(
            name: "TapestryTopology",
            dependencies: ["TapestryWire", .product(name: "Yams", package: "Yams")]
        ),
        .target(name: "TapestryDatapath", dependencies: ["TapestryWire"]),
        .target(name: "TapestrySwitchCore", dependencies: ["TapestryDatapath", "TapestryTopology", "TapestryWire"]),
        .target(
            name: "TapestryFrameSyntax",
            dependencies: ["TapestryWire", "TapestryTopology", .product(name: "Yams", package: "Yams")]
        ),
        .target(
            name: "TapestryPacketTest",
            dependencies: ["TapestryDatapath", "TapestryFrameSyntax", "TapestrySwitchCore", "TapestryTopology", "TapestryWire",
                           .product(name: "Yams", package: "Yams")]
        ),
        .target(
            name: "TapestryReplay",
            dependencies: ["TapestryDatapath", "TapestryPcap", "TapestrySwitchCore", "TapestryTopology", "TapestryWire"]
        ),
        .target(
            name: "TapestryTestSupport",
            dependencies: ["TapestryDatapath", "TapestryFrameSyntax", "TapestryTopology", "TapestryWire", "TapestrySwitchCore"]
        ),
        .target(
            name: "TapestryFuzzTargets",
            dependencies: [
                "TapestryControl", "TapestryDatapath", "TapestryFrameSyntax", "TapestryPacketTest", "TapestryPcap", "TapestryPorts", "TapestryReplay",
                "TapestrySwitchCore", "TapestryTopology", "TapestryWire",
            ]
        ),
        .executableTarget(
            name: "tapestry",
            dependencies: [
                "TapestryControl", "TapestryFrameSyntax", "TapestryLab", "TapestryPacketTest", "TapestryProcess", "TapestryReplay", "TapestryTopology",
                "TapestryPorts",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["BuildInfo"]
        ),
        .plugin(name: "BuildInfo", capability: .buildTool()),
        .testTarget(name: "TapestryWireTests", dependencies: ["TapestryWire", "TapestryTestSupport"]),
        .testTarget(
            name: "TapestryTopologyTests",
            dependencies: ["TapestryTopology"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "TapestryDatapathTests",
            dependencies: ["TapestryDatapath", "TapestryTestSupport", "TapestryWire", "TapestryTopology", "TapestrySwitchCore"]
        ),
        .testTarget(
            name: "TapestryReplayTests",
            dependencies: ["TapestryReplay", "TapestryPcap", "TapestryTestSupport"],
            exclude: ["Scenarios"]
        ),
        .testTarget(name: "TapestryCLITests", dependencies: ["tapestry"]),
        .testTarget(name: "TapestryPacketTestTests", dependencies: ["TapestryPacketTest"], exclude: ["Scenarios"]),
        .testTarget(
            name: "TapestryFrameSyntaxTests",
            dependencies: ["TapestryFrameSyntax", "TapestryPcap", "TapestryTestSupport", "TapestryTopology", "TapestryWire",
                           .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "TapestryControlTests", dependencies: ["TapestryControl"]),
        .testTarget(name: "TapestryPortsTests", dependencies: ["TapestryPorts", "TapestryWire", "TapestryDatapath", "TapestryTopology"]),
        .testTarget(name: "TapestryLiveTests", dependencies: ["tapestry", "TapestryLab", "TapestryProcess"]),
        .testTarget(name: "TapestryProcessTests", dependencies: ["TapestryProcess"]),
        .testTarget(name: "TapestryFuzzTests", dependencies: ["TapestryFuzzTargets"]),
    ],
    swiftLanguageModes: [.v6]
)
