import TapestryWire

extension FrameSpec {
    /// The largest frame a spec may build: what replay and the switch take.
    public static let maxLength = 65_535 + 18

    /// The frame's bytes: lengths and checksums computed unless a value is given, short frames
    /// padded to 60 bytes unless `pad` is false.
    public func build() throws(FrameSpecError) -> [UInt8] {
        if let raw {
            guard raw.count <= Self.maxLength else { throw FrameSpecError("raw frame of \(raw.count) bytes is longer than \(Self.maxLength)") }
            return raw
        }
        let (type, l3) = try networkBytes()
        var frame = (eth.dst ?? .broadcast).bytes + (eth.src ?? MACAddress(rawValue: 0x0200_0000_0001)).bytes
        for tag in vlans {
            frame += be16(tag.tpid) + be16(UInt16(tag.pcp & 7) << 13 | UInt16(tag.dei & 1) << 12 | (tag.vid & 0x0FFF))
        }
        frame += be16(eth.type ?? type) + l3
        guard frame.count <= Self.maxLength else {
            throw FrameSpecError("the frame would be \(frame.count) bytes, longer than \(Self.maxLength)")
        }
        if pad && frame.count < 60 { frame += [UInt8](repeating: 0, count: 60 - frame.count) }
        return frame
    }

    /// The EtherType the layers imply and the bytes after it.
    func networkBytes() throws(FrameSpecError) -> (UInt16, [UInt8]) {
        switch network {
        case nil:
            if transport != nil { throw FrameSpecError("a tcp, udp, icmp or icmpv6 layer needs an ipv4 or ipv6 layer") }
            return (0x88B5, payload)  // IEEE local experimental EtherType, for a bare payload
        case .arp(let arp):
            if transport != nil { throw FrameSpecError("an arp frame has no tcp, udp, icmp or icmpv6 layer") }
            let bytes = be16(1) + be16(EtherType.ipv4) + [6, 4] + be16(arp.op) + (arp.sha ?? eth.src ?? MACAddress(rawValue: 0x0200_0000_0001)).bytes
                + be32(arp.spa.rawValue) + arp.tha.bytes + be32(arp.tpa.rawValue)
            return (EtherType.arp, bytes + payload)
        case .ipv4(let ip):
            return (EtherType.ipv4, try ipv4Bytes(ip))
        case .ipv6(let ip):
            return (EtherType.ipv6, try ipv6Bytes(ip))
        }
    }

    private func ipv4Bytes(_ ip: IPv4) throws(FrameSpecError) -> [UInt8] {
        guard ip.options.count % 4 == 0, ip.options.count <= 40 else {
            throw FrameSpecError("ipv4 options must be a multiple of 4 bytes, at most 40")
        }
        guard ip.frag % 8 == 0, ip.frag >= 0, ip.frag / 8 <= 0x1FFF else {
            throw FrameSpecError("ipv4 frag must be a multiple of 8 from 0 to 65528, not \(ip.frag)")
        }
        let (proto, l4) = try transportBytes(
            pseudo: { proto, length in
                InternetChecksum.ipv4PseudoHeaderSum(source: ip.src, destination: ip.dst, proto: proto, length: length)
            }, isIPv6: false, fragmentOffset: ip.frag)
        let headerLength = 20 + ip.options.count
        let total = headerLength + l4.count
        guard total <= 65_535 else { throw FrameSpecError("the ipv4 packet would be \(total) bytes, more than 65,535") }
        let flags = UInt16(ip.df ? 0x4000 : 0) | UInt16(ip.mf ? 0x2000 : 0) | UInt16(ip.frag / 8)
        var header: [UInt8] = [UInt8(0x40 | headerLength / 4), ip.tos] + be16(UInt16(total)) + be16(ip.id) + be16(flags)
        header += [ip.ttl, ip.proto ?? proto, 0, 0] + be32(ip.src.rawValue) + be32(ip.dst.rawValue) + ip.options
        let checksum = ip.checksum ?? header.withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0)) }
        header[10] = UInt8(checksum >> 8)
        header[11] = UInt8(checksum & 0xFF)
        return header + l4
    }

    private func ipv6Bytes(_ ip: IPv6) throws(FrameSpecError) -> [UInt8] {
        let (proto, l4) = try transportBytes(
            pseudo: { proto, length in
                InternetChecksum.ipv6PseudoHeaderSum(source: ip.src, destination: ip.dst, proto: proto, length: length)
            }, isIPv6: true, fragmentOffset: ip.frag?.offset ?? 0)
        var upper = l4
        var next = ip.nh ?? proto
        if let frag = ip.frag {
            guard frag.offset % 8 == 0, frag.offset >= 0, frag.offset / 8 <= 0x1FFF else {
                throw FrameSpecError("ipv6 frag offset must be a multiple of 8 from 0 to 65528, not \(frag.offset)")
            }
            upper = [next, 0] + be16(UInt16(frag.offset / 8) << 3 | (frag.more ? 1 : 0)) + be32(frag.id) + l4
            next = 44
        }
        guard upper.count <= 65_535 else { throw FrameSpecError("the ipv6 payload would be \(upper.count) bytes, more than 65,535") }
        let first = UInt32(6) << 28 | UInt32(ip.tc) << 20 | (ip.flow & 0xFFFFF)
        return be32(first) + be16(UInt16(upper.count)) + [next, ip.hlim] + ip.src.bytes + ip.dst.bytes + upper
    }

    /// The upper layer's protocol number and bytes (header, then payload), its checksum over the
    /// pseudo-header `pseudo(proto, length)` unless given. A later fragment carries only payload.
    private func transportBytes(
        pseudo: (UInt8, Int) -> UInt64, isIPv6: Bool, fragmentOffset: Int
    ) throws(FrameSpecError) -> (UInt8, [UInt8]) {
        func checksum(_ bytes: inout [UInt8], at offset: Int, given: UInt16?, proto: UInt8, pseudoHeader: Bool) {
            var value = given ?? 0
            if given == nil {
                let initial = pseudoHeader ? pseudo(proto, bytes.count) : 0
                value = bytes.withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0, initial: initial)) }
                if proto == IPProtocol.udp && value == 0 { value = 0xFFFF }  // 0 means "no checksum" in UDP
            }
            bytes[offset] = UInt8(value >> 8)
            bytes[offset + 1] = UInt8(value & 0xFF)
        }
        if fragmentOffset != 0 && transport != nil {
            throw FrameSpecError("a later fragment (frag above 0) carries no tcp, udp or icmp header: give its bytes as payload")
        }
        switch transport {
        case nil:
            return (isIPv6 ? 59 : 253, payload)  // IPv6 "no next header"; IPv4 253, for experimentation
        case .tcp(let tcp):
            guard tcp.options.count % 4 == 0, tcp.options.count <= 40 else {
                throw FrameSpecError("tcp options must be a multiple of 4 bytes, at most 40")
            }
            var bytes = be16(tcp.sport) + be16(tcp.dport) + be32(tcp.seq) + be32(tcp.ack)
            bytes += [UInt8((20 + tcp.options.count) / 4) << 4, tcp.flags] + be16(tcp.window) + [0, 0, 0, 0]
            bytes += tcp.options + payload
            checksum(&bytes, at: 16, given: tcp.checksum, proto: IPProtocol.tcp, pseudoHeader: true)
            return (IPProtocol.tcp, bytes)
        case .udp(let udp):
            let length = 8 + payload.count
            guard length <= 65_535 else { throw FrameSpecError("the udp datagram would be \(length) bytes, more than 65,535") }
            var bytes = be16(udp.sport) + be16(udp.dport) + be16(UInt16(length)) + [0, 0] + payload
            checksum(&bytes, at: 6, given: udp.checksum, proto: IPProtocol.udp, pseudoHeader: true)
            return (IPProtocol.udp, bytes)
        case .icmp(let icmp), .icmpv6(let icmp):
            let v6: Bool
            if case .icmpv6 = transport { v6 = true } else { v6 = false }
            guard v6 == isIPv6 else {
                throw FrameSpecError(v6 ? "an icmpv6 layer needs an ipv6 layer" : "an icmp layer needs an ipv4 layer")
            }
            let proto = v6 ? IPProtocol.icmpv6 : IPProtocol.icmp
            var bytes: [UInt8] = [icmp.type, icmp.code, 0, 0]
            if let quote = icmp.quote {
                bytes += [0, 0, 0, 0] + (try quote.spec.packet())
            } else if let target = icmp.target {
                bytes += [icmp.neighborFlags, 0, 0, 0] + target.bytes
            } else {
                bytes += be16(icmp.id) + be16(icmp.seq)
            }
            bytes += payload
            checksum(&bytes, at: 2, given: icmp.checksum, proto: proto, pseudoHeader: v6)
            return (proto, bytes)
        }
    }

    /// The packet from its IP layer on: what an ICMP error quotes, and what a test wraps in a
    /// header of its own to craft a frame the layers cannot say.
    public func packet() throws(FrameSpecError) -> [UInt8] {
        switch network {
        case .ipv4?, .ipv6?: return try networkBytes().1
        case .arp?, nil: throw FrameSpecError("an icmp quote must start with an ipv4 or ipv6 layer")
        }
    }
}

func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
func be32(_ value: UInt32) -> [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }

extension IPv6Address {
    var bytes: [UInt8] {
        be32(UInt32(truncatingIfNeeded: high >> 32)) + be32(UInt32(truncatingIfNeeded: high))
            + be32(UInt32(truncatingIfNeeded: low >> 32)) + be32(UInt32(truncatingIfNeeded: low))
    }
}
