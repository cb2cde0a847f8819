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
                text += " TCP \(src):\(sport) > \(dst):\(dport) flags \(letters(fields["tcp.flags"]))"
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

    /// What the stages recorded about frame `frame` of the last traced batch (`events`, in the
    /// order they were recorded), as one or more lines per stage. `original` is the frame as it
    /// arrived (a malformed header is quoted from it).
    public static func describe(
        frame: Int, events: UnsafeBufferPointer<TraceEvent>, original: [UInt8], ingress: PortID,
        configuration: DatapathConfiguration, topology: Topology
    ) -> [String] {
        render(
            frame: frame, events: events, original: original, ingress: ingress, configuration: configuration,
            topology: topology
        ).lines
    }

    /// Why frame `frame` of the last traced batch was dropped: the stage, the drop reason's name
    /// and the cause in words (what `replay --drops` writes as a frame comment); nil if it was not.
    public static func drop(
        frame: Int, events: UnsafeBufferPointer<TraceEvent>, original: [UInt8], ingress: PortID,
        configuration: DatapathConfiguration, topology: Topology
    ) -> (step: Datapath.Step, reason: String, cause: String)? {
        render(
            frame: frame, events: events, original: original, ingress: ingress, configuration: configuration,
            topology: topology
        ).drop
    }

    private static func render(
        frame: Int, events: UnsafeBufferPointer<TraceEvent>, original: [UInt8], ingress: PortID,
        configuration: DatapathConfiguration, topology: Topology
    ) -> (lines: [String], drop: (step: Datapath.Step, reason: String, cause: String)?) {
        var lines: [String] = []
        var outs: [String] = []
        var drop: (step: Datapath.Step, reason: String, cause: String)?
        func line(_ step: Datapath.Step, _ text: String) {
            lines.append("  \(step.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0))\(text)")
        }
        func dropped(_ step: Datapath.Step, _ reason: String, _ cause: String) {
            line(step, "dropped (\(reason)): \(cause)")
            drop = (step, reason, cause)
        }
        func portName(_ port: Int32) -> String {
            configuration.ports.indices.contains(Int(port)) ? configuration.ports[Int(port)].name : "port \(port)"
        }
        func isTunnel(_ port: Int32) -> Bool {
            configuration.ports.indices.contains(Int(port)) && configuration.ports[Int(port)].tunnel != nil
        }
        func remoteName(_ port: PortID, _ remote: Int32) -> String {
            guard let remotes = configuration.ports.indices.contains(Int(port)) ? configuration.ports[Int(port)].tunnel?.remotes : nil,
                remotes.indices.contains(Int(remote))
            else { return "remote \(remote)" }
            return "remote \(remotes[Int(remote)])"
        }
        func networkName(_ network: Int32) -> String {
            configuration.networks.indices.contains(Int(network))
                ? "network \(configuration.networks[Int(network)].name) (VLAN \(configuration.networks[Int(network)].vid))"
                : "network \(network)"
        }
        func backend(_ balancer: Int32, _ backend: Int32) -> (name: String, address: String)? {
            guard configuration.loadBalancers.indices.contains(Int(balancer)) else { return nil }
            let service = configuration.loadBalancers[Int(balancer)]
            guard service.backends.indices.contains(Int(backend)) else { return nil }
            return (service.name, service.backends[Int(backend)].address.withPort(service.backends[Int(backend)].port))
        }
        let ingressName = portName(Int32(ingress))
        let ingressMode = configuration.ports.indices.contains(Int(ingress))
            ? (configuration.ports[Int(ingress)].mode.isAccess ? "access" : "trunk") : "?"
        var window: (UInt32, UInt32, UInt32)?
        for event in events where Int(event.frame) == frame {
            switch event.kind {
            case .malformed:
                let malformation = Malformation(rawValue: UInt8(truncatingIfNeeded: event.c)) ?? .runt
                let why = original.withUnsafeBytes {
                    malformation.explain($0, offset: Int(event.a), length: Int(UInt32(bitPattern: event.b)))
                }
                dropped(.vlan, "invalid", why)
            case .classified where event.c == 3:
                let vni = Int(event.a) < configuration.networks.count ? configuration.networks[Int(event.a)].vni : 0
                line(.vlan, "VNI \(vni) from \(remoteName(ingress, event.b)) on port \(ingressName) -> \(networkName(event.a))")
            case .classified:
                let how = event.c == 0 ? "untagged" : event.c == 2 ? "priority-tagged" : "tagged VID \(event.b)"
                line(.vlan, "\(how) on port \(ingressName) -> \(networkName(event.a))")
            case .serviceTagRefused:
                dropped(.vlan, "vlan", "outer tag TPID 0x\(String(event.a, radix: 16)) is not 802.1Q (0x8100), not accepted on \(ingressMode) port \(ingressName)")
            case .doubleTagOnAccess where isTunnel(Int32(ingress)):
                dropped(.vlan, "vlan", "double-tagged inside the tunnel of port \(ingressName): the VNI says the network")
            case .doubleTagOnAccess:
                dropped(.vlan, "vlan", "double-tagged, not accepted on access port \(ingressName)")
            case .tagOnAccess where isTunnel(Int32(ingress)):
                dropped(.vlan, "vlan", "tagged VID \(event.a) inside the tunnel of port \(ingressName): the VNI says the network")
            case .tagOnAccess:
                dropped(.vlan, "vlan", "tagged VID \(event.a), not accepted on access port \(ingressName)")
            case .notDecapsulated:
                dropped(.vlan, "tunnel", "a frame on tunnel port \(ingressName) that no decapsulation admitted")
            case .vidNotOnTrunk:
                dropped(.vlan, "vlan", event.a == 0
                    ? "untagged, and trunk port \(ingressName) has no native network"
                    : "VID \(event.a) is not one of trunk port \(ingressName)'s networks")
            case .notIP:
                line(.firewall, "not IP: passes untracked")
            case .neighbourDiscovery:
                line(.firewall, "ICMPv6 type \(event.a) (neighbour discovery or MLD): passes untracked")
            case .relatedError:
                line(.firewall, "ICMP error (type \(event.a)) about a tracked connection: passes as related")
            case .notService:
                line(.firewall, "no firewall section and not to a VIP service: passes untracked")
            case .fragmentPassed:
                line(.firewall, "a later fragment (identification \(UInt32(bitPattern: event.a))) whose first fragment passed")
            case .fragmentHeld:
                line(.firewall, "a later fragment (identification \(UInt32(bitPattern: event.a))) before its first fragment: held (\(event.b) of its datagram now)")
            case .heldFragmentsReleased:
                line(.firewall, "first fragment passed: its \(event.a) held fragment\(event.a == 1 ? "" : "s") leave right after it")
            case .heldFragmentsDropped:
                line(.firewall, "first fragment dropped: its \(event.a) held fragment\(event.a == 1 ? " is" : "s are") dropped too")
            case .connectionOpened:
                let kind = ConnectionEntry.Kind(rawValue: UInt8(truncatingIfNeeded: event.c >> 24)) ?? .other
                let after = state(kind, event.c)
                let rule = topology.firewall == nil ? "tracked for the load balancer (no firewall section)"
                    : event.b < 0 ? "allowed by default"
                    : "allowed by \(topology.firewall?.quote(rule: Int(event.b)) ?? "rule \(event.b + 1)")"
                line(.firewall, "connection #\(event.a) (original direction): none -> \(after); new, \(rule)")
            case .connectionUpdated:
                let kind = ConnectionEntry.Kind(rawValue: UInt8(truncatingIfNeeded: event.c >> 24)) ?? .other
                let direction = event.c & 0x10000 != 0 ? "reply" : "original"
                line(.firewall, "connection #\(event.a) (\(direction) direction): \(state(kind, event.b)) -> \(state(kind, event.c))")
            case .tcpIgnored:
                line(.firewall, event.b == 1
                    ? "connection #\(event.a): an ACK answering the SYN (a challenge ACK, RFC 5961): passes unchecked, state unchanged"
                    : "connection #\(event.a): a new SYN on a live connection: passes unchecked (the server answers with a challenge ACK or a SYN-ACK), state unchanged")
            case .outsideWindow:
                window = (UInt32(bitPattern: event.a), UInt32(bitPattern: event.b), UInt32(bitPattern: event.c))
            case .dropped, .invalidIgnored:
                let cause = DropCause(rawValue: UInt8(truncatingIfNeeded: event.c)) ?? .none
                var why = explain(cause, detail: UInt32(bitPattern: event.a), rule: event.b, topology)
                if cause == .tcpOutOfWindow, let (value, low, high) = window {
                    let check = TCPWindow.Check(rawValue: UInt8(truncatingIfNeeded: UInt32(bitPattern: event.a) >> 8))
                    let what = check == .ackAbove || check == .ackBelow || check == .resetNotForSYN ? "acknowledgment" : "sequence"
                    why += ": \(what) \(value) outside the window \(low)-\(high)"
                }
                if event.kind == .invalidIgnored {
                    line(.firewall, "\(why); not enforced (no firewall section: only VIP connections are tracked)")
                } else {
                    dropped(event.step, cause.reason.name, why)
                }
            case .vipAnswered:
                line(.loadBalancer, "answered for the VIP (ARP or ping), sent back out of the ingress port")
            case .refused:
                line(
                    .loadBalancer,
                    "every backend drained or down: refused with \(event.b == 0 ? "a TCP RST" : "an ICMP port unreachable") from the VIP, out of the ingress port (counted no-service)")
            case .vipARPReplyTaken:
                line(.loadBalancer, "ARP reply to the VIP: taken by the switch (backend MAC learned)")
            case .replyRewritten:
                if let (_, address) = backend(event.a, event.b) {
                    let service = configuration.loadBalancers[Int(event.a)]
                    line(.loadBalancer, "reply from backend \(address): source rewritten to \(service.vip.withPort(service.port))")
                }
            case .backendChosen:
                if let (name, address) = backend(event.a, event.b) {
                    let why = event.c == 0 ? "the connection's backend"
                        : event.c == -1 ? "new connection, the client's last backend (affinity)"
                        : event.c == 1 ? "new connection, next in round robin"
                        : "new connection, next in round robin; \(event.c - 1) drained or down skipped"
                    line(.loadBalancer, "\(name): to backend \(address) (\(why)); destination rewritten")
                }
            case .backendUnresolved:
                if let (_, address) = backend(event.a, event.b) {
                    line(
                        .loadBalancer,
                        event.c == 1
                            ? "backend \(address) MAC unknown: frame held until it answers; in its place an ARP request from the VIP to every port"
                            : "backend \(address) MAC unknown: frame held until it answers (asked within the last second)")
                }
            case .learned:
                switch event.a {
                case 1: line(.l2, "source learned on \(ingressName)")
                case 2 where event.b == Int32(ingress): line(.l2, "source moved to another remote of \(ingressName)")
                case 2: line(.l2, "source moved from \(portName(event.b)) to \(ingressName)")
                case 3: line(.l2, "source learned on \(ingressName), evicting another entry (table or mac_limit full)")
                default: break  // refreshed: nothing new to say
                }
            case .learningSkipped:
                line(.l2, "the switch's own frame: source not learned")
            case .alreadyDecided:
                line(.l2, "an earlier stage took the frame or decided where it goes: no lookup")
            case .fdbHit:
                let behind = isTunnel(event.a) ? " behind \(remoteName(PortID(truncatingIfNeeded: event.a), event.b))" : ""
                line(.l2, "destination \(destination(original)) learned on \(portName(event.a))\(behind) -> forward")
            case .flooded:
                let what = event.a == 1 ? "broadcast" : event.a == 2 ? "multicast" : "unknown"
                line(.l2, "destination \(destination(original)) is \(what) -> flood")
            case .hairpin:
                dropped(
                    .l2, "hairpin",
                    isTunnel(Int32(ingress))
                        ? "destination \(destination(original)) is behind the ingress tunnel port too (\(remoteName(ingress, event.b))): never from one remote to another"
                        : "destination \(destination(original)) was learned on the ingress port")
            case .multicastSource:
                dropped(.l2, "multicast-source", "source MAC is a group address")
            case .sent:
                if event.c > 0, Int(event.a) < configuration.ports.count, let tunnel = configuration.ports[Int(event.a)].tunnel {
                    let to = event.c > tunnel.remotes.count ? "every remote" : "\(tunnel.remotes[Int(event.c) - 1])"
                    outs.append("\(portName(event.a)) (VXLAN to \(to))")
                } else {
                    outs.append("\(portName(event.a)) (\(event.b == 0 ? "untagged" : "tagged VID \(event.b)"))")
                }
            case .noDestination:
                dropped(.egress, "no-destination", "no other port in the network")
            }
        }
        if !outs.isEmpty { line(.egress, "out \(outs.joined(separator: ", "))") }
        return (lines, drop)
    }

    private static func state(_ kind: ConnectionEntry.Kind, _ bits: Int32) -> String {
        if kind == .tcp { return TCPConnectionState(rawValue: UInt8(truncatingIfNeeded: bits)).map { "\($0)" } ?? "?" }
        return bits & 0x100 != 0 ? "replied" : "unreplied"
    }

    private static func destination(_ frame: [UInt8]) -> String {
        frame.count >= 6 ? frame.withUnsafeBytes { "\($0.mac(0))" } : "?"
    }

    /// What the stage that dropped the frame recorded about why (`DropCause`), in words.
    static func explain(_ cause: DropCause, detail: UInt32, rule ruleIndex: Int32, _ topology: Topology) -> String {
        func rule() -> String {
            ruleIndex < 0 ? "no rule matched and default is drop"
                : "\(topology.firewall?.quote(rule: Int(ruleIndex)) ?? "rule \(ruleIndex + 1)") matched first"
        }
        switch cause {
        case .tcpWithoutConnection:
            return "TCP \(tcpFlags(UInt8(truncatingIfNeeded: detail))) without a connection (only a SYN opens one)"
        case .tcpOutOfWindow:
            let state = TCPConnectionState(rawValue: UInt8(truncatingIfNeeded: detail >> 16)).map { "\($0)" } ?? "?"
            let flags = tcpFlags(UInt8(truncatingIfNeeded: detail))
            let why: String
            switch TCPWindow.Check(rawValue: UInt8(truncatingIfNeeded: detail >> 8)) {
            case .sequenceAbove?: why = "beyond what the receiver's window allows"
            case .sequenceBelow?: why = "before the window (data acknowledged long ago, or an older connection's)"
            case .ackAbove?: why = "acknowledging data the other side never sent"
            case .ackBelow?: why = "acknowledging data from before the window"
            case .resetOutside?: why = "a RST whose sequence number is not in the receiver's window"
            case .resetNotForSYN?: why = "a RST that does not acknowledge the SYN"
            case nil: why = "outside the window"
            }
            return "TCP \(flags) outside its \(state) connection's window: \(why)"
        case .tcpOutOfState:
            let state = TCPConnectionState(rawValue: UInt8(truncatingIfNeeded: detail >> 8)).map { "\($0)" } ?? "?"
            return "TCP \(tcpFlags(UInt8(truncatingIfNeeded: detail))) does not fit its connection's state \(state)"
        case .unsolicitedEchoReply: return "echo reply to no tracked echo request"
        case .unrelatedICMPError:
            return "ICMP error (type \(detail)) quoting no tracked connection, or not sent back to the quoted packet's sender"
        case .strayFragment:
            return "a later fragment (identification \(detail)) whose first fragment was refused"
        case .duplicateFragment:
            return "a fragment (identification \(detail)) that repeats one already seen; the datagram goes on"
        case .overlappingFragment:
            return "a fragment (identification \(detail)) that overlaps another of its datagram, or lies past its end: the whole datagram is dropped"
        case .malformedFragment:
            return "an impossible fragment: past 65,535 bytes, empty, or not the last with a length not a multiple of 8"
        case .tooManyFragments:
            return "a datagram (identification \(detail)) of more than \(FragmentTable.maxFragments) fragments: dropped"
        case .fragmentNotHeld:
            return "a fragment (identification \(detail)) that came before its first fragment and could not be held (the held fragments are at their bound, or it is larger than \(FragmentTable.slotBytes) bytes): its datagram is dropped"
        case .refusedByRule: return "new connection; \(rule())"
        case .refusedAfterReload: return "a connection from before the reload that the new rules refuse; \(rule())"
        case .tooManyTags: return "three or more VLAN tags: the rules cannot see the payload"
        case .tableFull: return "new connection, but the table is full of connections that may not be evicted"
        case .notServed: return "to a VIP on a port or protocol it does not serve"
        case .allBackendsDrained: return "to a VIP service whose backends are all drained or down"
        case .untrackedServiceTraffic: return "to a VIP service, but belongs to no tracked connection"
        case .spoofedVIP: return "its source is a load balancer's VIP, which only the switch sends from"
        case .claimedVIP: return "it claims a load balancer's VIP (ARP sender or advertised target), which only the switch answers for"
        case .heldFramesFull: return "the backend's MAC is unknown and 16 frames already wait for it (or the frame is larger than a held frame may be)"
        case .none: return "no cause recorded"
        }
    }

    /// TCP flags (FrameFields' hex) as the letters test files use: `S`, `SA`, `FA`, `.` for none.
    static func letters(_ hex: String?) -> String {
        guard let hex, let flags = UInt8(hex.dropFirst(2), radix: 16) else { return hex ?? "?" }
        let letters = TCPFlags(rawValue: flags).letters
        return letters.isEmpty ? "." : letters
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
