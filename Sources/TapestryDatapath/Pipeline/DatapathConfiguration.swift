import TapestryWire

/// What the datapath needs to know about a topology, with names resolved to indices.
///
/// Built from a validated `Topology` by the layer above (the datapath does not parse YAML);
/// `init` checks the invariants that validation already guaranteed, so a bad table is a
/// programming error, not a runtime drop.
public struct DatapathConfiguration: Sendable {
    public struct Network: Sendable, Equatable {
        public var name: String
        public var vid: UInt16
        /// The VXLAN id the network has on tunnel ports.
        public var vni: UInt32
        public init(name: String, vid: UInt16, vni: UInt32? = nil) {
            self.name = name
            self.vid = vid
            self.vni = vni ?? UInt32(vid)
        }
    }

    public enum PortMode: Sendable, Equatable {
        case access(NetworkID)
        case trunk([NetworkID], native: NetworkID?)
    }

    /// A VXLAN port's tunnel: frames leave it untagged inside VXLAN, to one remote or (floods)
    /// to each, and enter it from a listed remote in the network of their VNI.
    public struct Tunnel: Sendable, Equatable {
        public var local: IPv4Address
        public var remotes: [IPv4Address]
        public var udpPort: UInt16
        /// The largest outer IPv4 packet.
        public var mtu: Int
        public init(local: IPv4Address, remotes: [IPv4Address], udpPort: UInt16 = VXLAN.defaultPort, mtu: Int = 1500) {
            self.local = local
            self.remotes = remotes
            self.udpPort = udpPort
            self.mtu = mtu
        }
    }

    public struct Port: Sendable, Equatable {
        public var name: String
        public var mode: PortMode
        /// At most this many MAC entries learned on the port (0: only the table's bound).
        public var macLimit: Int
        /// Set for a VXLAN port.
        public var tunnel: Tunnel?
        public init(name: String, mode: PortMode, macLimit: Int = 0, tunnel: Tunnel? = nil) {
            self.name = name
            self.mode = mode
            self.macLimit = macLimit
            self.tunnel = tunnel
        }

        /// Networks whose frames may leave this port.
        public var networks: [NetworkID] {
            switch mode {
            case .access(let network): return [network]
            case .trunk(let networks, _): return networks
            }
        }
    }

    public var networks: [Network]
    public var ports: [Port]
    public var macAgingSeconds: Int
    public var macTableSize: Int
    /// Nil: no firewall stage, every connection allowed.
    public var firewall: FirewallConfiguration?
    public var loadBalancers: [LoadBalancerConfiguration]
    /// The connection table's size when load balancers track connections without a firewall
    /// (the topology has no key for it; the fuzz target shrinks it so that a datapath is cheap to
    /// build per input and the table-full paths are reached).
    public var trackingOnlyConnections = FirewallConfiguration.defaultMaxConnections
    /// The fragment table's slots (a power of two at least this; the topology has no key for it;
    /// the fuzz target shrinks it, as it does the connection table, so that building a datapath
    /// per input is cheap and collisions happen).
    public var fragmentSlots = 4096

    public init(
        networks: [Network], ports: [Port], macAgingSeconds: Int = 300, macTableSize: Int = 8192,
        firewall: FirewallConfiguration? = nil, loadBalancers: [LoadBalancerConfiguration] = []
    ) {
        precondition(ports.count < Int(PortID.max) && networks.count < 4095)
        for port in ports {
            for network in port.networks { precondition(Int(network) < networks.count) }
            if case .trunk(let list, let native?) = port.mode { precondition(list.contains(native) && port.tunnel == nil) }
            if let tunnel = port.tunnel { precondition(!tunnel.remotes.isEmpty && tunnel.remotes.count < Int(UInt16.max)) }
        }
        self.networks = networks
        self.ports = ports
        self.macAgingSeconds = macAgingSeconds
        self.macTableSize = macTableSize
        self.firewall = firewall
        self.loadBalancers = loadBalancers
    }

    public func portID(named name: String) -> PortID? {
        ports.firstIndex { $0.name == name }.map { PortID($0) }
    }
}
