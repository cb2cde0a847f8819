import TapestryFrameSyntax
import TapestryWire

/// The project's test frames, built by the frame syntax's builder (`FrameSpec.build`, what
/// `tapestry test` and test files use), so the tests and the test files share one builder: a
/// length or checksum bug there fails both. These are shorthands with the defaults the tests were
/// written against (IPv4 identification 1 with DF, TCP sequence 1000, window 65535); the
/// datapath never uses them.
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

        var spec: FrameSpec.VLAN {
            var tag = FrameSpec.VLAN(vid: vid)
            tag.pcp = pcp
            tag.dei = dei ? 1 : 0
            tag.tpid = tpid
            return tag
        }
    }

    /// A spec's bytes; a spec a test gets wrong stops the test with the builder's reason.
    public static func build(_ spec: FrameSpec) -> [UInt8] {
        do { return try spec.build() } catch { preconditionFailure("test frame does not build: \(error)") }
    }

    /// The layers of a frame, padded to 60 bytes unless `pad` is false.
    public static func frame(
        dst: MACAddress, src: MACAddress, tags: [Tag] = [], type: UInt16? = nil, _ network: FrameSpec.Network?,
        _ transport: FrameSpec.Transport? = nil, payload: [UInt8] = [], pad: Bool = true
    ) -> [UInt8] {
        var spec = FrameSpec()
        spec.eth.dst = dst
        spec.eth.src = src
        spec.eth.type = type
        spec.vlans = tags.map(\.spec)
        spec.network = network
        spec.transport = transport
        spec.payload = payload
        spec.pad = pad
        return build(spec)
    }

    /// An Ethernet header (and tags) before `payload`, not padded: for frames the layers cannot
    /// say (a header of another protocol's type, a packet crafted byte by byte).
    public static func ethernet(
        dst: MACAddress, src: MACAddress, tags: [Tag] = [], type: UInt16, payload: [UInt8]
    ) -> [UInt8] {
        frame(dst: dst, src: src, tags: tags, type: type, nil, payload: payload, pad: false)
    }

    /// An Ethernet frame padded to the 60-byte minimum (without FCS), as a NIC would send it.
    public static func padded(_ frame: [UInt8]) -> [UInt8] {
        frame.count >= 60 ? frame : frame + [UInt8](repeating: 0, count: 60 - frame.count)
    }

    public static func ipv4(
        src: IPv4Address, dst: IPv4Address, ttl: UInt8 = 64, identification: UInt16 = 1, dontFragment: Bool = true,
        moreFragments: Bool = false, fragmentOffset: Int = 0, proto: UInt8? = nil, options: [UInt8] = []
    ) -> FrameSpec.Network {
        var ip = FrameSpec.IPv4()
        ip.src = src
        ip.dst = dst
        ip.ttl = ttl
        ip.id = identification
        ip.df = dontFragment
        ip.mf = moreFragments
        ip.frag = fragmentOffset
        ip.proto = proto
        ip.options = options
        return .ipv4(ip)
    }

    public static func ipv6(src: IPv6Address, dst: IPv6Address, hopLimit: UInt8 = 64, nextHeader: UInt8? = nil) -> FrameSpec.Network {
        var ip = FrameSpec.IPv6()
        ip.src = src
        ip.dst = dst
        ip.hlim = hopLimit
        ip.nh = nextHeader
        return .ipv6(ip)
    }

    public static func tcp(
        sport: UInt16, dport: UInt16, flags: TCPFlags = .syn, seq: UInt32 = 1000, ack: UInt32 = 0, window: UInt16 = 65535,
        options: [UInt8] = []
    ) -> FrameSpec.Transport {
        var tcp = FrameSpec.TCP()
        tcp.sport = sport
        tcp.dport = dport
        tcp.flags = flags.rawValue
        tcp.seq = seq
        tcp.ack = ack
        tcp.window = window
        tcp.options = options
        return .tcp(tcp)
    }

    public static func udp(sport: UInt16, dport: UInt16) -> FrameSpec.Transport {
        var udp = FrameSpec.UDP()
        udp.sport = sport
        udp.dport = dport
        return .udp(udp)
    }

    /// ICMP (or ICMPv6 when `v6`): echo fields, or for other types the 4 bytes after the checksum.
    public static func icmp(type: UInt8, code: UInt8 = 0, identifier: UInt16 = 0, sequence: UInt16 = 0, v6: Bool = false)
        -> FrameSpec.Transport
    {
        var icmp = FrameSpec.ICMP()
        icmp.type = type
        icmp.code = code
        icmp.id = identifier
        icmp.seq = sequence
        return v6 ? .icmpv6(icmp) : .icmp(icmp)
    }

    public static func arpRequest(
        src: MACAddress, senderIP: IPv4Address, targetIP: IPv4Address, tags: [Tag] = []
    ) -> [UInt8] {
        arp(dst: .broadcast, src: src, operation: 1, senderIP: senderIP, targetMAC: .zero, targetIP: targetIP, tags: tags)
    }

    public static func arp(
        dst: MACAddress, src: MACAddress, operation: UInt16, senderIP: IPv4Address, targetMAC: MACAddress,
        targetIP: IPv4Address, tags: [Tag] = []
    ) -> [UInt8] {
        var arp = FrameSpec.ARP()
        arp.op = operation
        arp.spa = senderIP
        arp.tha = targetMAC
        arp.tpa = targetIP
        return frame(dst: dst, src: src, tags: tags, .arp(arp))
    }

    /// A complete Ethernet/IPv4/UDP frame.
    public static func udp4(
        dst: MACAddress, src: MACAddress, from: IPv4Address, to: IPv4Address, sport: UInt16 = 40000,
        dport: UInt16 = 5000, payload: [UInt8] = Array("hello tapestry".utf8), tags: [Tag] = []
    ) -> [UInt8] {
        frame(dst: dst, src: src, tags: tags, ipv4(src: from, dst: to), udp(sport: sport, dport: dport), payload: payload)
    }

    /// A complete Ethernet/IPv4/TCP frame.
    public static func tcp4(
        dst: MACAddress, src: MACAddress, from: IPv4Address, to: IPv4Address, sport: UInt16 = 40000,
        dport: UInt16 = 80, flags: TCPFlags = .syn, seq: UInt32 = 1000, ack: UInt32 = 0, window: UInt16 = 65535,
        options: [UInt8] = [], payload: [UInt8] = [], tags: [Tag] = []
    ) -> [UInt8] {
        frame(
            dst: dst, src: src, tags: tags, ipv4(src: from, dst: to),
            tcp(sport: sport, dport: dport, flags: flags, seq: seq, ack: ack, window: window, options: options), payload: payload)
    }

    /// A complete Ethernet/IPv4/ICMP echo request.
    public static func ping4(
        dst: MACAddress, src: MACAddress, from: IPv4Address, to: IPv4Address, identifier: UInt16 = 7,
        sequence: UInt16 = 1, tags: [Tag] = []
    ) -> [UInt8] {
        frame(
            dst: dst, src: src, tags: tags, ipv4(src: from, dst: to), icmp(type: 8, identifier: identifier, sequence: sequence),
            payload: Array("ping".utf8))
    }

    /// A complete Ethernet/IPv6/UDP frame, optionally behind extension headers (each given as
    /// (type, bytes), its first byte, the next header, filled in here; the layers have no
    /// extension headers but the fragment header, so the UDP header is part of the payload).
    public static func udp6(
        dst: MACAddress, src: MACAddress, from: IPv6Address, to: IPv6Address, sport: UInt16 = 40000,
        dport: UInt16 = 5000, payload: [UInt8] = Array("hello v6".utf8), extensionHeaders: [(UInt8, [UInt8])] = []
    ) -> [UInt8] {
        guard !extensionHeaders.isEmpty else {
            return frame(dst: dst, src: src, ipv6(src: from, dst: to), udp(sport: sport, dport: dport), payload: payload, pad: false)
        }
        // The UDP datagram as the layers build it (its checksum over the IPv6 pseudo-header).
        var spec = FrameSpec()
        spec.network = ipv6(src: from, dst: to)
        spec.transport = udp(sport: sport, dport: dport)
        spec.payload = payload
        let packet: [UInt8]
        do { packet = try spec.packet() } catch { preconditionFailure("test datagram does not build: \(error)") }
        var body = Array(packet.dropFirst(IPv6View.length))
        var next = IPProtocol.udp
        for (type, header) in extensionHeaders.reversed() {
            var bytes = header
            bytes[0] = next
            body = bytes + body
            next = type
        }
        return frame(dst: dst, src: src, ipv6(src: from, dst: to, nextHeader: next), payload: body, pad: false)
    }

    /// A complete Ethernet/IPv6/ICMPv6 echo request.
    public static func ping6(dst: MACAddress, src: MACAddress, from: IPv6Address, to: IPv6Address, identifier: UInt16 = 9)
        -> [UInt8]
    {
        frame(
            dst: dst, src: src, ipv6(src: from, dst: to), icmp(type: 128, identifier: identifier, sequence: 1, v6: true),
            payload: Array("ping6".utf8), pad: false)
    }

    /// A complete Ethernet/IPv6/TCP frame.
    public static func tcp6(
        dst: MACAddress, src: MACAddress, from: IPv6Address, to: IPv6Address, sport: UInt16 = 40000,
        dport: UInt16 = 80, flags: TCPFlags = .syn, seq: UInt32 = 1000, ack: UInt32 = 0, payload: [UInt8] = []
    ) -> [UInt8] {
        frame(dst: dst, src: src, ipv6(src: from, dst: to), tcp(sport: sport, dport: dport, flags: flags, seq: seq, ack: ack), payload: payload)
    }

    /// The 16 bytes of an IPv6 address, in network order.
    public static func bytes(_ address: IPv6Address) -> [UInt8] {
        (0..<16).map { UInt8(truncatingIfNeeded: (($0 < 8 ? address.high : address.low) >> (56 - 8 * ($0 % 8)))) }
    }

    /// The 6 bytes of a MAC address.
    public static func bytes(_ mac: MACAddress) -> [UInt8] {
        (0..<6).map { UInt8(truncatingIfNeeded: mac.rawValue >> (40 - 8 * $0)) }
    }

    /// The solicited-node group of `target` (ff02::1:ffXX:XXXX) and its MAC (33:33:ff:XX:XX:XX).
    public static func solicitedNode(_ target: IPv6Address) -> (IPv6Address, MACAddress) {
        let low24 = target.low & 0xFF_FFFF
        return (IPv6Address(high: 0xFF02_0000_0000_0000, low: 0x1_FF00_0000 | low24),
                MACAddress(rawValue: 0x3333_FF00_0000 | low24))
    }

    /// An RFC 4861 neighbor solicitation for `target` with a source link-layer address option
    /// (none when `from` is `::`, as duplicate address detection sends it); to the target's
    /// solicited-node group unless `dst`/`to` say otherwise.
    public static func neighborSolicitation(
        src: MACAddress, from: IPv6Address, target: IPv6Address, dst: MACAddress? = nil, to: IPv6Address? = nil,
        hopLimit: UInt8 = 255
    ) -> [UInt8] {
        let (group, groupMAC) = solicitedNode(target)
        let option: [UInt8] = (from.high | from.low) == 0 ? [] : [1, 1] + bytes(src)
        return frame(
            dst: dst ?? groupMAC, src: src, ipv6(src: from, dst: to ?? group, hopLimit: hopLimit),
            icmp(type: 135, v6: true), payload: bytes(target) + option, pad: false)
    }

    /// An RFC 4861 neighbor advertisement for `target` (flags: R 0x80, S 0x40, O 0x20) with a
    /// target link-layer address option of `src`.
    public static func neighborAdvertisement(
        dst: MACAddress, src: MACAddress, from: IPv6Address, to: IPv6Address, target: IPv6Address, flags: UInt8 = 0x60,
        hopLimit: UInt8 = 255
    ) -> [UInt8] {
        frame(
            dst: dst, src: src, ipv6(src: from, dst: to, hopLimit: hopLimit),
            icmp(type: 136, identifier: UInt16(flags) << 8, v6: true), payload: bytes(target) + [2, 1] + bytes(src), pad: false)
    }
}
