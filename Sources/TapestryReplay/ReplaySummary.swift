import Foundation
import TapestryDatapath

/// What a replay did: frames and bytes in and out per port, drops by reason, and the result of
/// every `--expect` comparison.
public struct ReplaySummary: Sendable, Equatable {
    public struct PortLine: Sendable, Equatable {
        public var name: String
        public var framesIn: UInt64
        public var bytesIn: UInt64
        public var framesOut: UInt64
        public var bytesOut: UInt64
    }

    public var topology: String
    public var ports: [PortLine]
    public var drops: [DropReason: UInt64]
    public var macLearned: UInt64
    public var macMoved: UInt64
    public var macEvicted: UInt64
    /// Firewall figures, when the topology has a firewall.
    public var firewall: FirewallFigures? = nil

    /// Load balancers: connections given to each backend, in list order.
    public var loadBalancers: [BalancerFigures] = []
    public var loadBalancerUnresolved: UInt64 = 0
    /// Of those held, the ones sent when their backend answered and the ones dropped after waiting.
    public var loadBalancerReleased: UInt64 = 0
    public var loadBalancerExpired: UInt64 = 0
    public var loadBalancerAnswers: UInt64 = 0

    public struct BalancerFigures: Sendable, Equatable {
        public var name: String
        public var backends: [(address: String, connections: UInt64)]
        public static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.name == rhs.name && lhs.backends.map(\.address) == rhs.backends.map(\.address)
                && lhs.backends.map(\.connections) == rhs.backends.map(\.connections)
        }
    }

    public struct FirewallFigures: Sendable, Equatable {
        public var created: UInt64
        public var evicted: UInt64
        public var related: UInt64
        public var tracked: Int
    }
    /// What `--expect` found (empty when all matched or none was given).
    public var differences: [ExpectDifference]
    public var expectationsChecked: Int

    public var framesIn: UInt64 { ports.reduce(0) { $0 + $1.framesIn } }
    public var framesOut: UInt64 { ports.reduce(0) { $0 + $1.framesOut } }
    public var totalDrops: UInt64 { drops.values.reduce(0, +) }

    public var text: String {
        var lines: [String] = []
        lines.append("replay of '\(topology)': \(framesIn) frames in, \(framesOut) out, \(totalDrops) dropped")
        let width = max(4, ports.map(\.name.count).max() ?? 4)
        func pad(_ text: String, _ count: Int) -> String { text + String(repeating: " ", count: max(0, count - text.count)) }
        func right(_ text: String, _ count: Int) -> String { String(repeating: " ", count: max(0, count - text.count)) + text }
        lines.append("  \(pad("port", width))  \(right("in", 8))  \(right("out", 8))  \(right("bytes in", 10))  \(right("bytes out", 10))")
        for port in ports {
            lines.append(
                "  \(pad(port.name, width))  \(right("\(port.framesIn)", 8))  \(right("\(port.framesOut)", 8))  \(right("\(port.bytesIn)", 10))  \(right("\(port.bytesOut)", 10))"
            )
        }
        if drops.isEmpty {
            lines.append("drops: none")
        } else {
            let list = DropReason.allCases.compactMap { reason in drops[reason].map { "\(reason.name) \($0)" } }
            lines.append("drops: " + list.joined(separator: ", "))
        }
        lines.append("mac table: \(macLearned) learned, \(macMoved) moved, \(macEvicted) evicted")
        for balancer in loadBalancers {
            let list = balancer.backends.map { "\($0.address) \($0.connections)" }.joined(separator: ", ")
            lines.append("load balancer \(balancer.name): connections per backend: \(list)")
        }
        if !loadBalancers.isEmpty {
            lines.append(
                "load balancers: \(loadBalancerAnswers) ARP/ping answers for VIPs, \(loadBalancerUnresolved) frames held for a backend's MAC (\(loadBalancerReleased) sent when it answered, \(loadBalancerExpired) dropped after 3 s)")
        }
        if let firewall {
            lines.append(
                "firewall: \(firewall.created) connections created, \(firewall.evicted) evicted unreplied, \(firewall.related) related ICMP errors passed, \(firewall.tracked) in the table at the end"
            )
        }
        if expectationsChecked > 0 {
            if differences.isEmpty {
                lines.append("expect: all \(expectationsChecked) port capture\(expectationsChecked == 1 ? "" : "s") match")
            } else {
                lines.append("expect: \(differences.count) difference\(differences.count == 1 ? "" : "s"):")
                lines.append(contentsOf: differences.map { "  " + $0.text })
            }
        }
        return lines.joined(separator: "\n")
    }

    /// Machine-readable form, keys sorted so output is stable.
    public var json: String {
        var portObjects: [String: Any] = [:]
        for port in ports {
            portObjects[port.name] = [
                "frames_in": port.framesIn, "frames_out": port.framesOut, "bytes_in": port.bytesIn,
                "bytes_out": port.bytesOut,
            ]
        }
        var dropObject: [String: Any] = [:]
        for reason in DropReason.allCases { dropObject[reason.name] = drops[reason] ?? 0 }
        var object: [String: Any] = [
            "topology": topology, "ports": portObjects, "drops": dropObject,
            "frames_in": framesIn, "frames_out": framesOut, "dropped": totalDrops,
            "mac_table": ["learned": macLearned, "moved": macMoved, "evicted": macEvicted],
        ]
        if !loadBalancers.isEmpty {
            var balancers: [String: Any] = [:]
            for balancer in loadBalancers {
                balancers[balancer.name] = Dictionary(uniqueKeysWithValues: balancer.backends.map { ($0.address, $0.connections) })
            }
            object["load_balancers"] = [
                "connections": balancers, "answers": loadBalancerAnswers, "unresolved": loadBalancerUnresolved,
                "released": loadBalancerReleased, "expired": loadBalancerExpired,
            ]
        }
        if let firewall {
            object["firewall"] = [
                "connections_created": firewall.created, "evicted": firewall.evicted, "related": firewall.related,
                "tracked": firewall.tracked,
            ]
        }
        if expectationsChecked > 0 {
            object["expect"] = ["checked": expectationsChecked, "match": differences.isEmpty, "differences": differences.map(\.object)]
        }
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
        return String(decoding: data, as: UTF8.self)
    }
}
