import TapestryWire

/// The packets the load balancer writes itself, over IPv4 or IPv6: ARP requests and neighbor
/// solicitations for backends, ARP and neighbor-advertisement answers for VIPs, echo replies,
/// RSTs, port unreachables and probes. Each writes headers and checksums into memory the caller
/// owns and checked the size of; none allocates.
enum SwitchAnswers {
    static let ipv4HeaderLength = 20
    static let ipv6HeaderLength = 40

    /// The IP header of an answer from the switch at `l3`, for `length - l3` bytes of packet
    /// (IPv4: 20 bytes, no options, no ID, DF; IPv6: no extension headers, flow label 0). Returns
    /// where the upper-layer header starts.
    @discardableResult
    static func writeIPHeader(
        _ out: UnsafeMutableRawBufferPointer, l3: Int, length: Int, proto: UInt8, from: HostAddress, to: HostAddress,
        hopLimit: UInt8 = 64
    ) -> Int {
        if from.isIPv6 {
            out.setU32(l3, 0x6000_0000)
            out.setU16(l3 + 4, UInt16(truncatingIfNeeded: length - l3 - ipv6HeaderLength))
            out[l3 + 6] = proto
            out[l3 + 7] = hopLimit
            from.store(out, at: l3 + 8)
            to.store(out, at: l3 + 24)
            return l3 + ipv6HeaderLength
        }
        let l4 = l3 + ipv4HeaderLength
        out[l3] = 0x45
        out[l3 + 1] = 0
        out.setU16(l3 + 2, UInt16(truncatingIfNeeded: length - l3))
        out.setU16(l3 + 4, 0)
        out.setU16(l3 + 6, 0x4000)
        out[l3 + 8] = hopLimit
        out[l3 + 9] = proto
        from.store(out, at: l3 + 12)
        to.store(out, at: l3 + 16)
        out.setU16(l3 + 10, 0)
        out.setU16(l3 + 10, InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: out[l3..<l4]))))
        return l4
    }

    /// The pseudo-header's sum for a TCP, UDP or ICMPv6 checksum (ICMP over IPv4 has none).
    static func pseudoHeaderSum(from: HostAddress, to: HostAddress, proto: UInt8, length: Int) -> UInt64 {
        if from.isIPv6 {
            return InternetChecksum.ipv6PseudoHeaderSum(source: from.ipv6, destination: to.ipv6, proto: proto, length: length)
        }
        return InternetChecksum.ipv4PseudoHeaderSum(source: from.ipv4, destination: to.ipv4, proto: proto, length: length)
    }

    /// Writes the checksum at `field` over `out[l4..<end]` (with the pseudo-header's `pseudo`).
    static func writeChecksum(_ out: UnsafeMutableRawBufferPointer, field: Int, l4: Int, end: Int, pseudo: UInt64) {
        out.setU16(field, 0)
        out.setU16(field, InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: out[l4..<end]), initial: pseudo)))
    }

    /// A TCP RST (with `flags`, no options) after the IP header at `l3`; returns the end.
    static func writeReset(
        _ out: UnsafeMutableRawBufferPointer, l3: Int, from: HostAddress, _ fromPort: UInt16, to: HostAddress,
        _ toPort: UInt16, sequence: UInt32, acknowledgment: UInt32, flags: UInt8
    ) -> Int {
        let l4 = l3 + (from.isIPv6 ? ipv6HeaderLength : ipv4HeaderLength)
        let end = l4 + 20
        writeIPHeader(out, l3: l3, length: end, proto: IPProtocol.tcp, from: from, to: to)
        out.setU16(l4, fromPort)
        out.setU16(l4 + 2, toPort)
        out.setU32(l4 + 4, sequence)
        out.setU32(l4 + 8, acknowledgment)
        out[l4 + 12] = 5 << 4
        out[l4 + 13] = flags
        out.setU32(l4 + 14, 0)  // window and checksum
        out.setU16(l4 + 18, 0)
        writeChecksum(
            out, field: l4 + 16, l4: l4, end: end, pseudo: pseudoHeaderSum(from: from, to: to, proto: IPProtocol.tcp, length: 20))
        return end
    }

    /// A broadcast ARP request from `vip` for `target`, its EtherType at `header`, zero-padded to
    /// `padded` bytes.
    static func writeARPRequest(
        into out: UnsafeMutableRawBufferPointer, header: Int, padded: Int, mac: MACAddress, vip: IPv4Address, target: IPv4Address
    ) {
        out.setMAC(0, .broadcast)
        out.setMAC(6, mac)
        out.setU16(header, EtherType.arp)
        let arp = header + 2
        out.setU16(arp, 1)
        out.setU16(arp + 2, EtherType.ipv4)
        out[arp + 4] = 6
        out[arp + 5] = 4
        out.setU16(arp + 6, 1)
        out.setMAC(arp + 8, mac)
        out.setU32(arp + 14, vip.rawValue)
        out.setMAC(arp + 18, .zero)
        out.setU32(arp + 24, target.rawValue)
        for byte in (arp + 28)..<padded { out[byte] = 0 }
    }

    /// Bytes of a neighbor solicitation or advertisement after the EtherType: IPv6 header,
    /// 24 bytes of message and an 8-byte link-layer address option.
    static let neighborMessageLength = ipv6HeaderLength + 32
    /// The longest frame the switch writes on its own (a solicitation after a kept tag: 16 + 2 +
    /// 72 bytes); an area shorter than this gets none.
    static let longestOwnFrame = 90

    /// A neighbor solicitation from `vip` for `target` (RFC 4861 4.3), with the balancer's MAC as
    /// its source link-layer address: to the target's solicited-node group, or to `unicast`
    /// (the target's known MAC: a probe). EtherType at `header`; returns the length.
    static func writeNeighborSolicitation(
        into out: UnsafeMutableRawBufferPointer, header: Int, mac: MACAddress, vip: HostAddress, target: HostAddress,
        unicast: MACAddress? = nil
    ) -> Int {
        // ff02::1:ffXX:XXXX, 33:33:ff:XX:XX:XX from the target's last 24 bits.
        let last24 = target.low & 0xFF_FFFF
        let group = HostAddress(ipv6High: 0xFF02_0000_0000_0000, low: 0x0000_0001_FF00_0000 | last24)
        out.setMAC(0, unicast ?? MACAddress(rawValue: 0x3333_FF00_0000 | last24))
        out.setMAC(6, mac)
        out.setU16(header, EtherType.ipv6)
        let l3 = header + 2
        let end = l3 + neighborMessageLength
        let to = unicast != nil ? target : group
        let l4 = writeIPHeader(out, l3: l3, length: end, proto: IPProtocol.icmpv6, from: vip, to: to, hopLimit: 255)
        out.setU32(l4, 135 << 24)  // type, code, checksum
        out.setU32(l4 + 4, 0)
        target.store(out, at: l4 + 8)
        out.setU16(l4 + 24, 0x0101)  // source link-layer address, 8 bytes
        out.setMAC(l4 + 26, mac)
        writeChecksum(
            out, field: l4 + 2, l4: l4, end: end, pseudo: pseudoHeaderSum(from: vip, to: to, proto: IPProtocol.icmpv6, length: 32))
        return end
    }

    /// The VIP's neighbor advertisement (RFC 4861 4.4, 7.2.4) at `l3`, written over the
    /// solicitation it answers: to the solicitor, solicited and override; to all nodes, override
    /// only, when the solicitor had no address yet (duplicate address detection). Returns the end.
    static func writeNeighborAdvertisement(
        _ out: UnsafeMutableRawBufferPointer, l3: Int, mac: MACAddress, vip: HostAddress, to solicitor: HostAddress
    ) -> Int {
        let detecting = (solicitor.high | solicitor.low) == 0
        let to = detecting ? HostAddress(ipv6High: 0xFF02_0000_0000_0000, low: 1) : solicitor
        let end = l3 + neighborMessageLength
        let l4 = writeIPHeader(out, l3: l3, length: end, proto: IPProtocol.icmpv6, from: vip, to: to, hopLimit: 255)
        out.setU32(l4, 136 << 24)
        out.setU32(l4 + 4, detecting ? 0x2000_0000 : 0x6000_0000)  // S and O flags
        vip.store(out, at: l4 + 8)
        out.setU16(l4 + 24, 0x0201)  // target link-layer address, 8 bytes
        out.setMAC(l4 + 26, mac)
        writeChecksum(
            out, field: l4 + 2, l4: l4, end: end, pseudo: pseudoHeaderSum(from: vip, to: to, proto: IPProtocol.icmpv6, length: 32))
        if detecting { out.setMAC(0, MACAddress(rawValue: 0x3333_0000_0001)) }
        return end
    }

    /// Turns an echo request (ICMP type 8, ICMPv6 type 128) into its reply in place: addresses
    /// swapped (which leaves every checksum as it was), the type changed.
    static func answerEcho(_ frame: UnsafeMutableRawBufferPointer, _ parsed: ParsedFrame, mac: MACAddress) {
        let l3 = Int(parsed.l3Offset)
        let l4 = Int(parsed.l4Offset)
        let isIPv6 = parsed.layer3 == .ipv6
        let requester = UnsafeRawBufferPointer(frame).mac(6)
        frame.setMAC(0, requester)
        frame.setMAC(6, mac)
        let source = HostAddress(UnsafeRawBufferPointer(frame), l3: l3, isIPv6: isIPv6, source: true)
        let destination = HostAddress(UnsafeRawBufferPointer(frame), l3: l3, isIPv6: isIPv6, source: false)
        destination.store(frame, at: l3 + (isIPv6 ? 8 : 12))
        source.store(frame, at: l3 + (isIPv6 ? 24 : 16))
        let typeAndCode = frame.u16(l4)
        let reply = isIPv6 ? 129 << 8 | typeAndCode & 0x00FF : typeAndCode & 0x00FF  // same code
        frame.setU16(l4, reply)
        let checksum = InternetChecksum.update(frame.u16(l4 + 2), old: typeAndCode, new: reply)
        if checksum != 0 || isIPv6 {
            // (ICMPv6's sum covers the pseudo-header's nonzero next header and length, so its
            // checksum is never the one of an all-zero message.)
            frame.setU16(l4 + 2, checksum)
        } else {
            // 0x0000 from the incremental update is right only when the message is not all zeros
            // (found by the datapath fuzzer: a request of zeros got 0x0000, which receivers reject;
            // its checksum is 0xFFFF). ICMP has no pseudo-header, so sum the message again.
            let end = min(l3 + Int(frame.u16(l3 + 2)), frame.count)
            writeChecksum(frame, field: l4 + 2, l4: l4, end: end, pseudo: 0)
        }
    }

    /// A health probe from `vip` and `mac` to a backend: a TCP SYN to its port (with an MSS
    /// option) or an echo request (ICMP or ICMPv6) with 8 data bytes; zero-padded to 60 bytes.
    /// Returns the length.
    static func writeProbe(
        into out: UnsafeMutableRawBufferPointer, tcp: Bool, mac: MACAddress, vip: HostAddress, to backendMAC: MACAddress,
        _ backend: HostAddress, port: UInt16, identity: (port: UInt16, sequence: UInt32), echo: (identifier: UInt16, sequence: UInt16),
        payload: UInt64
    ) -> Int {
        let l4 = 14 + (vip.isIPv6 ? ipv6HeaderLength : ipv4HeaderLength)
        let l4Length = tcp ? 24 : 16
        let end = l4 + l4Length
        for byte in 0..<max(60, end) { out[byte] = 0 }
        out.setMAC(0, backendMAC)
        out.setMAC(6, mac)
        out.setU16(12, vip.isIPv6 ? EtherType.ipv6 : EtherType.ipv4)
        let proto = tcp ? IPProtocol.tcp : vip.isIPv6 ? IPProtocol.icmpv6 : IPProtocol.icmp
        writeIPHeader(out, l3: 14, length: end, proto: proto, from: vip, to: backend)
        var pseudo: UInt64 = 0
        if tcp {
            out.setU16(l4, identity.port)
            out.setU16(l4 + 2, port)
            out.setU32(l4 + 4, identity.sequence)
            out[l4 + 12] = 6 << 4  // 24 bytes: the MSS option
            out[l4 + 13] = 0x02  // SYN
            out.setU16(l4 + 14, 64240)
            out.setU32(l4 + 20, vip.isIPv6 ? 0x0204_05A0 : 0x0204_05B4)  // MSS 1440, 1460
            pseudo = pseudoHeaderSum(from: vip, to: backend, proto: proto, length: l4Length)
        } else {
            out[l4] = vip.isIPv6 ? 128 : 8
            out.setU16(l4 + 4, echo.identifier)
            out.setU16(l4 + 6, echo.sequence)
            out.setU32(l4 + 8, UInt32(truncatingIfNeeded: payload >> 32))
            out.setU32(l4 + 12, UInt32(truncatingIfNeeded: payload))
            if vip.isIPv6 { pseudo = pseudoHeaderSum(from: vip, to: backend, proto: proto, length: l4Length) }
        }
        writeChecksum(out, field: tcp ? l4 + 16 : l4 + 2, l4: l4, end: end, pseudo: pseudo)
        return max(60, end)
    }
}
