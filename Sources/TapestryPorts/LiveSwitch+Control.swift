import Foundation
import TapestryDatapath
import TapestryTopology
import TapestryWire

/// The control protocol: the client sends one line, `COMMAND [ARGUMENT ...]`, and gets one JSON
/// document back, `{"ok": true, ...}` or `{"ok": false, "error": "..."}`. `tapestry ctl` renders it.
extension LiveSwitch {
    public static let controlCommands = ["show", "fdb", "conntrack", "lb", "stats", "reload", "trace"]

    /// The answer to one request; nil when the client is kept to be answered later (`trace`).
    func answerControl(_ request: String, client: Int32) -> String? {
        let words = request.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\r" || $0 == "\t" }).map(String.init)
        guard let command = words.first else { return Self.json(["ok": false, "error": "empty request"]) }
        let arguments = Array(words.dropFirst())
        let now = Self.wallClock()
        var body: [String: Any]
        switch command {
        case "show": body = show()
        case "fdb": body = fdb(now: now)
        case "conntrack": body = conntrack(now: now, filters: arguments)
        case "lb":
            if let error = drain(arguments) { return Self.json(["ok": false, "error": error]) }
            body = balancers()
        case "stats": body = stats()
        case "trace": return armTrace(arguments, client: client)
        case "reload":
            let result = reload()
            log(result.message)
            guard result.ok else { return Self.json(["ok": false, "error": result.message]) }
            body = ["message": result.message]
        default:
            return Self.json(["ok": false, "error": "unknown command '\(command)'; commands: \(Self.controlCommands.joined(separator: ", "))"])
        }
        body["ok"] = true
        body["switch"] = topology.name
        return Self.json(body)
    }

    static func json(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    private func show() -> [String: Any] {
        let counters = datapath.counters
        let ports: [[String: Any]] = topology.ports.enumerated().map { index, port in
            var device = ""
            var kind = ""
            switch port.attachment {
            case .tap(let name): (kind, device) = ("tap", name)
            case .socket(let endpoint): (kind, device) = ("socket", endpoint.description)
            case .interface(let name): (kind, device) = ("interface", name)
            }
            let mode: String
            switch port.mode {
            case .access(let network): mode = "access \(network)"
            case .trunk(let networks, let native): mode = "trunk \(networks.joined(separator: ","))" + (native.map { " native \($0)" } ?? "")
            }
            let c = counters.ports[index]
            return [
                "name": port.name, "kind": kind, "device": device, "mode": mode, "netns": port.netns ?? "",
                "state": isUp(PortID(index)) ? "up" : "down", "peer": self.ports[index].peer, "frames_in": c.framesIn, "frames_out": c.framesOut,
                "bytes_in": c.bytesIn, "bytes_out": c.bytesOut, "drops": c.drops.reduce(0, +),
            ]
        }
        return ["ports": ports]
    }

    private func fdb(now: Timestamp) -> [String: Any] {
        let configuration = datapath.configuration
        let entries: [[String: Any]] = datapath.macTable.entries(now: now).map { entry in
            [
                "network": configuration.networks[Int(entry.network)].name,
                "vlan": configuration.networks[Int(entry.network)].vid, "mac": "\(entry.mac)",
                "port": configuration.ports[Int(entry.port)].name,
                "age_seconds": Double(now.nanoseconds - entry.lastSeen.nanoseconds) / 1e9,
            ]
        }
        return ["entries": entries, "capacity": configuration.macTableSize, "aging_seconds": configuration.macAgingSeconds]
    }

    /// Filters: `proto=tcp`, `host=10.0.0.1` (either end), `port=80` (either end), `state=ESTABLISHED`,
    /// `network=web`.
    private func conntrack(now: Timestamp, filters: [String]) -> [String: Any] {
        guard let table = datapath.connectionTable else { return ["connections": [], "tracking": false] }
        let configuration = datapath.configuration
        var wanted: [String: String] = [:]
        for filter in filters {
            let parts = filter.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { wanted[parts[0]] = parts[1] }
        }
        var rows: [[String: Any]] = []
        for (id, entry) in table.liveEntriesWithIDs(now: now.nanoseconds) {
            let proto = Self.protoName(entry.key.proto)
            let a = Self.address(entry.key.aHigh, entry.key.aLow)
            let b = Self.address(entry.key.bHigh, entry.key.bLow)
            let (source, sourcePort, destination, destinationPort) = entry.originIsA
                ? (a, entry.key.aPort, b, entry.key.bPort) : (b, entry.key.bPort, a, entry.key.aPort)
            let state = entry.kind == .tcp ? "\(entry.tcpState)" : (entry.replied ? "REPLIED" : "UNREPLIED")
            let network = configuration.networks[Int(entry.key.network)].name
            if let value = wanted["proto"], value != proto { continue }
            if let value = wanted["host"], value != source && value != destination { continue }
            if let value = wanted["port"], value != "\(sourcePort)" && value != "\(destinationPort)" { continue }
            if let value = wanted["state"], value.uppercased() != state { continue }
            if let value = wanted["network"], value != network { continue }
            var row: [String: Any] = [
                "id": id, "network": network, "proto": proto, "source": source, "source_port": sourcePort,
                "destination": destination, "destination_port": destinationPort, "state": state,
                "age_seconds": Double(now.nanoseconds - entry.created) / 1e9,
                "expires_in_seconds": Double(entry.lastSeen + entry.timeout - now.nanoseconds) / 1e9,
                "packets_original": entry.packetsOriginal, "packets_reply": entry.packetsReply,
                "bytes_original": entry.bytesOriginal, "bytes_reply": entry.bytesReply,
                "rule": entry.rule < 0 ? "default" : "\(entry.rule + 1)",
            ]
            if entry.backend >= 0 {
                let balancer = configuration.loadBalancers[Int(entry.balancer)]
                let backend = balancer.backends[Int(entry.backend)]
                row["load_balancer"] = balancer.name
                row["backend"] = "\(backend.address):\(backend.port)"
            }
            rows.append(row)
        }
        return ["connections": rows, "tracking": true, "capacity": table.maxEntries, "count": table.count]
    }

    /// `lb drain NAME ADDRESS:PORT` / `lb undrain NAME ADDRESS:PORT`; nil when fine.
    private func drain(_ arguments: [String]) -> String? {
        guard let action = arguments.first else { return nil }
        guard action == "drain" || action == "undrain", arguments.count == 3 else {
            return "usage: lb [drain|undrain NAME ADDRESS:PORT]"
        }
        let balancers = datapath.configuration.loadBalancers
        guard let balancer = balancers.firstIndex(where: { $0.name == arguments[1] }) else {
            return "no load balancer named '\(arguments[1])'"
        }
        guard let backend = balancers[balancer].backends.firstIndex(where: { "\($0.address):\($0.port)" == arguments[2] }) else {
            return "load balancer '\(arguments[1])' has no backend \(arguments[2])"
        }
        datapath.setDrained(balancer: balancer, backend: backend, action == "drain")
        log("load balancer '\(arguments[1])': backend \(arguments[2]) \(action == "drain" ? "drained (no new connections)" : "back in rotation")")
        return nil
    }

    private func balancers() -> [String: Any] {
        let counters = datapath.counters
        let list: [[String: Any]] = datapath.configuration.loadBalancers.enumerated().map { index, balancer in
            let backends: [[String: Any]] = balancer.backends.enumerated().map { backendIndex, backend in
                [
                    "address": "\(backend.address):\(backend.port)", "weight": backend.weight,
                    "connections": counters.backendSelections.isEmpty ? 0 : counters.backendSelections[index][backendIndex],
                    "drained": datapath.isDrained(balancer: index, backend: backendIndex),
                    "mac": datapath.backendMAC(balancer: index, backend: backendIndex).map { "\($0)" } ?? "unknown",
                ]
            }
            return [
                "name": balancer.name, "vip": "\(balancer.vip)", "port": balancer.port,
                "proto": balancer.proto == 6 ? "tcp" : "udp", "mac": "\(balancer.mac)", "backends": backends,
            ]
        }
        return ["load_balancers": list]
    }

    private func stats() -> [String: Any] {
        let counters = datapath.counters
        var ports: [String: Any] = [:]
        for (index, port) in topology.ports.enumerated() {
            let c = counters.ports[index]
            var drops: [String: UInt64] = [:]
            for reason in DropReason.allCases where c.drops[reason.index] > 0 { drops[reason.name] = c.drops[reason.index] }
            ports[port.name] = [
                "frames_in": c.framesIn, "frames_out": c.framesOut, "bytes_in": c.bytesIn, "bytes_out": c.bytesOut,
                "drops": drops,
            ]
        }
        var drops: [String: UInt64] = [:]
        for reason in DropReason.allCases { drops[reason.name] = counters.drops[reason] ?? 0 }
        return [
            "ports": ports, "drops": drops,
            "mac_table": ["entries": datapath.macTable.count, "learned": counters.macLearned, "moved": counters.macMoved,
                "evicted": counters.macEvicted],
            "connections": ["tracked": counters.connections, "created": counters.connectionsCreated,
                "evicted": counters.connectionsEvicted, "related": counters.relatedPassed],
            "load_balancers": ["answers": counters.loadBalancerAnswers, "held_for_arp": counters.backendUnresolved],
        ]
    }

    static func protoName(_ proto: UInt8) -> String {
        switch proto {
        case 6: return "tcp"
        case 17: return "udp"
        case 1: return "icmp"
        case 58: return "icmpv6"
        default: return "\(proto)"
        }
    }

    static func address(_ high: UInt64, _ low: UInt64) -> String {
        if high == 0 && low >> 32 == 0xFFFF { return "\(IPv4Address(rawValue: UInt32(truncatingIfNeeded: low)))" }
        return "\(IPv6Address(high: high, low: low))"
    }
}
