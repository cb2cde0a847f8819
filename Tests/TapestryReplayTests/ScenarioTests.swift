import Foundation
import Testing
import TapestryDatapath
import TapestryPcap
import TapestryReplay
import TapestryTopology

/// Locations in the repository, found from this file so tests run from any directory.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let scenarios = root.appendingPathComponent("Tests/TapestryReplayTests/Scenarios")
    static let examples = root.appendingPathComponent("examples")

    static func folders(in directory: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: directory.appendingPathComponent("$0/topology.yaml".replacingOccurrences(of: "$0", with: $0)).path) }.sorted()
    }

    static func temporaryDirectory(_ name: String) -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tapestry-tests-\(getpid())-\(name)")
        try? FileManager.default.removeItem(at: url)
        return url
    }
}

/// One replay scenario folder (a Click-style testie): topology.yaml, in/PORT.pcap, expect/PORT.pcap
/// for every port, expect/summary.json with the drops by reason, and a README line saying what it
/// proves. The expected captures come from an independent oracle (scripts/gen_replay_fixtures.py).
struct Scenario {
    let directory: URL

    var name: String { directory.lastPathComponent }

    func pcaps(_ sub: String) -> [Replay.Input] {
        let folder = directory.appendingPathComponent(sub)
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
            .filter { $0.hasSuffix(".pcap") }.sorted()
        return files.map { Replay.Input(port: String($0.dropLast(5)), path: folder.appendingPathComponent($0).path) }
    }

    var expectedSummary: [String: Any] {
        let data = try! Data(contentsOf: directory.appendingPathComponent("expect/summary.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    var expectedDrops: [String: UInt64] {
        (expectedSummary["drops"] as! [String: Any]).mapValues { UInt64(truncating: $0 as! NSNumber) }
    }

    func run(hashKey: HashKey = .fixed) throws -> ReplaySummary {
        let topology = try TopologyLoader.load(path: directory.appendingPathComponent("topology.yaml").path).get()
        // Per key: the fixed-key and random-key runs of one scenario run in parallel.
        let out = Repository.temporaryDirectory("scenario-\(name)-\(hashKey == .fixed ? "fixed" : "random")")
        defer { try? FileManager.default.removeItem(at: out) }
        var replay = Replay(topology: topology, inputs: pcaps("in"), outputDirectory: out.path, expectations: pcaps("expect"))
        replay.hashKey = hashKey
        let summary = try replay.run()
        // Every port of the topology got an output capture, readable by libpcap.
        for port in topology.ports {
            let path = out.appendingPathComponent("\(port.name).pcap").path
            var linkType = PcapReader.LinkType.ethernet
            if case .vxlan = port.attachment { linkType = .rawIPv4 }
            #expect(throws: Never.self) { _ = try PcapReader(path: path, linkType: linkType).readAll() }
        }
        return summary
    }
}

@Suite struct ScenarioTests {
    static let scenarioNames = Repository.folders(in: Repository.scenarios)
    static let exampleNames = Repository.folders(in: Repository.examples)

    @Test func scenariosAreThere() {
        // 30 capture scenarios; four more became packet tests (TapestryPacketTestTests/Scenarios).
        #expect(Self.scenarioNames.count >= 30, "found \(Self.scenarioNames)")
        #expect(Self.exampleNames.contains("office"))
    }

    @Test(arguments: scenarioNames)
    func scenario(_ name: String) throws {
        try check(Scenario(directory: Repository.scenarios.appendingPathComponent(name)))
    }

    @Test(arguments: exampleNames)
    func example(_ name: String) throws {
        try check(Scenario(directory: Repository.examples.appendingPathComponent(name)))
    }

    /// The tables' hash key changes no result: every scenario again, with a random key.
    @Test(arguments: scenarioNames)
    func scenarioWithARandomHashKey(_ name: String) throws {
        try check(Scenario(directory: Repository.scenarios.appendingPathComponent(name)), hashKey: .random())
    }

    func check(_ scenario: Scenario, hashKey: HashKey = .fixed) throws {
        let readme = try String(contentsOf: scenario.directory.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(!readme.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        let summary = try scenario.run(hashKey: hashKey)
        #expect(summary.expectationsChecked == scenario.pcaps("expect").count)
        #expect(summary.expectationsChecked > 0)
        #expect(summary.differences == [], "\(scenario.name): \(summary.differences.map(\.text).joined(separator: "\n"))")
        let drops = Dictionary(uniqueKeysWithValues: summary.drops.map { ($0.key.name, $0.value) })
        #expect(drops == scenario.expectedDrops, "\(scenario.name) drops")
        if let unresolved = scenario.expectedSummary["lb_unresolved"] as? Int {
            #expect(summary.loadBalancerUnresolved == UInt64(unresolved), "\(scenario.name) frames held for ARP")
        }
        if let released = scenario.expectedSummary["lb_released"] as? Int, let expired = scenario.expectedSummary["lb_expired"] as? Int {
            #expect(summary.loadBalancerReleased == UInt64(released) && summary.loadBalancerExpired == UInt64(expired), "\(scenario.name) held frames")
            #expect(summary.text.contains("(\(released) sent when it answered, \(expired) dropped after 3 s)"), "\(summary.text)")
        }
    }

    /// The bundled office topology is the one the example replays.
    @Test func officeTopologyMatchesExample() throws {
        let shipped = try String(contentsOf: Repository.root.appendingPathComponent("topologies/office.yaml"), encoding: .utf8)
        let example = try String(contentsOf: Repository.examples.appendingPathComponent("office/topology.yaml"), encoding: .utf8)
        #expect(shipped == example)
    }
}
