import TapestryDatapath
import TapestryTopology

extension DatapathConfiguration {
    /// Resolves a validated topology's names to the datapath's indices (ports and networks keep
    /// the file's order).
    public init(topology: Topology) {
        let networkIndex = Dictionary(
            uniqueKeysWithValues: topology.networks.enumerated().map { ($1.name, NetworkID($0)) })
        let ports = topology.ports.map { port -> Port in
            switch port.mode {
            case .access(let network):
                return Port(name: port.name, mode: .access(networkIndex[network]!))
            case .trunk(let networks, let native):
                return Port(
                    name: port.name,
                    mode: .trunk(networks.map { networkIndex[$0]! }, native: native.map { networkIndex[$0]! }))
            }
        }
        self.init(
            networks: topology.networks.map { Network(name: $0.name, vid: $0.vlan) }, ports: ports,
            macAgingSeconds: topology.macAgingSeconds, macTableSize: topology.macTableSize)
    }
}
