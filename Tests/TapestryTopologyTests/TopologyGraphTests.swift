import Foundation
import Testing
@testable import TapestryTopology

/// `tapestry graph`'s pictures: every example topology drawn whole, and no name can break out of
/// its label.
@Suite struct TopologyGraphTests {
    @Test func everyExampleTopologyIsDrawnWhole() throws {
        let directory = FixtureFiles.topologies()
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.count >= 7)
        for file in files {
            guard case .success(let topology) = TopologyLoader.load(path: directory.appendingPathComponent(file).path) else {
                Issue.record("\(file) must load")
                continue
            }
            let graph = TopologyGraph(topology)
            let dot = graph.dot
            let mermaid = graph.mermaid
            for name in topology.networks.map(\.name) + topology.ports.map(\.name) {
                #expect(dot.contains("label=\"\(name)\\n") && mermaid.contains("\"\(name)<br>"), "\(file): \(name)")
            }
            for balancer in topology.loadBalancers {
                #expect(dot.contains("load balancer \(balancer.name)\\n\(balancer.vip.withPort(balancer.port))"), "\(file): \(balancer.name)")
            }
            // One line per network a port carries, one per balancer, and the firewall's.
            let links = topology.ports.reduce(0) { count, port in
                if case .trunk(let networks, _) = port.mode { return count + networks.count }
                return count + 1
            }
            let firewallLinks = topology.firewall == nil ? 0 : topology.networks.count
            let expected = links + topology.loadBalancers.count
            #expect(dot.components(separatedBy: " -- ").count - 1 >= expected && dot.components(separatedBy: " -- ").count - 1 <= expected + firewallLinks, "\(file)")
            #expect(dot.hasPrefix("graph \"\(topology.name)\" {\n") && dot.hasSuffix("\n}\n"))
        }
    }

    @Test func namesCannotBreakOutOfTheirLabels() {
        #expect(TopologyGraph.dotString("a\"b\\c\nd\u{1}e") == "\"a\\\"b\\\\c\\nde\"")
        #expect(TopologyGraph.mermaidText("x\"]; click y<b>#|\u{7F}z") == "x#quot;]; click y#lt;b#gt;#35;#124;z")
    }

    /// Identifiers are positions, so a network called `graph` or `end` (words DOT and Mermaid
    /// reserve) draws as any other.
    @Test func reservedWordsAsNamesAreLabelsOnly() throws {
        let yaml = """
            name: end
            networks: { graph: { vlan: 10 }, subgraph: { vlan: 20 } }
            ports:
              end: { tap: tap-end, trunk: [graph, subgraph], native: graph }
            """
        guard case .success(let topology) = TopologyLoader.parse(yaml: yaml, file: "t.yaml") else {
            Issue.record("the topology must load")
            return
        }
        let graph = TopologyGraph(topology)
        #expect(graph.dot.contains("p0 -- n0 [label=\"native\"];") && graph.dot.contains("p0 -- n1 [label=\"tagged\"];"))
        #expect(graph.mermaid.contains("n0([\"graph<br>VLAN 10\"])") && graph.mermaid.contains("p0 ---|\"tagged\"| n1"))
    }
}
