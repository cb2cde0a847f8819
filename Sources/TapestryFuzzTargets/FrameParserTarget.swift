import TapestrySwitchCore
import TapestryWire

/// `FrameParser.parse` on arbitrary bytes, then every header view it validated read in full, the
/// checksum verifier, and the field decoder `trace`, `decode` and `--expect` use.
///
/// Invariants: offsets lie inside the frame and in order; a frame without a malformation has
/// every view its layers promise (the stages rely on it without checking again).
enum FrameParserTarget {
    static func run(_ frame: UnsafeRawBufferPointer) throws(InvariantViolation) {
        let parsed = FrameParser.parse(frame)
        try check(frame, parsed)
        _ = ChecksumVerifier.ipv4HeaderIsValid(frame, parsed)
        _ = ChecksumVerifier.l4IsValid(frame, parsed)
        let bytes = Array(frame)
        _ = FrameFields(bytes).fields
        _ = TraceText.summary(bytes)
    }

    /// Checks `parsed` against `frame` and reads what it promises; also used on the datapath's
    /// outputs.
    static func check(_ frame: UnsafeRawBufferPointer, _ parsed: ParsedFrame) throws(InvariantViolation) {
        var sink: UInt64 = 0
        guard parsed.isValid else {
            // A malformed frame promises nothing but a reason.
            _ = parsed.malformation!.description
            return
        }
        guard let ethernet = EthernetView(validating: frame) else {
            throw InvariantViolation("valid frame of \(frame.count) bytes has no Ethernet header")
        }
        sink &+= UInt64(ethernet.etherType) &+ ethernet.source.rawValue &+ ethernet.destination.rawValue
        try require(parsed.tagCount <= 2, "tagCount \(parsed.tagCount)")
        for tag in 0..<Int(parsed.tagCount) {
            guard let view = VLANTagView(validating: UnsafeRawBufferPointer(rebasing: frame[(12 + 4 * tag)...])) else {
                throw InvariantViolation("tag \(tag) promised but not there")
            }
            sink &+= UInt64(view.tpid) &+ UInt64(view.vid) &+ UInt64(view.pcp) &+ (view.dei ? 1 : 0)
        }
        if parsed.layer3 == .none {
            try require(parsed.l3Offset == ParsedFrame.absent && !parsed.hasL4, "no layer 3 but offsets \(parsed.l3Offset)/\(parsed.l4Offset)")
            return
        }
        let l3 = Int(parsed.l3Offset)
        try require(parsed.l3Offset != ParsedFrame.absent && l3 >= 14 && l3 <= frame.count, "l3Offset \(l3) of \(frame.count)")
        let network = UnsafeRawBufferPointer(rebasing: frame[l3...])
        var l3End = frame.count  // where the datagram ends (link padding after it is not its)
        switch parsed.layer3 {
        case .arp:
            guard let arp = ARPView(validating: network) else { throw InvariantViolation("ARP promised, view refused") }
            sink &+= UInt64(arp.operation) &+ UInt64(arp.hardwareType) &+ UInt64(arp.protocolType)
            // The address accessors assume Ethernet/IPv4 lengths (as ARPView documents); the
            // datapath reads them only after `isEthernetIPv4`, and so does this.
            if arp.isEthernetIPv4 {
                sink &+= UInt64(arp.senderIP.rawValue) &+ UInt64(arp.targetIP.rawValue)
                sink &+= arp.senderMAC.rawValue &+ arp.targetMAC.rawValue
            }
        case .ipv4:
            guard let ip = IPv4View(validating: network) else { throw InvariantViolation("IPv4 promised, view refused") }
            sink &+= UInt64(ip.totalLength) &+ UInt64(ip.identification) &+ UInt64(ip.fragmentOffset) &+ UInt64(ip.ttl)
            sink &+= UInt64(ip.proto) &+ UInt64(ip.checksum) &+ UInt64(ip.source.rawValue) &+ UInt64(ip.destination.rawValue)
            sink &+= UInt64(ip.payload.count) &+ (ip.checksumIsValid ? 1 : 0) &+ (ip.dontFragment ? 1 : 0) &+ (ip.moreFragments ? 1 : 0)
            try require(parsed.ipProtocol == ip.proto, "ipProtocol \(parsed.ipProtocol) but header says \(ip.proto)")
            l3End = l3 + ip.totalLength
        case .ipv6:
            guard let ip = IPv6View(validating: network) else { throw InvariantViolation("IPv6 promised, view refused") }
            sink &+= UInt64(ip.payloadLength) &+ UInt64(ip.nextHeader) &+ UInt64(ip.hopLimit)
            sink &+= ip.source.high &+ ip.source.low &+ ip.destination.high &+ ip.destination.low
            l3End = l3 + IPv6View.length + ip.payloadLength
        case .none:
            break
        }
        if parsed.hasL4 {
            let l4 = Int(parsed.l4Offset)
            try require(l4 > l3 && l4 <= l3End, "l4Offset \(l4) with l3 \(l3)...\(l3End) of \(frame.count)")
            let transport = UnsafeRawBufferPointer(rebasing: frame[l4..<l3End])
            switch parsed.ipProtocol {
            case IPProtocol.tcp:
                guard let tcp = TCPView(validating: transport) else { throw InvariantViolation("TCP promised, view refused") }
                sink &+= UInt64(tcp.sourcePort) &+ UInt64(tcp.destinationPort) &+ UInt64(tcp.sequenceNumber)
                sink &+= UInt64(tcp.acknowledgmentNumber) &+ UInt64(tcp.headerLength) &+ UInt64(tcp.flags.rawValue)
                sink &+= UInt64(tcp.window) &+ UInt64(tcp.checksum)
            case IPProtocol.udp where parsed.fragment == .first:
                // A first fragment's UDP length covers the whole datagram: only the 8 bytes of
                // header are promised (the firewall reads the ports).
                try require(transport.count >= UDPView.length, "first UDP fragment without a header")
                sink &+= UInt64(transport.u16(0)) &+ UInt64(transport.u16(2))
            case IPProtocol.udp:
                guard let udp = UDPView(validating: transport) else { throw InvariantViolation("UDP promised, view refused") }
                sink &+= UInt64(udp.sourcePort) &+ UInt64(udp.destinationPort) &+ UInt64(udp.length) &+ UInt64(udp.checksum)
            case IPProtocol.icmp, IPProtocol.icmpv6:
                guard let icmp = ICMPView(validating: transport) else { throw InvariantViolation("ICMP promised, view refused") }
                sink &+= UInt64(icmp.type) &+ UInt64(icmp.code) &+ UInt64(icmp.checksum) &+ UInt64(icmp.identifier)
                sink &+= UInt64(icmp.sequence) &+ UInt64(icmp.body.count)
            default:
                break
            }
        }
        blackHole(sink)
    }
}

/// Keeps the optimizer from dropping the reads above.
@inline(never)
func blackHole(_ value: UInt64) {
    if value == 0x5EED_F00D_5EED_F00D { print("", terminator: "") }
}
