/// A connection's identity, the same for both directions: the two endpoints are stored in a
/// canonical order (A < B), so a packet and its reply find one entry with one lookup; which
/// endpoint opened the connection is kept in the entry. IPv4 addresses are stored IPv4-mapped
/// (::ffff:a.b.c.d) so one key type serves both families.
public struct FlowKey: Equatable, Sendable {
    public var aHigh: UInt64 = 0
    public var aLow: UInt64 = 0
    public var bHigh: UInt64 = 0
    public var bLow: UInt64 = 0
    public var aPort: UInt16 = 0
    public var bPort: UInt16 = 0
    public var network: UInt16 = 0
    public var proto: UInt8 = 0
    public var isIPv6 = false

    public init() {}

    /// Builds the canonical key of a packet and tells whether its source is endpoint A.
    @inline(__always)
    public init(
        network: UInt16, proto: UInt8, isIPv6: Bool, sourceHigh: UInt64, sourceLow: UInt64, sourcePort: UInt16,
        destinationHigh: UInt64, destinationLow: UInt64, destinationPort: UInt16, sourceIsA: inout Bool
    ) {
        self.network = network
        self.proto = proto
        self.isIPv6 = isIPv6
        let sourceFirst =
            (sourceHigh, sourceLow, sourcePort) <= (destinationHigh, destinationLow, destinationPort)
        sourceIsA = sourceFirst
        if sourceFirst {
            (aHigh, aLow, aPort, bHigh, bLow, bPort) = (
                sourceHigh, sourceLow, sourcePort, destinationHigh, destinationLow, destinationPort
            )
        } else {
            (aHigh, aLow, aPort, bHigh, bLow, bPort) = (
                destinationHigh, destinationLow, destinationPort, sourceHigh, sourceLow, sourcePort
            )
        }
    }

    /// IPv4-mapped IPv6 form of an IPv4 address, low half.
    @inline(__always)
    public static func mapped(_ address: UInt32) -> UInt64 { 0x0000_FFFF_0000_0000 | UInt64(address) }

    @inline(__always)
    func hash(seed: UInt64) -> UInt64 {
        var h = seed ^ (UInt64(network) << 48 | UInt64(proto) << 40 | UInt64(aPort) << 16 | UInt64(bPort))
        h = (h ^ aLow) &* 0x9E37_79B9_7F4A_7C15
        h = (h ^ bLow) &* 0xBF58_476D_1CE4_E5B9
        h = (h ^ aHigh ^ (bHigh << 1)) &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 29)
    }
}
