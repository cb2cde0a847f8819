/// Parses a frame once, from Ethernet to the L4 header, into a `ParsedFrame`.
///
/// Never traps and never reads outside `bytes`: every step validates a view before reading it.
/// A malformed header stops the walk and sets `malformation`. Up to two VLAN tags are walked
/// (802.1ad S-tag then 802.1Q C-tag); a third tag leaves the frame as opaque L2.
public enum FrameParser {
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> ParsedFrame {
        var ignored = IgnoredProblem()
        return parse(bytes, &ignored)
    }

    /// `parse`, and where the malformed header is when the frame is malformed (for `trace`).
    public static func parseLocatingProblem(_ bytes: UnsafeRawBufferPointer) -> (ParsedFrame, ProblemLocation) {
        var location = ProblemLocation()
        let parsed = parse(bytes, &location)
        return (parsed, location)
    }

    @inline(__always)
    private static func parse<Recorder: ProblemRecorder>(
        _ bytes: UnsafeRawBufferPointer, _ problem: inout Recorder
    ) -> ParsedFrame {
        var parsed = ParsedFrame()
        guard let ethernet = EthernetView(validating: bytes) else {
            fail(&parsed, .runt, at: 0, length: bytes.count, &problem)
            return parsed
        }
        var type = ethernet.etherType
        var offset = EthernetView.length - 2  // points at the current EtherType/TPID
        while EtherType.isTag(type) {
            guard let tag = VLANTagView(validating: UnsafeRawBufferPointer(rebasing: bytes[offset...])),
                bytes.count >= offset + 6
            else {
                fail(&parsed, .truncatedTag, at: offset, length: bytes.count - offset, &problem)
                return parsed
            }
            if parsed.tagCount == 0 {
                parsed.outerTPID = tag.tpid
                parsed.outerTCI = tag.tci
            } else if parsed.tagCount == 1 {
                parsed.innerTPID = tag.tpid
            } else {
                return parsed  // more than two tags: opaque L2
            }
            parsed.tagCount += 1
            offset += VLANTagView.length
            type = bytes.u16(offset)
        }
        parsed.etherType = type
        let l3 = offset + 2
        let rest = UnsafeRawBufferPointer(rebasing: bytes[l3...])
        switch type {
        case EtherType.arp:
            guard ARPView(validating: rest) != nil else {
                fail(&parsed, .truncatedARP, at: l3, length: rest.count, &problem)
                return parsed
            }
            parsed.layer3 = .arp
            parsed.l3Offset = UInt16(truncatingIfNeeded: l3)  // at most 14 + 2 tags
        case EtherType.ipv4:
            parseIPv4(rest, at: l3, into: &parsed, &problem)
        case EtherType.ipv6:
            parseIPv6(rest, at: l3, into: &parsed, &problem)
        default:
            break
        }
        return parsed
    }

    private static func parseIPv4<Recorder: ProblemRecorder>(
        _ bytes: UnsafeRawBufferPointer, at l3: Int, into parsed: inout ParsedFrame, _ problem: inout Recorder
    ) {
        guard let ip = IPv4View(validating: bytes) else {
            fail(&parsed, .badIPv4Header, at: l3, length: bytes.count, &problem)
            return
        }
        parsed.layer3 = .ipv4
        parsed.l3Offset = UInt16(truncatingIfNeeded: l3)  // at most 14 + 2 tags
        parsed.ipProtocol = ip.proto
        if ip.fragmentOffset != 0 {
            parsed.fragment = .later
            return
        }
        if ip.moreFragments { parsed.fragment = .first }
        parseL4(ip.payload, at: l3 + ip.headerLength, proto: ip.proto, into: &parsed, &problem)
    }

    private static func parseIPv6<Recorder: ProblemRecorder>(
        _ bytes: UnsafeRawBufferPointer, at l3: Int, into parsed: inout ParsedFrame, _ problem: inout Recorder
    ) {
        guard let ip = IPv6View(validating: bytes) else {
            fail(&parsed, .badIPv6Header, at: l3, length: bytes.count, &problem)
            return
        }
        parsed.layer3 = .ipv6
        parsed.l3Offset = UInt16(truncatingIfNeeded: l3)  // at most 14 + 2 tags
        var next = ip.nextHeader
        var offset = IPv6View.length
        let end = IPv6View.length + ip.payloadLength
        // Walk extension headers (RFC 8200 section 4) to the upper-layer header.
        while true {
            switch next {
            case 0, 43, 60:  // hop-by-hop, routing, destination options: (len + 1) * 8 bytes
                guard offset + 8 <= end else {
                    fail(&parsed, .truncatedIPv6ExtensionHeader, at: l3 + offset, length: end - offset, &problem)
                    return
                }
                let length = (Int(bytes[offset + 1]) + 1) * 8
                guard offset + length <= end else {
                    fail(&parsed, .truncatedIPv6ExtensionHeader, at: l3 + offset, length: end - offset, &problem)
                    return
                }
                next = bytes[offset]
                offset += length
            case 44:  // fragment header, 8 bytes
                guard offset + 8 <= end else {
                    fail(&parsed, .truncatedIPv6ExtensionHeader, at: l3 + offset, length: end - offset, &problem)
                    return
                }
                let offsetAndFlags = bytes.u16(offset + 2)
                next = bytes[offset]
                offset += 8
                if offsetAndFlags & 0xFFF8 != 0 {
                    parsed.fragment = .later
                    parsed.ipProtocol = next
                    return
                }
                if offsetAndFlags & 1 != 0 { parsed.fragment = .first }
            case 51:  // authentication header: (len + 2) * 4 bytes
                guard offset + 8 <= end else {
                    fail(&parsed, .truncatedIPv6ExtensionHeader, at: l3 + offset, length: end - offset, &problem)
                    return
                }
                let length = (Int(bytes[offset + 1]) + 2) * 4
                guard offset + length <= end else {
                    fail(&parsed, .truncatedIPv6ExtensionHeader, at: l3 + offset, length: end - offset, &problem)
                    return
                }
                next = bytes[offset]
                offset += length
            default:
                parsed.ipProtocol = next
                parseL4(
                    UnsafeRawBufferPointer(rebasing: bytes[offset..<end]), at: l3 + offset, proto: next,
                    into: &parsed, &problem)
                return
            }
        }
    }

    private static func parseL4<Recorder: ProblemRecorder>(
        _ bytes: UnsafeRawBufferPointer, at l4: Int, proto: UInt8, into parsed: inout ParsedFrame,
        _ problem: inout Recorder
    ) {
        switch proto {
        case IPProtocol.tcp:
            guard TCPView(validating: bytes) != nil else {
                fail(&parsed, .badTCPHeader, at: l4, length: bytes.count, &problem)
                return
            }
        case IPProtocol.udp:
            // A first fragment holds the UDP header, but its length field covers the whole datagram.
            let valid = parsed.fragment == .first ? bytes.count >= UDPView.length : UDPView(validating: bytes) != nil
            guard valid else {
                fail(&parsed, .badUDPHeader, at: l4, length: bytes.count, &problem)
                return
            }
        case IPProtocol.icmp, IPProtocol.icmpv6:
            guard ICMPView(validating: bytes) != nil else {
                fail(&parsed, .truncatedICMP, at: l4, length: bytes.count, &problem)
                return
            }
        default:
            return  // another upper layer: no L4 offset
        }
        // IPv6 extension headers can push the upper-layer header of a jumbo-sized frame past what
        // a 16-bit offset holds (and `absent` is reserved): such a frame is malformed, not a trap.
        guard l4 < Int(ParsedFrame.absent) else {
            fail(&parsed, .headerBeyondOffsetLimit, at: l4, length: bytes.count, &problem)
            return
        }
        parsed.l4Offset = UInt16(truncatingIfNeeded: l4)
    }

    /// Marks the frame malformed by the header at `offset`, which had `length` bytes to live in.
    @inline(__always)
    private static func fail<Recorder: ProblemRecorder>(
        _ parsed: inout ParsedFrame, _ malformation: Malformation, at offset: Int, length: Int, _ problem: inout Recorder
    ) {
        parsed.malformation = malformation
        problem.record(offset: offset, length: length)
    }
}
