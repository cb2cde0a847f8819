/// VXLAN (RFC 7348): the 8-byte header in front of an inner Ethernet frame, carried in UDP over
/// IPv4. A VXLAN port's socket sees the header and the inner frame (`decode`); its underlay
/// capture, and anything that must build the whole packet, has the outer IPv4 and UDP headers
/// too (`decodeUnderlay`, `writeUnderlay`).
///
/// Refused as Linux's `vxlan` driver refuses them: a header without the I flag, or with any other
/// flag or reserved bit set (no extension is negotiated: GBP, GPE and the rest are not spoken),
/// and a payload too short for the header and an inner Ethernet header.
public enum VXLAN {
    /// Flags (1), reserved (3), VNI (3), reserved (1).
    public static let headerLength = 8
    public static let defaultPort: UInt16 = 4789
    /// Outer IPv4 (20) + UDP (8) + VXLAN (8): what precedes the inner frame in the underlay.
    public static let underlayHeaderLength = 36
    /// What an inner IP packet loses to the underlay MTU: the outer headers and the inner
    /// Ethernet header (50 bytes over IPv4, as Linux sets a vxlan device's MTU).
    public static let overhead = underlayHeaderLength + 14
    public static let maxVNI: UInt32 = 0xFF_FFFF
    /// The I flag: the VNI field is valid.
    public static let validVNI: UInt8 = 0x08

    /// Why a packet is not a VXLAN packet this port takes.
    public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
        /// Shorter than the VXLAN header and an inner Ethernet header.
        case short(Int)
        /// The I flag is clear.
        case noVNIFlag
        /// A flag other than I, or a reserved field, is not zero.
        case reservedBits
        /// (Underlay) not an IPv4 packet with a consistent header and length.
        case notIPv4
        /// (Underlay) an IPv4 fragment: the tunnel does not reassemble (Linux does not either).
        case fragment
        /// (Underlay) not UDP, or a UDP header that does not fit the packet.
        case notUDP
        /// (Underlay) UDP to another port.
        case port(UInt16)
        /// (Underlay) the IPv4 header checksum, or a UDP checksum that is not 0, is wrong: the
        /// kernel drops such a packet before a socket sees it, and so does replay.
        case badChecksum

        public var description: String {
            switch self {
            case .short(let length): return "\(length) bytes: too short for the VXLAN header and an inner Ethernet header"
            case .noVNIFlag: return "the VXLAN header's I flag is clear"
            case .reservedBits: return "the VXLAN header has a flag other than I or a reserved bit set"
            case .notIPv4: return "not an IPv4 packet with a consistent header and length"
            case .fragment: return "an IPv4 fragment (tunnel packets are not reassembled)"
            case .notUDP: return "not UDP, or a UDP header that does not fit the packet"
            case .port(let port): return "UDP to port \(port), not the tunnel's"
            case .badChecksum: return "a wrong IPv4 header or UDP checksum"
            }
        }
    }

    /// A VXLAN payload's VNI; its inner frame starts at `headerLength`.
    public static func decode(_ payload: UnsafeRawBufferPointer) -> Result<UInt32, Problem> {
        guard payload.count >= headerLength + EthernetView.length else { return .failure(.short(payload.count)) }
        let flags = payload[0]
        guard flags & validVNI != 0 else { return .failure(.noVNIFlag) }
        guard flags == validVNI, payload[1] == 0, payload[2] == 0, payload[3] == 0, payload[7] == 0 else {
            return .failure(.reservedBits)
        }
        return .success(UInt32(payload[4]) << 16 | UInt32(payload[5]) << 8 | UInt32(payload[6]))
    }

    /// Writes the 8-byte header for `vni` (the low 24 bits) at `header`, which must have room.
    @inline(__always)
    public static func writeHeader(vni: UInt32, at header: UnsafeMutableRawBufferPointer) {
        header[0] = validVNI
        header[1] = 0
        header[2] = 0
        header[3] = 0
        header[4] = UInt8(truncatingIfNeeded: vni >> 16)
        header[5] = UInt8(truncatingIfNeeded: vni >> 8)
        header[6] = UInt8(truncatingIfNeeded: vni)
        header[7] = 0
    }

    /// The outer addresses and ports of an underlay packet, and the VXLAN payload's range in it.
    public struct Underlay: Equatable, Sendable {
        public var source: IPv4Address
        public var destination: IPv4Address
        public var sourcePort: UInt16
        public var destinationPort: UInt16
        /// The VXLAN header and inner frame, as offsets into the packet.
        public var payload: Range<Int>
    }

    /// An outer IPv4 packet (as a raw-IPv4 capture holds it) taken apart down to the VXLAN
    /// payload, for UDP destination port `port`. The payload is then `decode`d.
    public static func decodeUnderlay(_ packet: UnsafeRawBufferPointer, port: UInt16) -> Result<Underlay, Problem> {
        guard let ip = IPv4View(validating: packet) else { return .failure(.notIPv4) }
        guard !ip.moreFragments, ip.fragmentOffset == 0 else { return .failure(.fragment) }
        let l4 = ip.headerLength
        let end = ip.totalLength
        guard ip.proto == IPProtocol.udp, end - l4 >= 8 else { return .failure(.notUDP) }
        let udpLength = Int(packet.u16(l4 + 4))
        guard udpLength >= 8, udpLength <= end - l4 else { return .failure(.notUDP) }
        let destinationPort = packet.u16(l4 + 2)
        guard destinationPort == port else { return .failure(.port(destinationPort)) }
        guard ip.checksumIsValid else { return .failure(.badChecksum) }
        if packet.u16(l4 + 6) != 0 {
            let pseudo = InternetChecksum.ipv4PseudoHeaderSum(
                source: ip.source, destination: ip.destination, proto: IPProtocol.udp, length: udpLength)
            let datagram = UnsafeRawBufferPointer(rebasing: packet[l4..<(l4 + udpLength)])
            guard InternetChecksum.fold(InternetChecksum.sum(datagram, initial: pseudo)) == 0 else {
                return .failure(.badChecksum)
            }
        }
        return .success(
            Underlay(
                source: ip.source, destination: ip.destination, sourcePort: packet.u16(l4),
                destinationPort: destinationPort, payload: (l4 + 8)..<(l4 + udpLength)))
    }

    /// Writes the outer IPv4 (DF set, TTL 64, identification 0, header checksum) and UDP (checksum
    /// 0, as Linux's vxlan sends over IPv4 by default) headers and the VXLAN header into the
    /// `underlayHeaderLength` bytes at `headers`, in front of an inner frame of `innerLength`
    /// bytes. Nil when the packet would exceed 65,535 bytes.
    public static func writeUnderlay(
        at headers: UnsafeMutableRawBufferPointer, innerLength: Int, vni: UInt32,
        source: IPv4Address, destination: IPv4Address, sourcePort: UInt16, destinationPort: UInt16
    ) -> Int? {
        let total = underlayHeaderLength + innerLength
        guard innerLength >= 0, total <= 65_535, headers.count >= underlayHeaderLength else { return nil }
        headers[0] = 0x45
        headers[1] = 0
        headers.setU16(2, UInt16(total))
        headers.setU16(4, 0)
        headers.setU16(6, 0x4000)
        headers[8] = 64
        headers[9] = IPProtocol.udp
        headers.setU16(10, 0)
        headers.setU32(12, source.rawValue)
        headers.setU32(16, destination.rawValue)
        let checksum = InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: headers[0..<20])))
        headers.setU16(10, checksum)
        headers.setU16(20, sourcePort)
        headers.setU16(22, destinationPort)
        headers.setU16(24, UInt16(total - 20))
        headers.setU16(26, 0)
        writeHeader(vni: vni, at: UnsafeMutableRawBufferPointer(rebasing: headers[28..<36]))
        return total
    }

    /// The UDP source port for an inner flow: RFC 7348 asks for a hash of the inner headers in the
    /// dynamic range (49152-65535), so that the underlay's ECMP spreads flows and keeps one flow
    /// on one path.
    @inline(__always)
    public static func sourcePort(flowHash: UInt64) -> UInt16 {
        // The high bits: the table hashes are keyed SipHash, whose high bits are as good as any.
        49152 | UInt16(truncatingIfNeeded: flowHash >> 50)
    }
}
