import TapestryWire

/// A load balancer as the datapath runs it: a VIP service in one network and its backends.
public struct LoadBalancerConfiguration: Sendable, Equatable {
    public struct Backend: Sendable, Equatable {
        public var address: IPAddress
        public var port: UInt16
        public var weight: Int

        public init(address: IPAddress, port: UInt16, weight: Int = 1) {
            self.address = address
            self.port = port
            self.weight = weight
        }
    }

    public var name: String
    public var network: NetworkID
    /// IPv4 or IPv6, the family of every backend.
    public var vip: IPAddress
    public var port: UInt16
    /// IP protocol number: 6 (TCP) or 17 (UDP).
    public var proto: UInt8
    public var mac: MACAddress
    public var backends: [Backend]
    /// Active health checks (probes run only live); nil: every backend is always up.
    public var health: Health?
    /// Client affinity in nanoseconds: a client's new connection goes to the backend of its last
    /// one if that was this recent (and the backend is up and not drained); nil: off.
    public var affinity: Int64?

    public struct Health: Sendable, Equatable {
        public enum Probe: UInt8, Sendable { case tcp, icmp, arp }
        public var probe: Probe
        public var interval: Int64
        public var timeout: Int64
        public var rise: Int
        public var fall: Int

        /// - Parameters: interval and timeout in nanoseconds.
        public init(probe: Probe, interval: Int64, timeout: Int64, rise: Int, fall: Int) {
            self.probe = probe
            self.interval = interval
            self.timeout = timeout
            self.rise = rise
            self.fall = fall
        }
    }

    public init(
        name: String, network: NetworkID, vip: IPAddress, port: UInt16, proto: UInt8, mac: MACAddress,
        backends: [Backend], health: Health? = nil, affinity: Int64? = nil
    ) {
        self.health = health
        self.affinity = affinity
        self.name = name
        self.network = network
        self.vip = vip
        self.port = port
        self.proto = proto
        self.mac = mac
        self.backends = backends
    }
}
