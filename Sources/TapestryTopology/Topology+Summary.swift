extension Topology {
    /// One paragraph describing the topology, printed by `tapestry check`.
    public var summary: String {
        var parts: [String] = []
        // VNIs matter only where a tunnel carries the networks.
        let tunnels = ports.contains { if case .vxlan = $0.attachment { true } else { false } }
        let networkList = networks.map { "\($0.name) (VLAN \($0.vlan)\(tunnels ? ", VNI \($0.vni)" : ""))" }
            .joined(separator: ", ")
        parts.append("\(networks.count) network\(networks.count == 1 ? "" : "s"): \(networkList)")
        let access = ports.filter { if case .access = $0.mode { return true } else { return false } }.count
        let trunks = ports.count - access
        var kinds: [String: Int] = [:]
        for port in ports {
            switch port.attachment {
            case .tap: kinds["tap", default: 0] += 1
            case .socket: kinds["socket", default: 0] += 1
            case .interface: kinds["interface", default: 0] += 1
            case .vxlan: kinds["vxlan", default: 0] += 1
            }
        }
        let kindText = kinds.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        parts.append("\(ports.count) port\(ports.count == 1 ? "" : "s") (\(access) access, \(trunks) trunk; \(kindText))")
        parts.append("MAC table of \(macTableSize) entries aging after \(macAgingSeconds) s")
        if let firewall {
            parts.append(
                "firewall with default \(firewall.defaultAction.rawValue), \(firewall.rules.count) rule\(firewall.rules.count == 1 ? "" : "s") and at most \(firewall.maxConnections) connections"
            )
        } else {
            parts.append("no firewall (every connection allowed)")
        }
        if !loadBalancers.isEmpty {
            let list = loadBalancers.map {
                "\($0.name) \($0.vip.withPort($0.port))/\($0.proto.rawValue) over \($0.backends.count) backend\($0.backends.count == 1 ? "" : "s")"
            }.joined(separator: ", ")
            parts.append("load balancer\(loadBalancers.count == 1 ? "" : "s") \(list)")
        }
        return "Topology '\(name)' is valid: " + parts.joined(separator: "; ") + "."
    }
}
