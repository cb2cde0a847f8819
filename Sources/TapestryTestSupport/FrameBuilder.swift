import TapestryWire

/// Builds well-formed test frames (correct lengths and checksums) as byte arrays, the role of
/// smoltcp's `Repr::emit`. Tests and benchmarks use it; the datapath never does.
public enum FrameBuilder {
    public struct Tag: Sendable {
        public var tpid: UInt16
        public var pcp: UInt8
        public var dei: Bool
        public var vid: UInt16
        public init(tpid: UInt16 = EtherType.vlan, pcp: UInt8 = 0, dei: Bool = false, vid: UInt16) {
            self.tpid = tpid
            self.pcp = pcp
            self.dei = dei
            self.vid = vid
        }
        public static func dot1q(_ vid: UInt16, pcp: UInt8 = 0, dei: Bool = false) -> Tag { Tag(pcp: pcp, dei: dei, vid: vid) }
        public static func dot1ad(_ vid: UInt16) -> Tag { Tag(tpid: EtherType.qinq, vid: vid) }
        var tci: UInt16 { UInt16(pcp) << 13 | (dei ? 0x1000 : 0) | vid }
    }

    public static func ethernet(
        dst: MACAddress, src: MACAddress, tags: [Tag] = [], type: UInt16, payload: [UInt8]
    ) -> [UInt8] {
        var frame = dst.bytes + src.bytes
        for tag in tags { frame += be16(tag.tpid) + be16(tag.tci) }
        return frame + be16(type) + payload
    }

    /// An Ethernet frame padded to the 60-byte minimum (without FCS), as a NIC would send it.
    public static func padded(_ frame: [UInt8]) -> [UInt8] {
        frame.count >= 60 ? frame : frame + [UInt8](repeating: 0, count: 60 - frame.count)
    }

    public static func arp(
        operation: UInt16, senderMAC: MACAddress, senderIP: IPv4Address, targetMAC: MACAddress, targetIP: IPv4Address
    ) -> [UInt8] {
        be16(1) + be16(EtherType.ipv4) + [6, 4] + be16(operation) + senderMAC.bytes + be32(senderIP.rawValue)
            + targetMAC.bytes + be32(targetIP.rawValue)
    }

    public static func arpRequest(
        src: MACAddress, senderIP: IPv4Address, targetIP: IPv4Address, tags: [Tag] = []
    ) -> [UInt8] {
        padded(
            ethernet(
                dst: .broadcast, src: src, tags: tags, type: EtherType.arp,
                payload: arp(operation: 1, senderMAC: src, senderIP: senderIP, targetMAC: .zero, targetIP: targetIP)))
    }

    /// An IPv4 header (with `options`, a multiple of 4 bytes) and payload, header checksum set.
    public static func ipv4(
        src: IPv4Address, dst: IPv4Address, proto: UInt8, payload: [UInt8], ttl: UInt8 = 64,
        identification: UInt16 = 1, flagsAndFragment: UInt16 = 0x4000, options: [UInt8] = []
    ) -> [UInt8] {
        precondition(options.count % 4 == 0)
        let headerLength = 20 + options.count
        var header: [UInt8] = [UInt8(0x40 | headerLength / 4), 0] + be16(UInt16(headerLength + payload.count))
        header += be16(identification) + be16(flagsAndFragment) + [ttl, proto, 0, 0]
        header += be32(src.rawValue) + be32(dst.rawValue) + options
        let checksum = header.withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0)) }
        header[10] = UInt8(checksum >> 8)
        header[11] = UInt8(checksum & 0xFF)
        return header + payload
    }

    public static func ipv6(
        src: IPv6Address, dst: IPv6Address, nextHeader: UInt8, payload: [UInt8], hopLimit: UInt8 = 64
    ) -> [UInt8] {
        [0x60, 0, 0, 0] + be16(UInt16(payload.count)) + [nextHeader, hopLimit] + v6(src) + v6(dst) + payload
    }

    /// A UDP datagram with its checksum over the given pseudo-header sum.
    public static func udp(sport: UInt16, dport: UInt16, payload: [UInt8], pseudo: UInt64) -> [UInt8] {
        var segment = be16(sport) + be16(dport) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
        var checksum = segment.withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0, initial: pseudo)) }
        if checksum == 0 { checksum = 0xFFFF }
        segment[6] = UInt8(checksum >> 8)
        segment[7] = UInt8(checksum & 0xFF)
        return segment
    }

    public static func tcp(
        sport: UInt16, dport: UInt16, flags: TCPFlags, seq: UInt32 = 1000, ack: UInt32 = 0, payload: [UInt8] = [],
        pseudo: UInt64
    ) -> [UInt8] {
        var segment = be16(sport) + be16(dport) + be32(seq) + be32(ack) + [0x50, flags.rawValue] + be16(65535)
        segment += [0, 0, 0, 0] + payload
        let checksum = segment.withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0, initial: pseudo)) }
        segment[16] = UInt8(checksum >> 8)
        segment[17] = UInt8(checksum & 0xFF)
        return segment
    }

    public static func icmp(type: UInt8, code: UInt8 = 0, identifier: UInt16, sequence: UInt16, payload: [UInt8] = [], pseudo: UInt64 = 0)
        -> [UInt8]
    {
        var message = [type, code, 0, 0] + be16(identifier) + be16(sequence) + payload
        let checksum = message.withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0, initial: pseudo)) }
        message[2] = UInt8(checksum >> 8)
        message[3] = UInt8(checksum & 0xFF)
        return message
    }

    /// A complete Ethernet/IPv4/UDP frame.
    public static func udp4(
        dst: MACAddress, src: MACAddress, from: IPv4Address, to: IPv4Address, sport: UInt16 = 40000,
        dport: UInt16 = 5000, payload: [UInt8] = Array("hello tapestry".utf8), tags: [Tag] = []
    ) -> [UInt8] {
        let pseudo = InternetChecksum.ipv4PseudoHeaderSum(
            source: from, destination: to, proto: IPProtocol.udp, length: 8 + payload.count)
        let segment = udp(sport: sport, dport: dport, payload: payload, pseudo: pseudo)
        return padded(
            ethernet(
                dst: dst, src: src, tags: tags, type: EtherType.ipv4,
                payload: ipv4(src: from, dst: to, proto: IPProtocol.udp, payload: segment)))
    }

    /// A complete Ethernet/IPv4/TCP frame.
    public static func tcp4(
        dst: MACAddress, src: MACAddress, from: IPv4Address, to: IPv4Address, sport: UInt16 = 40000,
        dport: UInt16 = 80, flags: TCPFlags = .syn, payload: [UInt8] = [], tags: [Tag] = []
    ) -> [UInt8] {
        let pseudo = InternetChecksum.ipv4PseudoHeaderSum(
            source: from, destination: to, proto: IPProtocol.tcp, length: 20 + payload.count)
        let segment = tcp(sport: sport, dport: dport, flags: flags, payload: payload, pseudo: pseudo)
        return padded(
            ethernet(
                dst: dst, src: src, tags: tags, type: EtherType.ipv4,
                payload: ipv4(src: from, dst: to, proto: IPProtocol.tcp, payload: segment)))
    }

    /// A complete Ethernet/IPv4/ICMP echo request.
    public static func ping4(
        dst: MACAddress, src: MACAddress, from: IPv4Address, to: IPv4Address, identifier: UInt16 = 7,
        sequence: UInt16 = 1, tags: [Tag] = []
    ) -> [UInt8] {
        let message = icmp(type: 8, identifier: identifier, sequence: sequence, payload: Array("ping".utf8))
        return padded(
            ethernet(
                dst: dst, src: src, tags: tags, type: EtherType.ipv4,
                payload: ipv4(src: from, dst: to, proto: IPProtocol.icmp, payload: message)))
    }

    /// A complete Ethernet/IPv6/UDP frame, optionally behind extension headers (each given as
    /// (type, bytes) with its own next-header byte filled in here).
    public static func udp6(
        dst: MACAddress, src: MACAddress, from: IPv6Address, to: IPv6Address, sport: UInt16 = 40000,
        dport: UInt16 = 5000, payload: [UInt8] = Array("hello v6".utf8), extensionHeaders: [(UInt8, [UInt8])] = []
    ) -> [UInt8] {
        let pseudo = InternetChecksum.ipv6PseudoHeaderSum(
            source: from, destination: to, proto: IPProtocol.udp, length: 8 + payload.count)
        var body = udp(sport: sport, dport: dport, payload: payload, pseudo: pseudo)
        var next = IPProtocol.udp
        for (type, header) in extensionHeaders.reversed() {
            var bytes = header
            bytes[0] = next
            body = bytes + body
            next = type
        }
        return ethernet(
            dst: dst, src: src, type: EtherType.ipv6, payload: ipv6(src: from, dst: to, nextHeader: next, payload: body))
    }

    /// A complete Ethernet/IPv6/ICMPv6 echo request.
    public static func ping6(dst: MACAddress, src: MACAddress, from: IPv6Address, to: IPv6Address, identifier: UInt16 = 9)
        -> [UInt8]
    {
        let payload = Array("ping6".utf8)
        let pseudo = InternetChecksum.ipv6PseudoHeaderSum(
            source: from, destination: to, proto: IPProtocol.icmpv6, length: 8 + payload.count)
        let message = icmp(type: 128, identifier: identifier, sequence: 1, payload: payload, pseudo: pseudo)
        return ethernet(
            dst: dst, src: src, type: EtherType.ipv6, payload: ipv6(src: from, dst: to, nextHeader: IPProtocol.icmpv6, payload: message))
    }

    public static func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
    public static func be32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }
    static func v6(_ address: IPv6Address) -> [UInt8] { address.groups.flatMap { be16($0) } }
}
