/// A connection's identity, the same for both directions: the two endpoints are stored in a
/// canonical order (A < B), so a packet and its reply find one entry with one lookup; which
/// endpoint opened the connection is kept in the entry. IPv4 addresses are stored IPv4-mapped
/// (::ffff:a.b.c.d) so one key type serves both families.
///
/// Five 64-bit words: the addresses, and network, protocol, family and both ports packed into one
/// word, so a key is built with whole-word stores and compared with five comparisons (building it
/// from 16-bit fields made every lookup wait on store forwarding).
public struct FlowKey: Equatable, Sendable {
    public var aHigh: UInt64 = 0
    public var aLow: UInt64 = 0
    public var bHigh: UInt64 = 0
    public var bLow: UInt64 = 0
    /// network << 48 | protocol << 40 | IPv6 << 32 | port A << 16 | port B
    public var meta: UInt64 = 0

    public init() {}

    public var network: UInt16 { UInt16(truncatingIfNeeded: meta >> 48) }
    public var proto: UInt8 { UInt8(truncatingIfNeeded: meta >> 40) }
    public var isIPv6: Bool { meta & (1 << 32) != 0 }
    public var aPort: UInt16 { UInt16(truncatingIfNeeded: meta >> 16) }
    public var bPort: UInt16 { UInt16(truncatingIfNeeded: meta) }

    /// Builds the canonical key of a packet and tells whether its source is endpoint A.
    @inline(__always)
    public init(
        network: UInt16, proto: UInt8, isIPv6: Bool, sourceHigh: UInt64, sourceLow: UInt64, sourcePort: UInt16,
        destinationHigh: UInt64, destinationLow: UInt64, destinationPort: UInt16, sourceIsA: inout Bool
    ) {
        let sourceFirst: Bool
        if sourceHigh != destinationHigh {
            sourceFirst = sourceHigh < destinationHigh
        } else if sourceLow != destinationLow {
            sourceFirst = sourceLow < destinationLow
        } else {
            sourceFirst = sourcePort <= destinationPort
        }
        sourceIsA = sourceFirst
        let common = UInt64(network) << 48 | UInt64(proto) << 40 | (isIPv6 ? 1 << 32 : 0)
        if sourceFirst {
            aHigh = sourceHigh
            aLow = sourceLow
            bHigh = destinationHigh
            bLow = destinationLow
            meta = common | UInt64(sourcePort) << 16 | UInt64(destinationPort)
        } else {
            aHigh = destinationHigh
            aLow = destinationLow
            bHigh = sourceHigh
            bLow = sourceLow
            meta = common | UInt64(destinationPort) << 16 | UInt64(sourcePort)
        }
    }

    /// IPv4-mapped IPv6 form of an IPv4 address, low half.
    @inline(__always)
    public static func mapped(_ address: UInt32) -> UInt64 { 0x0000_FFFF_0000_0000 | UInt64(address) }

    /// Keyed: see `HashKey` (an unkeyed hash of a key an attacker chooses lets them precompute
    /// colliding flows).
    @inline(__always)
    func hash(_ key: HashKey) -> UInt64 {
        key.hash(aHigh, aLow, bHigh, bLow, meta)
    }

    @inline(__always)
    public static func == (lhs: FlowKey, rhs: FlowKey) -> Bool {
        lhs.meta == rhs.meta && lhs.aLow == rhs.aLow && lhs.bLow == rhs.bLow && lhs.aHigh == rhs.aHigh
            && lhs.bHigh == rhs.bHigh
    }
}
