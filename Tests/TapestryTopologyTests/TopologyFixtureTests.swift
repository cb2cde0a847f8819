import Foundation
import TapestryTopology
import Testing

/// Fixture files next to this test file, and the repository's `topologies/` folder.
///
/// Every invalid fixture starts with one `# expect: LINE:COLUMN: SUBSTRING` line per diagnostic the
/// loader must produce (positions count the header lines too). The loader must report exactly those
/// positions, each with a message containing its substring.
enum FixtureFiles {
    static func testDirectory(filePath: String = #filePath) -> URL {
        URL(fileURLWithPath: filePath).deletingLastPathComponent()
    }

    static func fixtures(_ kind: String) -> URL {
        testDirectory().appendingPathComponent("Fixtures/\(kind)")
    }

    /// The repository's `topologies/` folder: two levels up from this file's directory.
    static func topologies() -> URL {
        testDirectory().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("topologies")
    }

    /// Sorted names of the YAML files in `directory` (empty when it cannot be listed).
    static func yamlFiles(in directory: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) }.sorted()
    }

    static func invalidNames() -> [String] { yamlFiles(in: fixtures("invalid")) }
    static func validNames() -> [String] { yamlFiles(in: fixtures("valid")) }
}

/// One `# expect: LINE:COLUMN: SUBSTRING` header line.
struct ExpectedDiagnostic: Hashable, CustomStringConvertible {
    var line: Int
    var column: Int
    var substring: String

    var position: Position { Position(line: line, column: column) }
    var description: String { "\(line):\(column): \(substring)" }

    static let prefix = "# expect:"

    /// The expectations of a fixture; a malformed `# expect:` line is recorded as an issue.
    static func parse(_ text: String, file: String) -> [ExpectedDiagnostic] {
        var result: [ExpectedDiagnostic] = []
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            guard rawLine.hasPrefix(prefix) else { continue }
            let parts = rawLine.dropFirst(prefix.count).split(separator: ":", maxSplits: 2)
            guard parts.count == 3,
                let line = Int(parts[0].trimmingCharacters(in: .whitespaces)),
                let column = Int(parts[1].trimmingCharacters(in: .whitespaces))
            else {
                Issue.record("\(file): malformed header '\(rawLine)'; want '# expect: LINE:COLUMN: SUBSTRING'")
                continue
            }
            let substring = parts[2].trimmingCharacters(in: .whitespaces)
            if substring.isEmpty { Issue.record("\(file): header '\(rawLine)' has no substring") }
            result.append(ExpectedDiagnostic(line: line, column: column, substring: substring))
        }
        return result
    }
}

struct Position: Hashable, Comparable, CustomStringConvertible {
    var line: Int
    var column: Int
    var description: String { "\(line):\(column)" }
    static func < (lhs: Position, rhs: Position) -> Bool { (lhs.line, lhs.column) < (rhs.line, rhs.column) }
}

@Suite("Topology fixtures")
struct TopologyFixtureTests {
    @Test("the fixture folders are found and populated")
    func fixturesArePresent() {
        #expect(FixtureFiles.invalidNames().count >= 22, "invalid fixtures in \(FixtureFiles.fixtures("invalid").path)")
        #expect(FixtureFiles.validNames().count >= 3, "valid fixtures in \(FixtureFiles.fixtures("valid").path)")
    }

    @Test("an invalid topology is rejected with exactly the expected diagnostics", arguments: FixtureFiles.invalidNames())
    func invalidFixture(name: String) throws {
        let path = FixtureFiles.fixtures("invalid").appendingPathComponent(name).path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let expectations = ExpectedDiagnostic.parse(text, file: name)
        #expect(!expectations.isEmpty, "\(name) has no '# expect:' header")

        let errors: TopologyErrors
        switch TopologyLoader.load(path: path) {
        case .success:
            Issue.record("\(name) loaded, but it must be rejected with:\n\(expectations.map(\.description).joined(separator: "\n"))")
            return
        case .failure(let failure):
            errors = failure
        }
        let diagnostics = errors.diagnostics
        #expect(!diagnostics.isEmpty, "\(name) failed without any diagnostic")

        let actual = Set(diagnostics.map { Position(line: $0.line, column: $0.column) })
        let expected = Set(expectations.map(\.position))
        #expect(
            actual == expected,
            """
            \(name): diagnostic positions differ
              expected: \(expected.sorted())
              actual:   \(actual.sorted())
            \(errors.description)
            """)

        for expectation in expectations {
            let here = diagnostics.filter { $0.line == expectation.line && $0.column == expectation.column }
            #expect(
                here.contains { $0.message.contains(expectation.substring) },
                "\(name): no diagnostic at \(expectation.position) contains '\(expectation.substring)'\n\(errors.description)")
        }

        for diagnostic in diagnostics {
            #expect(diagnostic.file == path)
            #expect(diagnostic.line >= 1 && diagnostic.column >= 1, "\(diagnostic.description)")
            #expect(diagnostic.description.hasPrefix("\(path):\(diagnostic.line):\(diagnostic.column): error: "))
            #expect(diagnostic.description == "\(path):\(diagnostic.line):\(diagnostic.column): error: \(diagnostic.message)")
        }
    }

    @Test("a valid topology loads", arguments: FixtureFiles.validNames())
    func validFixture(name: String) {
        let path = FixtureFiles.fixtures("valid").appendingPathComponent(name).path
        if case .failure(let errors) = TopologyLoader.load(path: path) {
            Issue.record("\(name) must load, but:\n\(errors.description)")
        }
    }

    @Test("every topology shipped in topologies/ loads")
    func shippedTopologiesLoad() {
        let directory = FixtureFiles.topologies()
        let names = FixtureFiles.yamlFiles(in: directory)
        #expect(names.contains { $0.hasSuffix(".yaml") }, "no .yaml file in \(directory.path)")
        for name in names {
            let path = directory.appendingPathComponent(name).path
            if case .failure(let errors) = TopologyLoader.load(path: path) {
                Issue.record("topologies/\(name) must load, but:\n\(errors.description)")
            }
        }
    }

    @Test("load balancer health: defaults, every key, the example")
    func loadBalancerHealth() throws {
        func health(_ text: String) -> Topology.LoadBalancer.Health?? {
            let yaml = """
                name: h
                networks: { web: { vlan: 10 } }
                ports: { a: { tap: ta, network: web } }
                load_balancers:
                  site: { network: web, vip: 10.0.10.100, port: 80, backends: [10.0.10.11:8080]\(text) }
                """
            guard case .success(let topology) = TopologyLoader.parse(yaml: yaml, file: "h.yaml") else { return .none }
            return .some(topology.loadBalancers.first?.health)
        }
        #expect(health("") == .some(nil), "no health: unchecked")
        #expect(health(", health: {}") == .some(Topology.LoadBalancer.Health()), "every key optional")
        var icmp = Topology.LoadBalancer.Health()
        icmp.probe = .icmp
        icmp.interval = 5
        icmp.timeout = 5
        icmp.rise = 1
        icmp.fall = 3
        #expect(health(", health: { probe: icmp, interval: 5, timeout: 5, rise: 1, fall: 3 }") == .some(icmp))
        #expect(health(", health: { fall: 0 }") == .none, "fall is 1-100")
        let path = FixtureFiles.topologies().appendingPathComponent("load-balancer.yaml").path
        guard case .success(let example) = TopologyLoader.load(path: path) else {
            Issue.record("topologies/load-balancer.yaml must load")
            return
        }
        #expect(example.loadBalancers.first?.health == Topology.LoadBalancer.Health())
    }

    @Test("socket endpoints: unix stream, TCP stream, unix datagram")
    func socketEndpoints() throws {
        let path = FixtureFiles.fixtures("valid").appendingPathComponent("full.yaml").path
        guard case .success(let topology) = TopologyLoader.load(path: path) else {
            Issue.record("full.yaml must load")
            return
        }
        #expect(topology.port(named: "vm3")?.attachment == .socket(.unixStream(path: "/run/tapestry/lab-vm3.sock")))
        #expect(topology.port(named: "vm4")?.attachment == .socket(.tcpStream(.init(host: "127.0.0.1", port: 7000))))
        #expect(topology.port(named: "vm5")?.attachment == .socket(.unixDatagram(path: "/run/tapestry/lab-vm5.sock")))
        #expect(topology.port(named: "host0")?.attachment == .interface("veth-host0"))
        #expect(Topology.SocketEndpoint.unixDatagram(path: "/x.sock").description == "dgram:/x.sock")
    }

    @Test("socket access: peers on TCP ports, mode and group on unix ports, 0600 by default")
    func socketAccess() {
        let path = FixtureFiles.fixtures("valid").appendingPathComponent("socket-access.yaml").path
        guard case .success(let topology) = TopologyLoader.load(path: path) else {
            Issue.record("socket-access.yaml must load")
            return
        }
        #expect(topology.port(named: "vm3")?.access == Topology.SocketAccess(peers: [], mode: 0o600, group: nil))
        #expect(topology.port(named: "vm4")?.access == Topology.SocketAccess(mode: 0o660, group: "root"))
        #expect(topology.port(named: "vm5")?.access.peers.map(\.description) == ["127.0.0.1"])
        #expect(topology.port(named: "vm6")?.access.peers.map(\.description) == ["::1", "10.0.0.0/8", "fd00::/8"])
        #expect(topology.port(named: "vm7")?.access == Topology.SocketAccess(mode: 0o620, group: "root"))
        #expect(topology.port(named: "vm8")?.access.mode == 0o600, "three digits are octal too")
    }
}
