import TapestryDatapath
import TapestryTopology
import TapestryWire

extension DatapathConfiguration {
    /// Resolves a validated topology's names to the datapath's indices (ports and networks keep
    /// the file's order).
    public init(topology: Topology) {
        let networkIndex = Dictionary(
            uniqueKeysWithValues: topology.networks.enumerated().map { ($1.name, NetworkID($0)) })
        let ports = topology.ports.map { port -> Port in
            var tunnel: Tunnel?
            if case .vxlan(let vxlan) = port.attachment {
                tunnel = Tunnel(local: vxlan.local, remotes: vxlan.remotes, udpPort: vxlan.port, mtu: vxlan.mtu)
            }
            switch port.mode {
            case .access(let network):
                return Port(
                    name: port.name, mode: .access(networkIndex[network]!), macLimit: port.macLimit ?? 0, tunnel: tunnel)
            case .trunk(let networks, let native):
                return Port(
                    name: port.name,
                    mode: .trunk(networks.map { networkIndex[$0]! }, native: native.map { networkIndex[$0]! }),
                    macLimit: port.macLimit ?? 0, tunnel: tunnel)
            }
        }
        self.init(
            networks: topology.networks.map { Network(name: $0.name, vid: $0.vlan, vni: $0.vni) }, ports: ports,
            macAgingSeconds: topology.macAgingSeconds, macTableSize: topology.macTableSize,
            firewall: topology.firewall.map { FirewallConfiguration(topology: $0, networks: networkIndex) },
            loadBalancers: topology.loadBalancers.map { balancer in
                LoadBalancerConfiguration(
                    name: balancer.name, network: networkIndex[balancer.network]!, vip: balancer.vip, port: balancer.port,
                    proto: balancer.proto == .tcp ? IPProtocol.tcp : IPProtocol.udp, mac: balancer.mac,
                    backends: balancer.backends.map { .init(address: $0.address, port: $0.port, weight: $0.weight) },
                    health: balancer.health.map {
                        .init(
                            probe: $0.probe == .tcp ? .tcp : $0.probe == .icmp ? .icmp : .arp,
                            interval: Int64($0.interval) * 1_000_000_000, timeout: Int64($0.timeout) * 1_000_000_000,
                            rise: $0.rise, fall: $0.fall)
                    },
                    affinity: balancer.affinity.map { Int64($0) * 1_000_000_000 })
            })
    }
}

extension FirewallConfiguration {
    public init(topology firewall: Topology.Firewall, networks: [String: NetworkID]) {
        func prefix(_ value: IPPrefix) -> Prefix {
            switch value {
            case .v4(let address, let length): return .ipv4(address.rawValue, length: length)
            case .v6(let address, let length): return .ipv6(high: address.high, low: address.low, length: length)
            }
        }
        let rules = firewall.rules.map { rule -> Rule in
            let proto: UInt8?
            switch rule.proto {
            case .tcp: proto = IPProtocol.tcp
            case .udp: proto = IPProtocol.udp
            case .icmp: proto = IPProtocol.icmp
            case .icmpv6: proto = IPProtocol.icmpv6
            case .any: proto = nil
            }
            return Rule(
                action: rule.action == .allow ? .allow : .drop, proto: proto, sources: rule.sources.map(prefix),
                destinations: rule.destinations.map(prefix), sourcePorts: rule.sourcePorts,
                destinationPorts: rule.destinationPorts, network: rule.network.map { networks[$0]! }, log: rule.log)
        }
        self.init(
            defaultAction: firewall.defaultAction == .allow ? .allow : .drop, maxConnections: firewall.maxConnections,
            timeouts: Timeouts(seconds: firewall.timeouts), rules: rules, logDefault: firewall.logDefault)
    }
}
