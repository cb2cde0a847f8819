import Foundation
import TapestryWire
import Yams

extension TopologyValidator {
    static let firewallKeys = ["default", "max_connections", "timeouts", "rules", "log_default"]
    static let ruleKeys = ["action", "proto", "src", "dst", "sport", "dport", "network", "log"]

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
        if let entry = fields["log_default"] {
            if let value = reader.boolean(entry.value, what: "log_default") { firewall.logDefault = value } else { valid = false }
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
        rule.file = reader.file
        rule.line = node.mark?.line ?? 1
        rule.text = Self.text(of: node)
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
            guard let entry = fields[key], let items = listItems(entry.value, what: key) else {
                if fields[key] != nil { valid = false }
                continue
            }
            var prefixes: [IPPrefix] = []
            for item in items {
                guard let text = reader.string(item, what: key) else {
                    valid = false
                    continue
                }
                switch IPPrefix.parse(text) {
                case .success(let prefix):
                    prefixes.append(prefix)
                case .failure(.hostBitsSet):
                    reader.error(item, "\(key) '\(text)' has bits set past its prefix length")
                    valid = false
                case .failure(.badLength):
                    reader.error(item, "\(key) '\(text)' has an invalid prefix length")
                    valid = false
                case .failure(.badAddress):
                    reader.error(item, "\(key) '\(text)' is not an IPv4 or IPv6 address or CIDR")
                    valid = false
                }
            }
            if isSource { rule.sources = prefixes } else { rule.destinations = prefixes }
        }
        // A packet is of one family: with only IPv4 sources and only IPv6 destinations (or the
        // reverse) the rule could never match.
        let sourceFamilies = Set(rule.sources.map(\.isV4))
        let destinationFamilies = Set(rule.destinations.map(\.isV4))
        if !sourceFamilies.isEmpty, !destinationFamilies.isEmpty, sourceFamilies.isDisjoint(with: destinationFamilies) {
            reader.error(fields["dst"]?.value, "src and dst are of different address families")
            valid = false
        }
        let addresses = rule.sources + rule.destinations
        if rule.proto == .icmp, addresses.contains(where: { !$0.isV4 }) {
            reader.error(fields["proto"]?.value, "proto icmp is IPv4; use icmpv6 with IPv6 addresses")
            valid = false
        }
        if rule.proto == .icmpv6, addresses.contains(where: \.isV4) {
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
            guard let items = listItems(entry.value, what: key) else {
                valid = false
                continue
            }
            var ranges: [ClosedRange<UInt16>] = []
            for item in items {
                if let range = portRange(item, what: key) { ranges.append(range) } else { valid = false }
            }
            if key == "sport" { rule.sourcePorts = ranges } else { rule.destinationPorts = ranges }
        }
        if let entry = fields["network"], let name = reader.string(entry.value, what: "network") {
            if networks.contains(name) {
                rule.network = name
            } else {
                reader.undefinedNetwork(name, at: entry.value, networks: networks)
                valid = false
            }
        }
        if let entry = fields["log"] {
            if let value = reader.boolean(entry.value, what: "log") { rule.log = value } else { valid = false }
        }
        return valid ? rule : nil
    }

    /// A match field's entries: one value, or a non-empty list of at most
    /// `Topology.Rule.maxListEntries` values.
    private mutating func listItems(_ node: Node, what: String) -> [Node]? {
        guard case .sequence(let sequence) = node else { return [node] }
        guard !sequence.isEmpty else {
            reader.error(node, "\(what) must not be an empty list (leave \(what) out to match everything)")
            return nil
        }
        guard sequence.count <= Topology.Rule.maxListEntries else {
            reader.error(node, "\(what) has \(sequence.count) entries; at most \(Topology.Rule.maxListEntries) are allowed")
            return nil
        }
        return Array(sequence)
    }

    /// A rule's fields as written, one line: `action: allow, proto: tcp, dport: [22, 80]`.
    static func text(of node: Node) -> String {
        func render(_ node: Node) -> String {
            switch node {
            case .scalar(let scalar): return scalar.string
            case .sequence(let sequence): return "[" + sequence.map(render).joined(separator: ", ") + "]"
            case .mapping(let mapping): return "{ " + mapping.map { "\(render($0.key)): \(render($0.value))" }.joined(separator: ", ") + " }"
            case .alias: return "*alias"
            }
        }
        guard case .mapping(let mapping) = node else { return render(node) }
        return mapping.map { "\(render($0.key)): \(render($0.value))" }.joined(separator: ", ")
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
