/// The firewall as the datapath runs it: rules with names resolved, prefixes as 128-bit masks
/// (IPv4 as IPv4-mapped), timeouts in nanoseconds.
public struct FirewallConfiguration: Sendable, Equatable {
    public enum Action: Sendable, Hashable { case allow, drop }

    /// A 128-bit prefix over IPv4-mapped or IPv6 addresses, with its family: an IPv4 prefix
    /// matches only IPv4 packets and an IPv6 prefix only IPv6 packets, so `::/0` never admits
    /// IPv4 and `10.0.0.0/8` never admits an IPv6 packet from `::ffff:10.x.x.x`.
    public struct Prefix: Sendable, Hashable {
        public var high: UInt64
        public var low: UInt64
        public var maskHigh: UInt64
        public var maskLow: UInt64
        public var isIPv6: Bool

        public static func ipv4(_ address: UInt32, length: Int) -> Prefix {
            let v4Mask: UInt64 = length == 0 ? 0 : UInt64(~UInt32(0) << (32 - length))
            return Prefix(
                high: 0, low: FlowKey.mapped(address) & (0xFFFF_FFFF_0000_0000 | v4Mask), maskHigh: ~0,
                maskLow: 0xFFFF_FFFF_0000_0000 | v4Mask, isIPv6: false)
        }

        public static func ipv6(high: UInt64, low: UInt64, length: Int) -> Prefix {
            let maskHigh: UInt64 = length >= 64 ? ~0 : (length == 0 ? 0 : ~UInt64(0) << (64 - length))
            let maskLow: UInt64 = length <= 64 ? 0 : (length >= 128 ? ~0 : ~UInt64(0) << (128 - length))
            return Prefix(high: high & maskHigh, low: low & maskLow, maskHigh: maskHigh, maskLow: maskLow, isIPv6: true)
        }

        @inline(__always)
        func contains(high addressHigh: UInt64, low addressLow: UInt64, isIPv6 packetIsIPv6: Bool) -> Bool {
            packetIsIPv6 == isIPv6 && addressHigh & maskHigh == high && addressLow & maskLow == low
        }
    }

    /// One rule: each list matches when any of its entries does, an empty list matches anything.
    public struct Rule: Sendable, Hashable {
        public var action: Action
        /// IP protocol number, nil for any.
        public var proto: UInt8?
        public var sources: [Prefix]
        public var destinations: [Prefix]
        public var sourcePorts: [ClosedRange<UInt16>]
        public var destinationPorts: [ClosedRange<UInt16>]
        public var network: NetworkID?
        /// Log the new connections this rule decides.
        public var log: Bool

        public init(
            action: Action, proto: UInt8? = nil, sources: [Prefix] = [], destinations: [Prefix] = [],
            sourcePorts: [ClosedRange<UInt16>] = [], destinationPorts: [ClosedRange<UInt16>] = [],
            network: NetworkID? = nil, log: Bool = false
        ) {
            self.action = action
            self.proto = proto
            self.sources = sources
            self.destinations = destinations
            self.sourcePorts = sourcePorts
            self.destinationPorts = destinationPorts
            self.network = network
            self.log = log
        }
    }

    /// Per-state idle timeouts in nanoseconds.
    public struct Timeouts: Sendable, Equatable {
        public var tcp: [Int64]  // indexed by TCPConnectionState.rawValue
        public var udp: Int64
        public var udpStream: Int64
        public var icmp: Int64

        /// Linux nf_conntrack's defaults, the values nftables users know.
        public static let defaults = Timeouts(seconds: [:])

        /// From `firewall.timeouts` names; absent names take the defaults.
        public init(seconds: [String: Int]) {
            func value(_ name: String, _ fallback: Int) -> Int64 { Int64(seconds[name] ?? fallback) * 1_000_000_000 }
            tcp = [
                value("tcp_syn_sent", 120), value("tcp_syn_recv", 60), value("tcp_established", 432_000),
                value("tcp_fin_wait", 120), value("tcp_close_wait", 60), value("tcp_last_ack", 30),
                value("tcp_time_wait", 120), value("tcp_close", 10),
            ]
            udp = value("udp", 30)
            udpStream = value("udp_stream", 120)
            icmp = value("icmp", 30)
        }
    }

    public var defaultAction: Action
    public var maxConnections: Int
    public var timeouts: Timeouts
    public var rules: [Rule]
    /// Log the new connections `defaultAction` decides.
    public var logDefault: Bool
    /// How long a permitted first fragment lets later fragments of its datagram through.
    public var fragmentTimeout: Int64 = 30 * 1_000_000_000

    public static let defaultMaxConnections = 262_144

    public init(
        defaultAction: Action, maxConnections: Int = defaultMaxConnections, timeouts: Timeouts = .defaults,
        rules: [Rule] = [], logDefault: Bool = false
    ) {
        self.defaultAction = defaultAction
        self.maxConnections = maxConnections
        self.timeouts = timeouts
        self.rules = rules
        self.logDefault = logDefault
    }
}
