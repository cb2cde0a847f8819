import Foundation
import TapestryWire

/// A validated topology file (version 1): networks, ports, and the optional firewall and load
/// balancers. Only `TopologyLoader` makes one, so every value here has passed validation.
public struct Topology: Sendable, Equatable {
    public var name: String
    public var macAgingSeconds: Int = 300
    public var macTableSize: Int = 8192
    /// Control socket path; `defaultControlPath` when the file does not set it.
    public var control: String?
    public var metrics: SocketAddress?
    public var networks: [Network] = []
    public var ports: [Port] = []
    public var firewall: Firewall?
    public var loadBalancers: [LoadBalancer] = []

    /// Bounds on what one file may declare, so no topology can overflow the datapath's 16-bit
    /// balancer and backend ids or make the per-frame backend scan long.
    public static let maxLoadBalancers = 256
    public static let maxBackends = 256

    public var controlPath: String { control ?? "\(Self.defaultControlDirectory)/\(name).sock" }

    /// Where control sockets live unless `control:` says otherwise: /run/tapestry for root; an
    /// ordinary user (a switch with only socket ports needs no root) cannot write there, so theirs
    /// go to $XDG_RUNTIME_DIR/tapestry, or /tmp/tapestry-UID without one.
    public static var defaultControlDirectory: String {
        if geteuid() == 0 { return "/run/tapestry" }
        if let runtime = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], runtime.hasPrefix("/") {
            return "\(runtime)/tapestry"
        }
        return "/tmp/tapestry-\(getuid())"
    }

    public struct Network: Sendable, Equatable {
        public var name: String
        public var vlan: UInt16
        /// The network's VXLAN id on `vxlan:` ports (`vni`, default the VLAN id).
        public var vni: UInt32
        public init(name: String, vlan: UInt16, vni: UInt32? = nil) {
            self.name = name
            self.vlan = vlan
            self.vni = vni ?? UInt32(vlan)
        }
    }

    public struct Port: Sendable, Equatable {
        public enum Attachment: Sendable, Equatable {
            case tap(String)
            case socket(SocketEndpoint)
            case interface(String)
            case vxlan(VXLANTunnel)
        }
        public enum Mode: Sendable, Equatable {
            case access(network: String)
            case trunk(networks: [String], native: String?)
        }
        public var name: String
        public var attachment: Attachment
        public var mode: Mode
        public var netns: String?
        /// At most this many MACs learned on the port (`mac_limit`), nil for the table's bound only.
        public var macLimit: Int? = nil
        /// Who may connect to a socket port (`peers`, `mode`, `group`); the defaults elsewhere.
        public var access = SocketAccess()
    }

    /// A `vxlan:` port's tunnel: its UDP socket binds `local:port` (in the port's `netns`, if
    /// set) and exchanges VXLAN packets with `remotes` only.
    public struct VXLANTunnel: Sendable, Equatable {
        public var local: IPv4Address
        public var remotes: [IPv4Address]
        public var port: UInt16 = VXLAN.defaultPort
        /// The underlay MTU: the largest outer IPv4 packet sent.
        public var mtu: Int = 1500
        public init(local: IPv4Address, remotes: [IPv4Address], port: UInt16 = VXLAN.defaultPort, mtu: Int = 1500) {
            self.local = local
            self.remotes = remotes
            self.port = port
            self.mtu = mtu
        }

        /// At most this many remotes per port: a flood is sent once to each.
        public static let maxRemotes = 256
        /// Outer packets smaller than this could not carry a minimal inner IPv4 packet.
        public static let mtuRange = 68 + VXLAN.overhead...65_535
    }

    /// Where a `socket:` port listens for its QEMU peer, as the topology spells it:
    /// `/PATH` (unix stream, QEMU `-netdev stream`), `IP:PORT` (TCP stream, likewise) or
    /// `dgram:/PATH` (unix datagrams, QEMU `-netdev dgram`).
    public enum SocketEndpoint: Sendable, Equatable, CustomStringConvertible {
        case unixStream(path: String)
        case tcpStream(SocketAddress)
        case unixDatagram(path: String)

        /// The file a unix endpoint binds (nil for TCP).
        public var path: String? {
            switch self {
            case .unixStream(let path), .unixDatagram(let path): return path
            case .tcpStream: return nil
            }
        }

        public var description: String {
            switch self {
            case .unixStream(let path): return path
            case .tcpStream(let address): return address.description
            case .unixDatagram(let path): return "dgram:\(path)"
            }
        }
    }

    public struct SocketAddress: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: UInt16
        public init(host: String, port: UInt16) {
            self.host = host
            self.port = port
        }
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public func network(named name: String) -> Network? { networks.first { $0.name == name } }
    public func port(named name: String) -> Port? { ports.first { $0.name == name } }
}

extension Topology {
    public struct Firewall: Sendable, Equatable {
        public enum Action: String, Sendable, Equatable { case allow, drop }
        public var defaultAction: Action
        public var maxConnections: Int = 262_144
        /// Only the names in `Firewall.timeoutNames`, in seconds; absent names take their defaults.
        public var timeouts: [String: Int] = [:]
        public var rules: [Rule] = []
        /// `log_default: true`: log the new connections `default` decides (rate-limited like a rule's).
        public var logDefault = false

        /// Every timeout a topology may set, with its default in seconds (Linux nf_conntrack's
        /// defaults, the values nftables users know).
        public static let defaultTimeouts: [(name: String, seconds: Int)] = [
            ("tcp_syn_sent", 120), ("tcp_syn_recv", 60), ("tcp_established", 432_000), ("tcp_fin_wait", 120),
            ("tcp_close_wait", 60), ("tcp_last_ack", 30), ("tcp_time_wait", 120), ("tcp_close", 10),
            ("udp", 30), ("udp_stream", 120), ("icmp", 30),
        ]
    }

    public struct Rule: Sendable, Equatable {
        public enum Proto: String, Sendable, Equatable, CaseIterable { case tcp, udp, icmp, icmpv6, any }
        public var action: Firewall.Action
        public var proto: Proto = .any
        /// Each list matches when any of its entries does; an empty list matches everything.
        public var sources: [IPPrefix] = []
        public var destinations: [IPPrefix] = []
        public var sourcePorts: [ClosedRange<UInt16>] = []
        public var destinationPorts: [ClosedRange<UInt16>] = []
        public var network: String?
        /// `log: true`: each new connection the rule decides is logged (rate-limited).
        public var log = false
        /// Where the rule is written (its first line) and its fields as written, for `ctl rules`,
        /// `trace` and the log.
        public var file = ""
        public var line = 1
        public var text = ""

        /// At most this many entries in each of a rule's lists, so a rule's cost per new
        /// connection stays bounded.
        public static let maxListEntries = 256

        /// `FILE:LINE` of the rule.
        public var location: String { "\(file):\(line)" }
    }

    public struct LoadBalancer: Sendable, Equatable {
        public enum Proto: String, Sendable, Equatable { case tcp, udp }
        public struct Backend: Sendable, Equatable {
            public var address: IPAddress
            public var port: UInt16
            public var weight: Int = 1
        }
        public var name: String
        public var network: String
        /// IPv4 or IPv6; every backend is of the same family.
        public var vip: IPAddress
        public var port: UInt16
        public var proto: Proto = .tcp
        public var mac: MACAddress
        public var backends: [Backend]
        /// Active health checks (`health:`); nil: every backend is always up.
        public var health: Health? = nil
        /// Client affinity in seconds (`affinity:`); nil: plain round robin.
        public var affinity: Int? = nil

        public struct Health: Sendable, Equatable {
            public enum Probe: String, Sendable, Equatable, CaseIterable { case tcp, icmp, arp }
            public var probe: Probe = .tcp
            /// Seconds between probes of one backend, seconds to wait for an answer.
            public var interval = 2
            public var timeout = 1
            /// Successes in a row that bring a down backend up; failures in a row that take an up one down.
            public var rise = 2
            public var fall = 2
            public init() {}
        }
    }

    /// The default LB MAC: locally administered (0x02 first byte), the other five bytes from an
    /// FNV-1a hash of "SWITCH/LB", so it is stable across restarts and differs between switches.
    public static func derivedMAC(switchName: String, loadBalancer: String) -> MACAddress {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(switchName)/\(loadBalancer)".utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return MACAddress(rawValue: 0x0200_0000_0000 | (hash & 0x00FF_FFFF_FFFF))
    }
}
