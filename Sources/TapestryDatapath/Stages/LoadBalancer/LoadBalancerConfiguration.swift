import TapestryWire

/// A load balancer as the datapath runs it: a VIP service in one network and its backends.
public struct LoadBalancerConfiguration: Sendable, Equatable {
    public struct Backend: Sendable, Equatable {
        public var address: IPv4Address
        public var port: UInt16
        public var weight: Int

        public init(address: IPv4Address, port: UInt16, weight: Int = 1) {
            self.address = address
            self.port = port
            self.weight = weight
        }
    }

    public var name: String
    public var network: NetworkID
    public var vip: IPv4Address
    public var port: UInt16
    /// IP protocol number: 6 (TCP) or 17 (UDP).
    public var proto: UInt8
    public var mac: MACAddress
    public var backends: [Backend]

    public init(
        name: String, network: NetworkID, vip: IPv4Address, port: UInt16, proto: UInt8, mac: MACAddress,
        backends: [Backend]
    ) {
        self.name = name
        self.network = network
        self.vip = vip
        self.port = port
        self.proto = proto
        self.mac = mac
        self.backends = backends
    }
}
