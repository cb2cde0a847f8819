import TapestryDatapath
import TapestryTopology
import TapestryWire

/// What `trace` and `ctl trace` print about a frame: a one-line summary, and for each stage what
/// it decided and why, read from the batch, the tables and the queues after that stage ran.
public enum TraceText {
    /// One line naming the frame: addresses and protocol.
    public static func summary(_ frame: [UInt8]) -> String {
        let fields = Dictionary(FrameFields(frame).fields.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        var text = "\(fields["eth.src"] ?? "?") > \(fields["eth.dst"] ?? "?")"
        if let vid = fields["vlan.vid"] { text += " vlan \(vid)" }
        if let op = fields["arp.op"] {
            text += op == "1" ? " ARP who-has \(fields["arp.tpa"] ?? "?") tell \(fields["arp.spa"] ?? "?")"
                : " ARP \(fields["arp.spa"] ?? "?") is-at \(fields["arp.sha"] ?? "?")"
        } else if let src = fields["ipv4.src"] ?? fields["ipv6.src"], let dst = fields["ipv4.dst"] ?? fields["ipv6.dst"] {
            if let sport = fields["tcp.sport"], let dport = fields["tcp.dport"] {
                text += " TCP \(src):\(sport) > \(dst):\(dport) flags \(fields["tcp.flags"] ?? "")"
            } else if let sport = fields["udp.sport"], let dport = fields["udp.dport"] {
                text += " UDP \(src):\(sport) > \(dst):\(dport)"
            } else if let type = fields["icmp.type"] ?? fields["icmpv6.type"] {
                text += " ICMP type \(type) \(src) > \(dst)"
            } else {
                text += " IP \(src) > \(dst)"
            }
        } else if let type = fields["eth.type"] {
            text += " type \(type)"
        }
        return text
    }

    /// What `step` decided for the first frame of `batch` (a batch of one frame), as lines.
    /// `lastState` remembers each connection's state between frames, for "before -> after".
    public static func describe(
        _ step: Datapath.Step, _ datapath: Datapath, _ batch: FrameBatch, _ topology: Topology,
        _ lastState: inout [Int32: String]
    ) -> [String] {
        let configuration = datapath.configuration
        let verdict = batch.verdicts[0]
        let metadata = batch.metadata[0]
        let name = step.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0)
        let network = configuration.networks.indices.contains(Int(metadata.network))
            ? configuration.networks[Int(metadata.network)] : nil
        func dropped(_ reason: DropReason, _ why: String) -> [String] { ["  \(name)dropped (\(reason.name)): \(why)"] }
        switch step {
        case .vlan:
            if case .drop(let reason) = verdict {
                if reason == .invalid, let malformation = metadata.parsed.malformation {
                    return dropped(reason, "\(malformation)")
                }
                let port = configuration.ports[Int(batch.ingressPort)]
                let tag = metadata.parsed.tagCount == 0 ? "untagged" : metadata.parsed.tagCount > 1 ? "double-tagged, outer TPID 0x\(String(metadata.parsed.outerTPID, radix: 16))" : "outer tag TPID 0x\(String(metadata.parsed.outerTPID, radix: 16)) VID \(metadata.parsed.outerTCI & 0xFFF)"
                return dropped(reason, "\(tag), not accepted on \(port.mode.isAccess ? "access" : "trunk") port \(port.name)")
            }
            let how = metadata.consumedTag ? (metadata.parsed.outerTCI & 0xFFF == 0 ? "priority-tagged" : "tagged VID \(metadata.parsed.outerTCI & 0xFFF)") : "untagged"
            return ["  \(name)\(how) on port \(configuration.ports[Int(batch.ingressPort)].name) -> network \(network?.name ?? "?") (VLAN \(network?.vid ?? 0))"]
        case .firewall:
            if case .drop(let reason) = verdict {
                return dropped(reason, explain(metadata, topology))
            }
            guard metadata.parsed.layer3 == .ipv4 || metadata.parsed.layer3 == .ipv6 else {
                return ["  \(name)not IP: passes untracked"]
            }
            guard metadata.connection >= 0, let table = datapath.connectionTable else {
                return ["  \(name)passes untracked (neighbour discovery, a related ICMP error, or tracking only VIP traffic)"]
            }
            let entry = table.entry(Int(metadata.connection)).pointee
            let state = entry.kind == .tcp ? "\(entry.tcpState)" : (entry.replied ? "replied" : "unreplied")
            let before = metadata.isNewConnection ? "none" : (lastState[metadata.connection] ?? "?")
            lastState[metadata.connection] = state
            let direction = metadata.isReply ? "reply" : "original"
            var text = "  \(name)connection #\(metadata.connection) (\(direction) direction): \(before) -> \(state)"
            if metadata.isNewConnection {
                text += entry.rule < 0 ? "; new, allowed by default" : "; new, allowed by \(topology.firewall?.quote(rule: Int(entry.rule)) ?? "rule \(entry.rule + 1)")"
            }
            return [text]
        case .loadBalancer:
            if case .drop(let reason) = verdict {
                return dropped(reason, explain(metadata, topology))
            }
            switch verdict {
            case .forward: return ["  \(name)answered for the VIP (ARP or ping), sent back out of the ingress port"]
            case .floodAll: return ["  \(name)backend MAC unknown: frame replaced by an ARP request from the VIP to every port"]
            case .consume: return ["  \(name)ARP reply to the VIP: taken by the switch (backend MAC learned)"]
            default: break
            }
            guard metadata.connection >= 0, let table = datapath.connectionTable else { return ["  \(name)not for a VIP"] }
            let entry = table.entry(Int(metadata.connection)).pointee
            guard entry.backend >= 0 else { return ["  \(name)not for a VIP"] }
            let balancer = configuration.loadBalancers[Int(entry.balancer)]
            let backend = balancer.backends[Int(entry.backend)]
            if metadata.isReply {
                return ["  \(name)reply from backend \(backend.address):\(backend.port): source rewritten to \(balancer.vip):\(balancer.port)"]
            }
            let why = metadata.isNewConnection ? "new connection, next in round robin" : "the connection's backend"
            return ["  \(name)\(balancer.name): to backend \(backend.address):\(backend.port) (\(why)); destination rewritten"]
        case .l2:
            switch verdict {
            case .drop(let reason):
                return dropped(reason, reason == .hairpin ? "destination was learned on the ingress port" : "source MAC is a group address")
            case .forward(let port):
                if metadata.skipLearning && port == batch.ingressPort {
                    return ["  \(name)the switch's own answer: not looked up, its source not learned"]
                }
                return ["  \(name)destination \(UnsafeRawBufferPointer(batch.frame(0)).mac(0)) learned on \(configuration.ports[Int(port)].name) -> forward"]
            case .flood:
                let destination = UnsafeRawBufferPointer(batch.frame(0)).mac(0)
                return ["  \(name)destination \(destination) is \(destination.isMulticast ? (destination.isBroadcast ? "broadcast" : "multicast") : "unknown") -> flood"]
            default:
                return []
            }
        case .egress:
            if case .drop(let reason) = verdict { return dropped(reason, "no other port in the network") }
            let queues = datapath.transmitQueues
            var outs: [String] = []
            for active in 0..<queues.activeCount {
                let port = queues.activePort(active)
                let fields = FrameFields(Array(queues.frame(port, 0))).fields
                let vid = fields.first { $0.name == "vlan.vid" }?.value
                outs.append("\(configuration.ports[Int(port)].name) (\(vid.map { "tagged VID \($0)" } ?? "untagged"))")
            }
            if outs.isEmpty { return ["  \(name)nothing sent"] }
            return ["  \(name)out \(outs.joined(separator: ", "))"]
        }
    }

    /// What the stage that dropped the frame recorded about why (`DropCause`), in words.
    static func explain(_ metadata: FrameMetadata, _ topology: Topology) -> String {
        func rule() -> String {
            metadata.rule < 0 ? "no rule matched and default is drop"
                : "\(topology.firewall?.quote(rule: Int(metadata.rule)) ?? "rule \(metadata.rule + 1)") matched first"
        }
        let detail = metadata.causeDetail
        switch metadata.cause {
        case .tcpWithoutConnection:
            return "TCP \(tcpFlags(UInt8(truncatingIfNeeded: detail))) without a connection (only a SYN opens one)"
        case .tcpOutOfState:
            let state = TCPConnectionState(rawValue: UInt8(truncatingIfNeeded: detail >> 8)).map { "\($0)" } ?? "?"
            return "TCP \(tcpFlags(UInt8(truncatingIfNeeded: detail))) does not fit its connection's state \(state)"
        case .unsolicitedEchoReply: return "echo reply to no tracked echo request"
        case .unrelatedICMPError:
            return "ICMP error (type \(detail)) quoting no tracked connection, or not sent back to the quoted packet's sender"
        case .strayFragment:
            return "a later fragment (identification \(detail)) whose first fragment was not let through"
        case .refusedByRule: return "new connection; \(rule())"
        case .refusedAfterReload: return "a connection from before the reload that the new rules refuse; \(rule())"
        case .tooManyTags: return "three or more VLAN tags: the rules cannot see the payload"
        case .tableFull: return "new connection, but the table is full of connections that may not be evicted"
        case .notServed: return "to a VIP on a port or protocol it does not serve"
        case .allBackendsDrained: return "to a VIP service whose backends are all drained"
        case .untrackedServiceTraffic: return "to a VIP service, but belongs to no tracked connection"
        case .none: return "no cause recorded"
        }
    }

    /// `SYN`, `ACK`, `FIN+ACK`, `none`...
    static func tcpFlags(_ flags: UInt8) -> String {
        let names: [(UInt8, String)] = [(0x02, "SYN"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"), (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR")]
        let set = names.filter { flags & $0.0 != 0 }.map(\.1)
        return set.isEmpty ? "with no flags" : set.joined(separator: "+")
    }

}

extension DatapathConfiguration.PortMode {
    public var isAccess: Bool {
        if case .access = self { return true }
        return false
    }
}
