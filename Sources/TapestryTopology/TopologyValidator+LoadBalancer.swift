import TapestryWire
import Yams

extension TopologyValidator {
    static let loadBalancerKeys = ["network", "vip", "port", "proto", "mac", "backends", "health", "affinity"]
    static let healthKeys = ["probe", "interval", "timeout", "rise", "fall"]

    mutating func loadBalancers(_ node: Node, switchName: String, networks: Set<String>) -> [Topology.LoadBalancer] {
        guard let list = reader.entries(node, what: "load_balancers") else { return [] }
        if list.count > Topology.maxLoadBalancers {
            reader.error(node, "at most \(Topology.maxLoadBalancers) load balancers, not \(list.count)")
        }
        var result: [Topology.LoadBalancer] = []
        var services: [String: String] = [:]  // "network vip port proto" -> LB name
        for entry in list {
            let name = checkedName(entry, kind: "load balancer")
            let what = "load balancer '\(entry.key)'"
            guard let fields = reader.entries(entry.value, what: what, allowed: Self.loadBalancerKeys) else { continue }
            var valid = name != nil
            for key in ["network", "vip", "port", "backends"] where fields[key] == nil {
                reader.error(entry.value, "\(what) needs '\(key)'")
                valid = false
            }
            var network = ""
            if let value = fields["network"], let text = reader.string(value.value, what: "network") {
                if networks.contains(text) {
                    network = text
                } else {
                    reader.undefinedNetwork(text, at: value.value, networks: networks)
                    valid = false
                }
            }
            var vip = IPAddress.v4(IPv4Address(rawValue: 0))
            var vipPrefix: IPPrefix? = nil
            var vipKnown = false
            if let value = fields["vip"], let text = reader.string(value.value, what: "vip") {
                let parts = text.split(separator: "/", omittingEmptySubsequences: false)
                if let address = IPAddress(parts[0]), parts.count <= 2 {
                    vip = address
                    vipKnown = true
                    if !address.isUnicastHost {
                        reader.error(value.value, "vip '\(text)' must be a unicast address (not unspecified, multicast, broadcast or loopback)")
                        valid = false
                    }
                    let bits = address.isIPv6 ? 128 : 32
                    if parts.count == 2 {
                        if let length = Int(parts[1]), (1...bits).contains(length), parts[1].allSatisfy(\.isNumber) {
                            vipPrefix = Self.network(of: address, length: length)
                        } else {
                            reader.error(value.value, "vip '\(text)' has an invalid prefix length (1-\(bits))")
                            valid = false
                        }
                    }
                } else if let ipv4 = Self.mappedIPv4(parts[0]) {
                    reader.error(value.value, "vip '\(text)' is an IPv4-mapped IPv6 address; write the IPv4 address \(ipv4)")
                    valid = false
                } else {
                    reader.error(
                        value.value,
                        "vip '\(text)' is not an IPv4 or IPv6 address (like 10.0.10.100, fd00:10::100, or with a prefix: 10.0.10.100/24)")
                    valid = false
                }
            }
            var port: UInt16 = 0
            if let value = fields["port"] {
                if let number = reader.integer(value.value, what: "port", range: 1...65535) {
                    port = UInt16(number)
                } else {
                    valid = false
                }
            }
            var proto = Topology.LoadBalancer.Proto.tcp
            if let value = fields["proto"], let text = reader.string(value.value, what: "proto") {
                if let parsed = Topology.LoadBalancer.Proto(rawValue: text) {
                    proto = parsed
                } else {
                    reader.error(value.value, "proto must be 'tcp' or 'udp', not '\(text)'")
                    valid = false
                }
            }
            var mac = Topology.derivedMAC(switchName: switchName, loadBalancer: entry.key)
            if let value = fields["mac"], let text = reader.string(value.value, what: "mac") {
                if let parsed = MACAddress(text), !parsed.isMulticast, parsed != .zero {
                    mac = parsed
                } else {
                    reader.error(value.value, "mac '\(text)' must be a unicast MAC address like 02:00:00:00:01:00")
                    valid = false
                }
            }
            var backends: [Topology.LoadBalancer.Backend] = []
            if let value = fields["backends"], let items = reader.sequence(value.value, what: "backends") {
                if items.count > Topology.maxBackends {
                    reader.error(value.value, "at most \(Topology.maxBackends) backends per load balancer, not \(items.count)")
                }
                if items.isEmpty {
                    reader.error(value.value, "backends must list at least one backend")
                    valid = false
                }
                for item in items {
                    guard let (backend, addressNode) = backend(item) else {
                        valid = false
                        continue
                    }
                    if backends.contains(where: { $0.address == backend.address && $0.port == backend.port }) {
                        reader.error(addressNode, "backend \(backend.address.withPort(backend.port)) is listed twice")
                        valid = false
                    } else if vipKnown, backend.address.isIPv6 != vip.isIPv6 {
                        reader.error(
                            addressNode,
                            "backend \(backend.address) is \(backend.address.isIPv6 ? "IPv6" : "IPv4") but the vip \(vip) is \(vip.isIPv6 ? "IPv6" : "IPv4"): a balancer's backends are of its VIP's family")
                        valid = false
                    } else if !backend.address.isUnicastHost {
                        reader.error(addressNode, "backend \(backend.address) must be a unicast address (not unspecified, multicast, broadcast or loopback)")
                        valid = false
                    } else if backend.address == vip {
                        reader.error(addressNode, "backend \(backend.address) is the VIP itself")
                        valid = false
                    } else if let vipPrefix, !vipPrefix.contains(backend.address) {
                        reader.error(addressNode, "backend \(backend.address) is outside the load balancer's network \(vipPrefix) (the vip's prefix)")
                        valid = false
                    } else {
                        backends.append(backend)
                    }
                }
            }
            var health: Topology.LoadBalancer.Health? = nil
            if let value = fields["health"] {
                health = self.health(value.value, what: what, proto: proto)
                if health == nil { valid = false }
            }
            var affinity: Int? = nil
            if let value = fields["affinity"] {
                affinity = reader.integer(value.value, what: "affinity", range: 1...86_400)
                if affinity == nil { valid = false }
            }
            if valid {
                let service = "\(network) \(vip) \(port) \(proto)"
                if let owner = services[service] {
                    reader.error(fields["vip"]?.value, "\(vip.withPort(port))/\(proto) is already served by load balancer '\(owner)'")
                    continue
                }
                services[service] = entry.key
                result.append(
                    Topology.LoadBalancer(
                        name: entry.key, network: network, vip: vip, port: port, proto: proto, mac: mac,
                        backends: backends, health: health, affinity: affinity))
            }
        }
        return result
    }

    /// `health: { probe: tcp|icmp|arp, interval: S, timeout: S, rise: N, fall: N }`, every key
    /// optional (`health: {}` is TCP probes every 2 s; ICMP for a UDP balancer, whose port a SYN
    /// cannot test).
    mutating func health(_ node: Node, what: String, proto: Topology.LoadBalancer.Proto) -> Topology.LoadBalancer.Health? {
        guard let fields = reader.entries(node, what: "the health of \(what)", allowed: Self.healthKeys) else { return nil }
        var health = Topology.LoadBalancer.Health()
        if proto == .udp { health.probe = .icmp }
        var valid = true
        if let value = fields["probe"], let text = reader.string(value.value, what: "probe") {
            if let probe = Topology.LoadBalancer.Health.Probe(rawValue: text) {
                health.probe = probe
                if probe == .tcp && proto == .udp {
                    reader.error(value.value, "probe 'tcp' sends a SYN to the backend's port, which a udp service does not answer: use icmp or arp")
                    valid = false
                }
            } else {
                reader.error(value.value, "probe must be 'tcp', 'icmp' or 'arp', not '\(text)'")
                valid = false
            }
        } else if fields["probe"] != nil {
            valid = false
        }
        func number(_ key: String, _ range: ClosedRange<Int>, into target: inout Int) {
            guard let value = fields[key] else { return }
            if let parsed = reader.integer(value.value, what: key, range: range) { target = parsed } else { valid = false }
        }
        number("interval", 1...3600, into: &health.interval)
        number("timeout", 1...3600, into: &health.timeout)
        number("rise", 1...100, into: &health.rise)
        number("fall", 1...100, into: &health.fall)
        if valid && health.timeout > health.interval {
            reader.error(fields["timeout"]?.value ?? node, "timeout (\(health.timeout) s) must not be longer than interval (\(health.interval) s): one probe per backend is outstanding at a time")
            valid = false
        }
        return valid ? health : nil
    }

    /// `"IP:PORT"` or `{ address: "IP:PORT", weight: N }`.
    private mutating func backend(_ node: Node) -> (Topology.LoadBalancer.Backend, Node)? {
        var addressNode = node
        var weight = 1
        if case .mapping = node {
            guard let fields = reader.entries(node, what: "a backend", allowed: ["address", "weight"]) else { return nil }
            guard let address = fields["address"] else {
                reader.error(node, "a backend needs 'address: IP:PORT'")
                return nil
            }
            addressNode = address.value
            if let value = fields["weight"] {
                guard let parsed = reader.integer(value.value, what: "weight", range: 1...1000) else { return nil }
                weight = parsed
            }
        }
        guard let text = reader.string(addressNode, what: "a backend") else { return nil }
        guard let (address, portText) = IPAddress.parseEndpoint(text) else {
            let inside = text.hasPrefix("[") ? text.dropFirst().prefix(while: { $0 != "]" }) : Substring(text)
            if let ipv4 = Self.mappedIPv4(inside) {
                reader.error(addressNode, "backend '\(text)' is an IPv4-mapped IPv6 address; write the IPv4 address \(ipv4) as IPv4:PORT")
            } else {
                reader.error(addressNode, "backend '\(text)' must be IPv4:PORT or [IPv6]:PORT, like 10.0.10.11:8080 or [fd00:10::11]:8080")
            }
            return nil
        }
        guard let port = UInt16(portText), port > 0, portText.allSatisfy(\.isNumber) else {
            reader.error(addressNode, "backend '\(text)' needs a port 1-65535")
            return nil
        }
        return (Topology.LoadBalancer.Backend(address: address, port: port, weight: weight), addressNode)
    }

    /// The IPv4 address an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) names, for the message
    /// that refuses it.
    static func mappedIPv4(_ text: Substring) -> IPv4Address? {
        guard let address = IPv6Address(text), IPAddress.isMapped(address) else { return nil }
        return IPv4Address(rawValue: UInt32(truncatingIfNeeded: address.low))
    }

    /// The prefix of `length` bits that holds `address`.
    static func network(of address: IPAddress, length: Int) -> IPPrefix {
        switch address {
        case .v4(let v4):
            let mask: UInt32 = ~UInt32(0) << (32 - length)
            return .v4(IPv4Address(rawValue: v4.rawValue & mask), length: length)
        case .v6(let v6):
            let (high, low) = IPPrefix.v6Mask(length)
            return .v6(IPv6Address(high: v6.high & high, low: v6.low & low), length: length)
        }
    }
}
