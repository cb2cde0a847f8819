/// Full (non-incremental) checksum verification of a parsed frame, for tests, `--expect` diffs and
/// anything off the fast path that wants a second opinion on a rewrite.
public enum ChecksumVerifier {
    /// Whether the IPv4 header checksum verifies; nil when the frame is not IPv4.
    public static func ipv4HeaderIsValid(_ frame: UnsafeRawBufferPointer, _ parsed: ParsedFrame) -> Bool? {
        guard parsed.layer3 == .ipv4,
            let ip = IPv4View(validating: UnsafeRawBufferPointer(rebasing: frame[Int(parsed.l3Offset)...]))
        else { return nil }
        return ip.checksumIsValid
    }

    /// Whether the TCP, UDP, ICMP or ICMPv6 checksum verifies over the whole L4 segment; nil when there
    /// is no such header or the datagram is a fragment (its checksum covers bytes not in this frame).
    public static func l4IsValid(_ frame: UnsafeRawBufferPointer, _ parsed: ParsedFrame) -> Bool? {
        guard parsed.hasL4, parsed.fragment == .none else { return nil }
        let l3 = Int(parsed.l3Offset)
        let l4 = Int(parsed.l4Offset)
        let end: Int
        var pseudo: UInt64 = 0
        let proto = parsed.ipProtocol
        switch parsed.layer3 {
        case .ipv4:
            guard let ip = IPv4View(validating: UnsafeRawBufferPointer(rebasing: frame[l3...])) else { return nil }
            end = l3 + ip.totalLength
            if proto != IPProtocol.icmp {
                pseudo = InternetChecksum.ipv4PseudoHeaderSum(
                    source: ip.source, destination: ip.destination, proto: proto, length: end - l4)
            }
        case .ipv6:
            guard let ip = IPv6View(validating: UnsafeRawBufferPointer(rebasing: frame[l3...])) else { return nil }
            end = l3 + IPv6View.length + ip.payloadLength
            pseudo = InternetChecksum.ipv6PseudoHeaderSum(
                source: ip.source, destination: ip.destination, proto: proto, length: end - l4)
        default:
            return nil
        }
        let segment = UnsafeRawBufferPointer(rebasing: frame[l4..<end])
        if proto == IPProtocol.udp && parsed.layer3 == .ipv4 && segment.u16(6) == 0 { return true }
        return InternetChecksum.fold(InternetChecksum.sum(segment, initial: pseudo)) == 0
    }
}
