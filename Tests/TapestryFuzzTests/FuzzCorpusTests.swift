import Foundation
import TapestryFuzzTargets
import Testing

/// Every committed seed (Fuzz/Corpus/TARGET) and every input a fuzzer once crashed on
/// (Fuzz/Regressions/TARGET) through its target's checks, in the normal build: a fixed crash
/// that comes back fails here, without libFuzzer, and under AddressSanitizer in CI.
@Suite struct FuzzCorpusTests {
    static let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz")

    static func files(_ folder: String, _ target: FuzzTarget) -> [URL] {
        let directory = fuzz.appendingPathComponent(folder).appendingPathComponent(target.rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { directory.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzTarget.allCases) func seedsPass(_ target: FuzzTarget) throws {
        let seeds = Self.files("Corpus", target)
        #expect(!seeds.isEmpty, "no seeds for \(target.rawValue): run scripts/gen_fuzz_corpus.py")
        for seed in seeds {
            let bytes = [UInt8](try Data(contentsOf: seed))
            #expect(throws: Never.self, "\(seed.lastPathComponent)") { try target.run(bytes) }
        }
    }

    /// Fuzz/Regressions/datapath/first-fragment-at-int64-max: a first fragment at capture time
    /// Int64.max trapped at FirewallStage's `now + fragmentTimeout`; the target now keeps times
    /// within PcapReader.timestampLimit, as replay does.
    @Test(arguments: FuzzTarget.allCases) func formerCrashesPass(_ target: FuzzTarget) throws {
        for input in Self.files("Regressions", target) {
            let bytes = [UInt8](try Data(contentsOf: input))
            #expect(throws: Never.self, "\(input.lastPathComponent)") { try target.run(bytes) }
        }
    }
}
