import TapestryWire

extension FrameSpec {
    /// `bytes` in the frame syntax, every field given (checksums only when wrong: a correct one
    /// is the default). Building the result gives `bytes` back exactly; a frame the syntax
    /// cannot say field by field (a truncated header, IPv6 extension headers other than a
    /// fragment header, padding that is not zeros) comes back as `raw`.
    public static func decode(_ bytes: [UInt8], keepingChecksums: Bool = false) -> FrameSpec {
        for pad in [true, false] {
            if var spec = structured(bytes, keepingChecksums: keepingChecksums) {
                spec.pad = pad
                if (try? spec.build()) == bytes { return spec }
            }
        }
        return FrameSpec(raw: bytes)
    }

    /// `bytes` read layer by layer for comparing (a test's expected frames): like `decode`, but
    /// what follows the layers (Ethernet padding of any length and content) is left out rather
    /// than making the frame `raw`. Building the result need not give `bytes` back.
    public static func decodeForComparison(_ bytes: [UInt8], keepingChecksums: Bool = false) -> FrameSpec {
        let exact = decode(bytes, keepingChecksums: keepingChecksums)
        guard exact.raw != nil, var spec = structured(bytes, keepingChecksums: keepingChecksums, trimming: true) else { return exact }
        spec.pad = bytes.count >= 60
        return spec
    }

    /// - Parameter quoting: an ICMP error's quote is decoded as a packet only at the outer level (a
    ///   quote inside a quote stays payload: nesting made decoding cubic, then overflowed the stack).
    private static func structured(
        _ bytes: [UInt8], keepingChecksums: Bool = false, trimming: Bool = false, quoting: Bool = true
    ) -> FrameSpec? {
        guard bytes.count >= 14 else { return nil }
        var spec = FrameSpec()
        spec.eth.dst = mac(bytes, 0)
        spec.eth.src = mac(bytes, 6)
        var offset = 12
        var type = u16(bytes, offset)
        while type == EtherType.vlan || type == EtherType.qinq {
            guard spec.vlans.count < 2, bytes.count >= offset + 6 else { return nil }
            let tci = u16(bytes, offset + 2)
            var tag = VLAN(vid: tci & 0x0FFF)
            tag.pcp = UInt8(tci >> 13)
            tag.dei = UInt8(tci >> 12 & 1)
            tag.tpid = type
            spec.vlans.append(tag)
            offset += 4
            type = u16(bytes, offset)
        }
        spec.eth.type = type
        let l3 = Array(bytes[(offset + 2)...])
        switch type {
        case EtherType.arp:
            guard l3.count >= 28, u16(l3, 0) == 1, u16(l3, 2) == EtherType.ipv4, l3[4] == 6, l3[5] == 4 else { return nil }
            var arp = ARP()
            arp.op = u16(l3, 6)
            arp.sha = mac(l3, 8)
            arp.spa = IPv4Address(rawValue: u32(l3, 14))
            arp.tha = mac(l3, 18)
            arp.tpa = IPv4Address(rawValue: u32(l3, 24))
            spec.network = .arp(arp)
            spec.payload = trimming ? [] : trimmedPadding(Array(l3[28...]), frameLength: bytes.count)
        case EtherType.ipv4:
            guard l3.count >= 20, l3[0] >> 4 == 4 else { return nil }
            let headerLength = Int(l3[0] & 0x0F) * 4
            let total = Int(u16(l3, 2))
            guard headerLength >= 20, total >= headerLength, total <= l3.count else { return nil }
            var ip = IPv4()
            ip.tos = l3[1]
            ip.id = u16(l3, 4)
            let flags = u16(l3, 6)
            ip.df = flags & 0x4000 != 0
            ip.mf = flags & 0x2000 != 0
            guard flags & 0x8000 == 0 else { return nil }  // the reserved bit has no field
            ip.frag = Int(flags & 0x1FFF) * 8
            ip.ttl = l3[8]
            ip.proto = l3[9]
            ip.checksum = u16(l3, 10)
            ip.src = IPv4Address(rawValue: u32(l3, 12))
            ip.dst = IPv4Address(rawValue: u32(l3, 16))
            ip.options = Array(l3[20..<headerLength])
            let region = Array(l3[headerLength..<total])
            if ip.frag == 0, let (transport, payload) = upper(l3[9], region, isIPv6: false, quoting: quoting) {
                spec.transport = transport
                spec.payload = payload
            } else {
                spec.payload = region
            }
            spec.network = .ipv4(ip)
        case EtherType.ipv6:
            guard l3.count >= 40, l3[0] >> 4 == 6 else { return nil }
            let length = Int(u16(l3, 4))
            guard 40 + length <= l3.count else { return nil }
            var ip = IPv6()
            let first = u32(l3, 0)
            ip.tc = UInt8(first >> 20 & 0xFF)
            ip.flow = first & 0xFFFFF
            ip.hlim = l3[7]
            ip.src = IPv6Address(high: u64(l3, 8), low: u64(l3, 16))
            ip.dst = IPv6Address(high: u64(l3, 24), low: u64(l3, 32))
            var next = l3[6]
            var region = Array(l3[40..<(40 + length)])
            if next == 44 {
                guard region.count >= 8, region[1] == 0, u16(region, 2) & 0x0006 == 0 else { return nil }
                var fragment = IPv6.Fragment()
                let offsetAndFlags = u16(region, 2)
                fragment.offset = Int(offsetAndFlags >> 3) * 8
                fragment.more = offsetAndFlags & 1 != 0
                fragment.id = u32(region, 4)
                next = region[0]
                region = Array(region[8...])
                ip.frag = fragment
            }
            ip.nh = next
            if (ip.frag?.offset ?? 0) == 0, let (transport, payload) = upper(next, region, isIPv6: true, quoting: quoting) {
                spec.transport = transport
                spec.payload = payload
            } else {
                spec.payload = region
            }
            spec.network = .ipv6(ip)
        default:
            spec.payload = trimmedPadding(l3, frameLength: bytes.count)
        }
        return keepingChecksums ? spec : spec.withCorrectChecksumsOmitted()
    }

    /// The upper layer of an IP packet and its payload, nil for a protocol the syntax has no
    /// layer for (or a header too short for its layer).
    private static func upper(_ proto: UInt8, _ region: [UInt8], isIPv6: Bool, quoting: Bool) -> (Transport, [UInt8])? {
        switch proto {
        case IPProtocol.tcp:
            guard region.count >= 20 else { return nil }
            let headerLength = Int(region[12] >> 4) * 4
            guard headerLength >= 20, headerLength <= region.count, region[12] & 0x0F == 0 else { return nil }
            var tcp = TCP()
            tcp.sport = u16(region, 0)
            tcp.dport = u16(region, 2)
            tcp.seq = u32(region, 4)
            tcp.ack = u32(region, 8)
            tcp.flags = region[13]
            tcp.window = u16(region, 14)
            tcp.checksum = u16(region, 16)
            guard u16(region, 18) == 0 else { return nil }  // the urgent pointer has no field
            tcp.options = Array(region[20..<headerLength])
            return (.tcp(tcp), Array(region[headerLength...]))
        case IPProtocol.udp:
            guard region.count >= 8, Int(u16(region, 4)) == region.count else { return nil }
            var udp = UDP()
            udp.sport = u16(region, 0)
            udp.dport = u16(region, 2)
            udp.checksum = u16(region, 6)
            return (.udp(udp), Array(region[8...]))
        case IPProtocol.icmp where !isIPv6, IPProtocol.icmpv6 where isIPv6:
            guard region.count >= 8 else { return nil }
            var icmp = ICMP()
            icmp.type = region[0]
            icmp.code = region[1]
            icmp.checksum = u16(region, 2)
            icmp.id = u16(region, 4)
            icmp.seq = u16(region, 6)
            let isError = isIPv6 ? (1...4).contains(icmp.type) : [3, 4, 5, 11, 12].contains(icmp.type)
            if isError, quoting, icmp.id == 0, icmp.seq == 0 {
                let inner = Array(region[8...])
                if let quoted = quote(inner) {
                    icmp.quote = Quote(quoted)
                    icmp.id = 0
                    return (isIPv6 ? .icmpv6(icmp) : .icmp(icmp), [])
                }
            }
            // An advertisement's R, S and O flags are the top bits of its reserved field.
            let flagsOnly = icmp.type == 136 && icmp.id & 0x1FFF == 0
            if isIPv6, icmp.type == 135 || icmp.type == 136, icmp.id == 0 || flagsOnly, icmp.seq == 0, region.count >= 24 {
                icmp.target = IPv6Address(high: u64(region, 8), low: u64(region, 16))
                icmp.neighborFlags = UInt8(truncatingIfNeeded: icmp.id >> 8)
                icmp.id = 0
                return (.icmpv6(icmp), Array(region[24...]))
            }
            return (isIPv6 ? .icmpv6(icmp) : .icmp(icmp), Array(region[8...]))
        default:
            return nil
        }
    }

    /// An ICMP error's quoted packet as a spec from its IP layer on, if it is whole and the
    /// syntax gives back its bytes.
    private static func quote(_ bytes: [UInt8]) -> FrameSpec? {
        guard let first = bytes.first else { return nil }
        let type: UInt16 = first >> 4 == 4 ? EtherType.ipv4 : first >> 4 == 6 ? EtherType.ipv6 : 0
        guard type != 0, let spec = structured([UInt8](repeating: 0, count: 12) + be16(type) + bytes, quoting: false) else { return nil }
        var quoted = FrameSpec()
        quoted.network = spec.network
        quoted.transport = spec.transport
        quoted.payload = spec.payload
        guard (try? quoted.packet()) == bytes else { return nil }
        return quoted
    }

    /// Trailing zeros that only pad the frame to 60 bytes are not payload.
    private static func trimmedPadding(_ rest: [UInt8], frameLength: Int) -> [UInt8] {
        guard frameLength == 60 else { return rest }
        var end = rest.count
        while end > 0, rest[end - 1] == 0 { end -= 1 }
        return Array(rest[..<end])
    }

    /// The decoded checksums that the builder would compute anyway, removed.
    private func withCorrectChecksumsOmitted() -> FrameSpec {
        var spec = self
        if case .ipv4(var ip)? = spec.network {
            let given = ip.checksum
            ip.checksum = nil
            var probe = spec
            probe.network = .ipv4(ip)
            if given == probe.computedIPv4Checksum() { spec.network = .ipv4(ip) }
        }
        var probe = spec
        switch spec.transport {
        case .tcp(var tcp)?:
            let given = tcp.checksum
            tcp.checksum = nil
            probe.transport = .tcp(tcp)
            if given == probe.computedTransportChecksum(at: 16) { spec.transport = .tcp(tcp) }
        case .udp(var udp)?:
            let given = udp.checksum
            udp.checksum = nil
            probe.transport = .udp(udp)
            if given == probe.computedTransportChecksum(at: 6) { spec.transport = .udp(udp) }
        case .icmp(var icmp)?:
            let given = icmp.checksum
            icmp.checksum = nil
            probe.transport = .icmp(icmp)
            if given == probe.computedTransportChecksum(at: 2) { spec.transport = .icmp(icmp) }
        case .icmpv6(var icmp)?:
            let given = icmp.checksum
            icmp.checksum = nil
            probe.transport = .icmpv6(icmp)
            if given == probe.computedTransportChecksum(at: 2) { spec.transport = .icmpv6(icmp) }
        case nil:
            break
        }
        return spec
    }

    private func computedIPv4Checksum() -> UInt16? {
        guard let bytes = try? networkBytes().1, bytes.count >= 12 else { return nil }
        return UInt16(bytes[10]) << 8 | UInt16(bytes[11])
    }

    private func computedTransportChecksum(at offset: Int) -> UInt16? {
        guard let bytes = try? networkBytes().1 else { return nil }
        let start: Int
        switch network {
        case .ipv4(let ip)?: start = 20 + ip.options.count
        case .ipv6(let ip)?: start = 40 + (ip.frag == nil ? 0 : 8)
        default: return nil
        }
        guard bytes.count >= start + offset + 2 else { return nil }
        return UInt16(bytes[start + offset]) << 8 | UInt16(bytes[start + offset + 1])
    }
}

private func u16(_ bytes: [UInt8], _ offset: Int) -> UInt16 { UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1]) }
private func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 { UInt32(u16(bytes, offset)) << 16 | UInt32(u16(bytes, offset + 2)) }
private func u64(_ bytes: [UInt8], _ offset: Int) -> UInt64 { UInt64(u32(bytes, offset)) << 32 | UInt64(u32(bytes, offset + 4)) }
private func mac(_ bytes: [UInt8], _ offset: Int) -> MACAddress {
    MACAddress(bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3], bytes[offset + 4], bytes[offset + 5])
}
