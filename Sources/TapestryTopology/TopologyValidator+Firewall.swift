import Foundation
import TapestryWire
import Yams

extension TopologyValidator {
    static let firewallKeys = ["default", "max_connections", "timeouts", "rules"]
    static let ruleKeys = ["action", "proto", "src", "dst", "sport", "dport", "network"]

    mutating func firewall(_ node: Node, networks: Set<String>) -> Topology.Firewall? {
        guard let fields = reader.entries(node, what: "firewall", allowed: Self.firewallKeys) else { return nil }
        var firewall = Topology.Firewall(defaultAction: .allow)
        var valid = true
        if let entry = fields["default"] {
            if let action = action(entry.value, what: "default") { firewall.defaultAction = action } else { valid = false }
        } else {
            reader.error(node, "firewall needs 'default: allow' or 'default: drop' (what happens to connections no rule matches)")
            valid = false
        }
        if let entry = fields["max_connections"] {
            if let value = reader.integer(entry.value, what: "max_connections", range: 1...100_000_000) {
                firewall.maxConnections = value
            } else {
                valid = false
            }
        }
        if let entry = fields["timeouts"] {
            let names = Topology.Firewall.defaultTimeouts.map(\.name)
            if let timeouts = reader.entries(entry.value, what: "firewall timeouts", allowed: names) {
                for (name, timeout) in timeouts {
                    if let seconds = reader.integer(timeout.value, what: "timeout \(name)", range: 1...Int(Int32.max)) {
                        firewall.timeouts[name] = seconds
                    } else {
                        valid = false
                    }
                }
            } else {
                valid = false
            }
        }
        if let entry = fields["rules"], let items = reader.sequence(entry.value, what: "firewall rules") {
            for item in items {
                if let rule = rule(item, networks: networks) { firewall.rules.append(rule) } else { valid = false }
            }
        }
        return valid ? firewall : nil
    }

    private mutating func action(_ node: Node, what: String) -> Topology.Firewall.Action? {
        guard let text = reader.string(node, what: what) else { return nil }
        guard let action = Topology.Firewall.Action(rawValue: text) else {
            reader.error(node, "\(what) must be 'allow' or 'drop', not '\(text)'")
            return nil
        }
        return action
    }

    private mutating func rule(_ node: Node, networks: Set<String>) -> Topology.Rule? {
        guard let fields = reader.entries(node, what: "a firewall rule", allowed: Self.ruleKeys) else { return nil }
        guard let actionEntry = fields["action"] else {
            reader.error(node, "a firewall rule needs 'action: allow' or 'action: drop'")
            return nil
        }
        guard let ruleAction = action(actionEntry.value, what: "action") else { return nil }
        var rule = Topology.Rule(action: ruleAction)
        var valid = true
        var protoKnown = true
        if let entry = fields["proto"] {
            if let text = reader.string(entry.value, what: "proto"), let proto = Topology.Rule.Proto(rawValue: text) {
                rule.proto = proto
            } else {
                if case .scalar(let scalar) = entry.value, !scalar.string.isEmpty {
                    reader.error(entry.value, "proto must be one of tcp, udp, icmp, icmpv6, any; not '\(scalar.string)'")
                }
                valid = false
                protoKnown = false
            }
        }
        for (key, isSource) in [("src", true), ("dst", false)] {
            guard let entry = fields[key], let text = reader.string(entry.value, what: key) else { continue }
            switch IPPrefix.parse(text) {
            case .success(let prefix):
                if isSource { rule.source = prefix } else { rule.destination = prefix }
            case .failure(.hostBitsSet):
                reader.error(entry.value, "\(key) '\(text)' has bits set past its prefix length")
                valid = false
            case .failure(.badLength):
                reader.error(entry.value, "\(key) '\(text)' has an invalid prefix length")
                valid = false
            case .failure(.badAddress):
                reader.error(entry.value, "\(key) '\(text)' is not an IPv4 or IPv6 address or CIDR")
                valid = false
            }
        }
        if let source = rule.source, let destination = rule.destination, source.isV4 != destination.isV4 {
            reader.error(fields["dst"]?.value, "src and dst are of different address families")
            valid = false
        }
        let family = rule.source ?? rule.destination
        if let family, rule.proto == .icmp, !family.isV4 {
            reader.error(fields["proto"]?.value, "proto icmp is IPv4; use icmpv6 with IPv6 addresses")
            valid = false
        }
        if let family, rule.proto == .icmpv6, family.isV4 {
            reader.error(fields["proto"]?.value, "proto icmpv6 is IPv6; use icmp with IPv4 addresses")
            valid = false
        }
        for key in ["sport", "dport"] {
            guard let entry = fields[key], protoKnown else { continue }
            guard rule.proto == .tcp || rule.proto == .udp else {
                reader.error(entry.keyNode, "\(key) needs proto tcp or udp")
                valid = false
                continue
            }
            guard let range = portRange(entry.value, what: key) else {
                valid = false
                continue
            }
            if key == "sport" { rule.sourcePorts = range } else { rule.destinationPorts = range }
        }
        if let entry = fields["network"], let name = reader.string(entry.value, what: "network") {
            if networks.contains(name) {
                rule.network = name
            } else {
                reader.error(entry.value, "network '\(name)' is not defined under 'networks'")
                valid = false
            }
        }
        return valid ? rule : nil
    }

    /// A port (`5432`) or an inclusive range (`"1024-65535"`).
    private mutating func portRange(_ node: Node, what: String) -> ClosedRange<UInt16>? {
        guard case .scalar(let scalar) = node else {
            reader.error(node, "\(what) must be a port or a range like 1024-65535")
            return nil
        }
        let parts = scalar.string.split(separator: "-", omittingEmptySubsequences: false)
        let numbers = parts.map { UInt16($0.trimmingCharacters(in: .whitespaces)) }
        guard (1...2).contains(parts.count), numbers.allSatisfy({ $0 != nil }) else {
            reader.error(node, "\(what) '\(scalar.string)' must be a port 0-65535 or a range like 1024-65535")
            return nil
        }
        let low = numbers[0]!
        let high = numbers.last!!
        guard low <= high else {
            reader.error(node, "\(what) range '\(scalar.string)' is empty (low end above high end)")
            return nil
        }
        return low...high
    }
}

extension IPPrefix {
    var isV4: Bool {
        if case .v4 = self { return true }
        return false
    }
}
