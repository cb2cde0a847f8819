import TapestryWire

/// A frame described by its layers and fields, the syntax of test files and of `tapestry decode`:
/// `eth`, optional `vlan` tags, one of `arp`/`ipv4`/`ipv6`, after IP one of
/// `tcp`/`udp`/`icmp`/`icmpv6`, then `payload`; or `raw` bytes alone. A field left nil takes its
/// default when the frame is built (`build()`): types, protocols, lengths and checksums from the
/// layers, TTL and hop limit 64, TCP flags S and window 65535, ARP's sender MAC the source MAC.
public struct FrameSpec: Equatable, Sendable {
    public struct Ethernet: Equatable, Sendable {
        public var src: MACAddress?
        public var dst: MACAddress?
        /// The EtherType after the tags.
        public var type: UInt16?
        public init() {}
    }

    public struct VLAN: Equatable, Sendable {
        public var vid: UInt16 = 0
        public var pcp: UInt8 = 0
        public var dei: UInt8 = 0
        public var tpid: UInt16 = EtherType.vlan
        public init(vid: UInt16 = 0) { self.vid = vid }
    }

    public struct ARP: Equatable, Sendable {
        /// 1 request, 2 reply.
        public var op: UInt16 = 1
        public var sha: MACAddress?
        public var spa = IPv4Address(rawValue: 0)
        public var tha = MACAddress.zero
        public var tpa = IPv4Address(rawValue: 0)
        public init() {}
    }

    public struct IPv4: Equatable, Sendable {
        public var src = IPv4Address(rawValue: 0)
        public var dst = IPv4Address(rawValue: 0)
        public var ttl: UInt8 = 64
        public var tos: UInt8 = 0
        public var id: UInt16 = 0
        public var df = false
        public var mf = false
        /// The fragment offset in bytes (a multiple of 8).
        public var frag: Int = 0
        public var proto: UInt8?
        public var checksum: UInt16?
        /// Header options (a multiple of 4 bytes); an extension of the contract's fields.
        public var options: [UInt8] = []
        public init() {}
    }

    public struct IPv6: Equatable, Sendable {
        public struct Fragment: Equatable, Sendable {
            public var id: UInt32 = 0
            /// In bytes (a multiple of 8).
            public var offset: Int = 0
            public var more = false
            public init() {}
        }
        public var src = IPv6Address(high: 0, low: 0)
        public var dst = IPv6Address(high: 0, low: 0)
        public var hlim: UInt8 = 64
        public var tc: UInt8 = 0
        public var flow: UInt32 = 0
        /// The upper-layer protocol (after a fragment header, if any).
        public var nh: UInt8?
        public var frag: Fragment?
        public init() {}
    }

    public struct TCP: Equatable, Sendable {
        public var sport: UInt16 = 0
        public var dport: UInt16 = 0
        public var seq: UInt32 = 0
        public var ack: UInt32 = 0
        public var flags: UInt8 = 0x02
        public var window: UInt16 = 65535
        public var checksum: UInt16?
        /// TCP options (a multiple of 4 bytes); an extension of the contract's fields.
        public var options: [UInt8] = []
        public init() {}
    }

    public struct UDP: Equatable, Sendable {
        public var sport: UInt16 = 0
        public var dport: UInt16 = 0
        public var checksum: UInt16?
        public init() {}
    }

    /// ICMP or ICMPv6: echo (`id`, `seq`), an error quoting a packet (`quote`: from its IP layer
    /// on), neighbour discovery (`target`, and a neighbor advertisement's `flags`: R 0x80, S 0x40,
    /// O 0x20), or any other type with the payload after the header.
    public struct ICMP: Equatable, Sendable {
        public var type: UInt8 = 8
        public var code: UInt8 = 0
        public var id: UInt16 = 0
        public var seq: UInt16 = 0
        public var target: IPv6Address?
        public var neighborFlags: UInt8 = 0
        public var checksum: UInt16?
        public var quote: Quote?
        public init() {}
    }

    /// The packet an ICMP error carries (a class: a spec holds itself only through it).
    public final class Quote: Equatable, Sendable {
        public let spec: FrameSpec
        public init(_ spec: FrameSpec) { self.spec = spec }
        public static func == (a: Quote, b: Quote) -> Bool { a.spec == b.spec }
    }

    public enum Network: Equatable, Sendable {
        case arp(ARP)
        case ipv4(IPv4)
        case ipv6(IPv6)
    }

    public enum Transport: Equatable, Sendable {
        case tcp(TCP)
        case udp(UDP)
        case icmp(ICMP)
        case icmpv6(ICMP)
    }

    /// The whole frame as bytes; when set, every other field is ignored.
    public var raw: [UInt8]?
    public var eth = Ethernet()
    /// Outer first; at most two.
    public var vlans: [VLAN] = []
    public var network: Network?
    public var transport: Transport?
    public var payload: [UInt8] = []
    /// Zero-pad frames shorter than 60 bytes to 60.
    public var pad = true

    public init() {}

    public init(raw: [UInt8]) { self.raw = raw }
}

/// Why a frame spec cannot be built.
public struct FrameSpecError: Error, Equatable, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
