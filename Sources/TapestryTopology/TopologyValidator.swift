import TapestryWire
import Yams

/// Builds a `Topology` from a YAML tree, section by section, recording every problem.
struct TopologyValidator {
    var reader: YAMLReader

    static let topLevelKeys = [
        "version", "name", "mac_aging", "mac_table_size", "control", "metrics", "networks", "ports", "firewall",
        "load_balancers",
    ]

    mutating func topology(_ root: Node) -> Topology? {
        guard let top = reader.entries(root, what: "the topology", allowed: Self.topLevelKeys) else { return nil }
        var topology = Topology(name: "")
        if let version = top["version"] {
            if let value = reader.integer(version.value, what: "version", range: 1...Int.max), value != 1 {
                reader.error(version.value, "unsupported topology version \(value); this Tapestry reads version 1")
            }
        }
        if let entry = top["name"] {
            if let name = reader.string(entry.value, what: "name") {
                if Self.isSwitchName(name) {
                    topology.name = name
                } else {
                    reader.error(
                        entry.value,
                        "name '\(name)' must be 1-15 characters: a lowercase letter, then lowercase letters, digits or '-'")
                }
            }
        } else {
            reader.error(root, "missing required key 'name'")
        }
        if let entry = top["mac_aging"] {
            topology.macAgingSeconds =
                reader.integer(entry.value, what: "mac_aging (seconds)", range: 1...1_000_000) ?? 300
        }
        if let entry = top["mac_table_size"] {
            topology.macTableSize = reader.integer(entry.value, what: "mac_table_size", range: 1...16_777_216) ?? 8192
        }
        if let entry = top["control"], let path = reader.string(entry.value, what: "control") {
            if !path.hasPrefix("/") {
                reader.error(entry.value, "control must be an absolute path to a unix socket")
            } else if path.utf8.count > 107 {
                reader.error(entry.value, "control path is longer than a unix socket allows (107 bytes)")
            } else {
                topology.control = path
            }
        }
        if let entry = top["metrics"], let text = reader.string(entry.value, what: "metrics") {
            if let address = Self.socketAddress(text) {
                topology.metrics = address
            } else {
                reader.error(entry.value, "metrics must be HOST:PORT with an IP address and a port 1-65535, like 127.0.0.1:9108")
            }
        }
        if let entry = top["networks"] {
            topology.networks = networks(entry.value)
        } else {
            reader.error(root, "missing required key 'networks'")
        }
        // Names declared under `networks`, valid or not: a network with a bad VLAN is reported once,
        // not again at every port that names it.
        var networkNames = Set(topology.networks.map(\.name))
        if let entry = top["networks"], case .mapping = entry.value {
            // Through entries (quietly: networks() reported the problems): a merge key (<<) is not
            // a network, the networks it brings in are.
            for network in reader.quietEntries(entry.value) { networkNames.insert(network.key) }
        }
        if let entry = top["ports"] {
            topology.ports = ports(entry.value, networks: networkNames)
        } else {
            reader.error(root, "missing required key 'ports'")
        }
        if let entry = top["firewall"] {
            topology.firewall = firewall(entry.value, networks: networkNames)
        }
        if let entry = top["load_balancers"] {
            topology.loadBalancers = loadBalancers(
                entry.value, switchName: topology.name, networks: networkNames)
        }
        return topology
    }

    static func isSwitchName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...15).contains(bytes.count), (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(bytes[0]) else {
            return false
        }
        return bytes.allSatisfy {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                || $0 == UInt8(ascii: "-")
        }
    }

    /// Names of networks, ports and load balancers: a letter, then letters, digits, '-' or '_', at most 32.
    static func isObjectName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 32,
            first.isASCII, first.properties.isAlphabetic
        else { return false }
        return name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_")
        }
    }

    /// `IPv4:PORT` or `[IPv6]:PORT`.
    static func socketAddress(_ text: String) -> Topology.SocketAddress? {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return nil
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
            guard IPv6Address(host) != nil else { return nil }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard IPv4Address(host) != nil else { return nil }
        }
        guard let port = UInt16(portText), port > 0 else { return nil }
        return Topology.SocketAddress(host: String(host), port: port)
    }

    /// Reports names whose mapping entries repeat or are malformed, returning the good ones.
    mutating func checkedName(_ entry: YAMLReader.Entry, kind: String) -> String? {
        guard Self.isObjectName(entry.key) else {
            reader.error(
                entry.keyNode,
                "\(kind) name '\(entry.key)' must start with a letter and use letters, digits, '-' or '_' (at most 32)")
            return nil
        }
        return entry.key
    }

    // MARK: networks

    mutating func networks(_ node: Node) -> [Topology.Network] {
        guard let list = reader.entries(node, what: "networks") else { return [] }
        if list.isEmpty { reader.error(node, "networks must define at least one network") }
        var result: [Topology.Network] = []
        var vlanOwners: [Int: String] = [:]
        var vniOwners: [Int: String] = [:]
        for entry in list {
            let name = checkedName(entry, kind: "network")
            guard let fields = reader.entries(entry.value, what: "network '\(entry.key)'", allowed: ["vlan", "vni"]) else {
                continue
            }
            guard let vlanEntry = fields["vlan"] else {
                reader.error(entry.value, "network '\(entry.key)' needs a 'vlan' (1-4094)")
                continue
            }
            guard let vlan = reader.integer(vlanEntry.value, what: "vlan", range: 1...4094) else { continue }
            if let owner = vlanOwners[vlan] {
                reader.error(vlanEntry.value, "VLAN \(vlan) is already used by network '\(owner)'")
                continue
            }
            vlanOwners[vlan] = entry.key
            var vni = vlan
            if let vniEntry = fields["vni"] {
                guard let value = reader.integer(vniEntry.value, what: "vni", range: 1...Int(VXLAN.maxVNI)) else { continue }
                vni = value
            }
            if let owner = vniOwners[vni] {
                let place = fields["vni"]?.value ?? vlanEntry.value
                reader.error(place, "VNI \(vni) is already used by network '\(owner)'" + (fields["vni"] == nil ? " (a network's vni defaults to its vlan)" : ""))
                continue
            }
            vniOwners[vni] = entry.key
            if let name { result.append(Topology.Network(name: name, vlan: UInt16(vlan), vni: UInt32(vni))) }
        }
        return result
    }

    // MARK: ports

    /// The most ports a topology may have (docs/topology.md).
    static let maxPorts = 1024

    static let portKeys = ["tap", "socket", "interface", "vxlan", "network", "trunk", "native", "netns", "mac_limit"]
        + socketAccessKeys

    mutating func ports(_ node: Node, networks: Set<String>) -> [Topology.Port] {
        guard let list = reader.entries(node, what: "ports") else { return [] }
        if list.isEmpty { reader.error(node, "ports must define at least one port") }
        if list.count > Self.maxPorts {
            // PortID is 16 bits, and every port costs a batch of frame buffers: refuse here, with
            // a position, rather than trap or exhaust memory building the datapath.
            reader.error(node, "ports defines \(list.count) ports; at most \(Self.maxPorts) are allowed")
            return []
        }
        var result: [Topology.Port] = []
        var devices: [String: String] = [:]  // attachment text -> port name
        for entry in list {
            let name = checkedName(entry, kind: "port")
            let what = "port '\(entry.key)'"
            guard let fields = reader.entries(entry.value, what: what, allowed: Self.portKeys) else { continue }
            let attachment = portAttachment(entry, fields, what: what, devices: &devices)
            let mode = portMode(entry, fields, what: what, networks: networks)
            var netns: String?
            if let netnsEntry = fields["netns"], let value = reader.string(netnsEntry.value, what: "netns") {
                if attachment?.takesNetns == true {
                    if value.contains("/") || value == "." || value == ".." || value.utf8.count > 255 {
                        reader.error(netnsEntry.value, "netns '\(value)' is not a valid namespace name")
                    } else {
                        netns = value
                    }
                } else if attachment != nil {
                    reader.error(netnsEntry.keyNode, "netns applies to tap and vxlan ports only (\(what) is not one)")
                }
            }
            let macLimit = fields["mac_limit"].flatMap {
                reader.integer($0.value, what: "mac_limit", range: 1...16_777_216)
            }
            let access = socketAccess(fields, attachment, what: what)
            if case .vxlan? = attachment, let native = fields["native"] {
                reader.error(native.keyNode, "'native' does not apply to vxlan ports: every frame on a tunnel carries its network's VNI")
                continue
            }
            if let name, let attachment, let mode, let access {
                result.append(
                    Topology.Port(name: name, attachment: attachment, mode: mode, netns: netns, macLimit: macLimit, access: access))
            }
        }
        return result
    }

    private mutating func portAttachment(
        _ entry: YAMLReader.Entry, _ fields: [String: YAMLReader.Entry], what: String, devices: inout [String: String]
    ) -> Topology.Port.Attachment? {
        let present = ["tap", "socket", "interface", "vxlan"].compactMap { fields[$0] }.sorted {
            ($0.keyNode.mark?.line ?? 0, $0.keyNode.mark?.column ?? 0)
                < ($1.keyNode.mark?.line ?? 0, $1.keyNode.mark?.column ?? 0)
        }
        guard let chosen = present.first else {
            reader.error(entry.value, "\(what) needs one of 'tap', 'socket', 'interface' or 'vxlan'")
            return nil
        }
        if present.count > 1 {
            reader.error(present[1].keyNode, "\(what) has both '\(present[0].key)' and '\(present[1].key)'; use exactly one")
            return nil
        }
        if chosen.key == "vxlan" {
            // Two tunnels may share local:port in different namespaces (the value is checked below).
            var netns = ""
            if case .scalar(let scalar)? = fields["netns"]?.value { netns = scalar.string }
            return vxlanTunnel(chosen, owner: entry.key, netns: netns, devices: &devices).map { .vxlan($0) }
        }
        guard let value = reader.string(chosen.value, what: chosen.key) else { return nil }
        let deviceKey = "\(chosen.key):\(value)"
        if let owner = devices[deviceKey] {
            reader.error(chosen.value, "\(chosen.key) '\(value)' is already used by port '\(owner)'")
            return nil
        }
        devices[deviceKey] = entry.key
        switch chosen.key {
        case "tap", "interface":
            guard Self.isInterfaceName(value) else {
                reader.error(
                    chosen.value,
                    "\(chosen.key) name '\(value)' must be 1-15 characters without '/', ':' or spaces (the kernel's limit)")
                return nil
            }
            return chosen.key == "tap" ? .tap(value) : .interface(value)
        default:
            let endpoint: Topology.SocketEndpoint
            if value.hasPrefix("dgram:") {
                endpoint = .unixDatagram(path: String(value.dropFirst("dgram:".count)))
            } else if value.hasPrefix("/") {
                endpoint = .unixStream(path: value)
            } else if let address = Self.socketAddress(value) {
                endpoint = .tcpStream(address)
            } else {
                reader.error(
                    chosen.value,
                    "socket must be an absolute unix socket path, IP:PORT or dgram:/PATH, not '\(value)'")
                return nil
            }
            if let path = endpoint.path {
                guard path.hasPrefix("/") else {
                    reader.error(chosen.value, "a dgram socket needs an absolute path, as in dgram:/run/tapestry/vm.sock")
                    return nil
                }
                guard path.utf8.count <= 107 else {
                    reader.error(chosen.value, "socket path is longer than a unix socket allows (107 bytes)")
                    return nil
                }
                // A stream and a datagram port cannot share one file.
                if let owner = devices["socket-path:\(path)"] {
                    reader.error(chosen.value, "socket path '\(path)' is already used by port '\(owner)'")
                    return nil
                }
                devices["socket-path:\(path)"] = entry.key
            }
            return .socket(endpoint)
        }
    }

    static func isInterfaceName(_ name: String) -> Bool {
        (1...15).contains(name.utf8.count) && name != "." && name != ".."
            && !name.contains { $0 == "/" || $0 == ":" || $0.isWhitespace }
    }

    private mutating func portMode(
        _ entry: YAMLReader.Entry, _ fields: [String: YAMLReader.Entry], what: String, networks: Set<String>
    ) -> Topology.Port.Mode? {
        switch (fields["network"], fields["trunk"]) {
        case (nil, nil):
            reader.error(entry.value, "\(what) needs 'network' (access port) or 'trunk' (trunk port)")
            if let native = fields["native"] { reader.error(native.keyNode, "'native' applies to trunk ports only") }
            return nil
        case (let network?, let trunk?):
            let later = (network.keyNode.mark?.line ?? 0, network.keyNode.mark?.column ?? 0)
                > (trunk.keyNode.mark?.line ?? 0, trunk.keyNode.mark?.column ?? 0) ? network : trunk
            reader.error(later.keyNode, "\(what) has both 'network' and 'trunk'; a port is either access or trunk")
            return nil
        case (let network?, nil):
            if let native = fields["native"] {
                reader.error(native.keyNode, "'native' applies to trunk ports only; \(what) is an access port")
                return nil
            }
            guard let name = reader.string(network.value, what: "network") else { return nil }
            guard networks.contains(name) else {
                reader.undefinedNetwork(name, at: network.value, networks: networks)
                return nil
            }
            return .access(network: name)
        case (nil, let trunk?):
            guard let items = reader.sequence(trunk.value, what: "trunk") else { return nil }
            if items.isEmpty {
                reader.error(trunk.value, "trunk must list at least one network")
                return nil
            }
            var names: [String] = []
            var valid = true
            for item in items {
                guard let name = reader.string(item, what: "a trunk network") else {
                    valid = false
                    continue
                }
                if !networks.contains(name) {
                    reader.undefinedNetwork(name, at: item, networks: networks)
                    valid = false
                } else if names.contains(name) {
                    reader.error(item, "network '\(name)' is listed twice in this trunk")
                    valid = false
                } else {
                    names.append(name)
                }
            }
            var native: String?
            if let nativeEntry = fields["native"], let name = reader.string(nativeEntry.value, what: "native") {
                if !networks.contains(name) {
                    reader.undefinedNetwork(name, at: nativeEntry.value, networks: networks)
                    valid = false
                } else if !names.contains(name) && valid {
                    reader.error(nativeEntry.value, "native network '\(name)' must be one of the trunk's networks")
                    valid = false
                } else {
                    native = name
                }
            }
            return valid ? .trunk(networks: names, native: native) : nil
        }
    }
}
