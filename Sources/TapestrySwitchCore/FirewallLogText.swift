import TapestryDatapath
import TapestryTopology
import TapestryWire

extension Topology.Firewall {
    /// A rule as `trace`, `ctl` and the log quote it: `rule 2 (lab.yaml:14: action: allow,
    /// proto: tcp, dport: 80)`; index -1 is `default (drop)`.
    public func quote(rule index: Int) -> String {
        guard rules.indices.contains(index) else { return "default (\(defaultAction.rawValue))" }
        let rule = rules[index]
        return "rule \(index + 1) (\(rule.location): \(rule.text))"
    }
}

/// The lines of the firewall log (`log: true` on a rule, `log_default: true`).
public enum FirewallLogText {
    /// `firewall: allow tcp 10.0.10.5:40000 -> 10.0.20.5:5432 on port vm1 (network db) by rule 1
    /// (lab.yaml:20: ...)`, or for a rule over its rate, `firewall: 37 more connections decided
    /// by rule 4 (...) were not logged (at most 10 lines a second per rule)`.
    public static func line(_ entry: FirewallLogEntry, topology: Topology) -> String {
        let rule = topology.firewall?.quote(rule: entry.rule) ?? "rule \(entry.rule + 1)"
        switch entry.kind {
        case .notLogged(let count):
            return "firewall: \(count) more connection\(count == 1 ? "" : "s") decided by \(rule) \(count == 1 ? "was" : "were") not logged (at most 10 lines a second per rule)"
        case .connection:
            let ports = entry.proto == IPProtocol.tcp || entry.proto == IPProtocol.udp
            let source = address(high: entry.sourceHigh, low: entry.sourceLow, isIPv6: entry.isIPv6, port: ports ? entry.sourcePort : nil)
            let destination = address(
                high: entry.destinationHigh, low: entry.destinationLow, isIPv6: entry.isIPv6,
                port: ports ? entry.destinationPort : nil)
            let port = topology.ports.indices.contains(Int(entry.port)) ? topology.ports[Int(entry.port)].name : "#\(entry.port)"
            let network = topology.networks.indices.contains(Int(entry.network))
                ? topology.networks[Int(entry.network)].name : "#\(entry.network)"
            return "firewall: \(entry.allowed ? "allow" : "drop") \(protocolName(entry.proto)) \(source) -> \(destination) on port \(port) (network \(network)) by \(rule)"
        }
    }

    static func protocolName(_ proto: UInt8) -> String {
        switch proto {
        case IPProtocol.tcp: return "tcp"
        case IPProtocol.udp: return "udp"
        case IPProtocol.icmp: return "icmp"
        case IPProtocol.icmpv6: return "icmpv6"
        default: return "proto \(proto)"
        }
    }

    /// An address of the firewall's 128-bit form (IPv4 as IPv4-mapped), with its port.
    static func address(high: UInt64, low: UInt64, isIPv6: Bool, port: UInt16?) -> String {
        if isIPv6 {
            let text = "\(IPv6Address(high: high, low: low))"
            return port.map { "[\(text)]:\($0)" } ?? text
        }
        let text = "\(IPv4Address(rawValue: UInt32(truncatingIfNeeded: low)))"
        return port.map { "\(text):\($0)" } ?? text
    }
}

extension SwitchCore {
    /// Hands each waiting firewall log line to `write` (drivers call this after `run`; nothing
    /// waits unless a rule or `log_default` logs).
    public func drainFirewallLog(now: Timestamp, _ write: (String) -> Void) {
        let topology = topology
        datapath.drainFirewallLog(now: now) { write(FirewallLogText.line($0, topology: topology)) }
    }
}
