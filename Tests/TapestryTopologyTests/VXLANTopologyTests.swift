import Foundation
import Testing
import TapestryTopology
import TapestryWire

/// What a `vxlan:` port and a network's `vni` load as (the refusals are fixtures:
/// Fixtures/invalid/vxlan-errors.yaml).
@Suite struct VXLANTopologyTests {
    @Test func theValidFixtureLoadsWithItsDefaults() throws {
        let path = FixtureFiles.fixtures("valid").appendingPathComponent("vxlan.yaml").path
        let topology = try TopologyLoader.load(path: path).get()
        #expect(topology.networks.map(\.vni) == [10, 5020], "web's VNI defaults to its VLAN id")
        let port = try #require(topology.port(named: "dc2"))
        guard case .vxlan(let tunnel) = port.attachment else {
            Issue.record("dc2 is \(port.attachment)")
            return
        }
        #expect(tunnel.local == IPv4Address("10.0.99.1"))
        #expect(tunnel.remotes == [IPv4Address("10.0.99.2")!, IPv4Address("10.0.99.3")!])
        #expect(tunnel.port == 4789 && tunnel.mtu == 1550)
        #expect(port.netns == "underlay")
        #expect(topology.summary.contains("db (VLAN 20, VNI 5020)"))
    }

    @Test func portAndMTUDefault() throws {
        let yaml = """
            name: t
            networks: { web: { vlan: 10 } }
            ports:
              dc2: { vxlan: { local: 127.0.0.1, remotes: [127.0.0.2] }, network: web }
            """
        let topology = try TopologyLoader.parse(yaml: yaml, file: "t.yaml").get()
        guard case .vxlan(let tunnel)? = topology.ports.first?.attachment else {
            Issue.record("not a vxlan port")
            return
        }
        #expect(tunnel.port == 4789 && tunnel.mtu == 1500 && tunnel.local == IPv4Address("127.0.0.1"))
    }

    @Test func atMost256Remotes() {
        let list = (0..<257).map { "10.1.\($0 / 250).\($0 % 250 + 1)" }.joined(separator: ", ")
        let yaml = """
            name: t
            networks: { web: { vlan: 10 } }
            ports:
              dc2: { vxlan: { local: 10.0.0.1, remotes: [\(list)] }, network: web }
            """
        guard case .failure(let errors) = TopologyLoader.parse(yaml: yaml, file: "t.yaml") else {
            Issue.record("257 remotes loaded")
            return
        }
        #expect(errors.description.contains("remotes lists 257 endpoints; at most 256"), "\(errors)")
    }
}
