#if canImport(Glibc)
import Glibc
#endif

/// In-place header rewrites with incremental checksum updates (RFC 1624).
///
/// Every function takes the frame's bytes and the `ParsedFrame` the parser produced for them, and
/// returns false (changing nothing) when the frame lacks the layer the rewrite needs. Rewrites
/// never change the frame's length, so the parsed offsets stay valid; `pushTag`/`popTag` do change
/// it and return the new start.
public enum FrameRewriter {
    public static func setDestinationMAC(_ frame: UnsafeMutableRawBufferPointer, _ mac: MACAddress) -> Bool {
        guard frame.count >= EthernetView.length else { return false }
        frame.setMAC(0, mac)
        return true
    }

    public static func setSourceMAC(_ frame: UnsafeMutableRawBufferPointer, _ mac: MACAddress) -> Bool {
        guard frame.count >= EthernetView.length else { return false }
        frame.setMAC(6, mac)
        return true
    }

    /// Rewrites the IPv4 source (`which == .source`) or destination address, fixing the header
    /// checksum and the TCP/UDP checksum over the pseudo-header. A UDP checksum of 0 means "none"
    /// and stays 0; a computed 0 is sent as 0xFFFF (RFC 768).
    ///
    /// `partialChecksum`: the frame's L4 checksum is still to be completed (a virtio-net header's
    /// NEEDS_CSUM): its field holds the pseudo-header's sum, not a checksum, so it moves the
    /// other way (plus the new address, minus the old) and nothing about UDP's 0 applies.
    public static func setIPv4Address(
        _ frame: UnsafeMutableRawBufferPointer, _ parsed: ParsedFrame, _ which: Endpoint, _ address: IPv4Address,
        partialChecksum: Bool = false
    ) -> Bool {
        guard parsed.layer3 == .ipv4 else { return false }
        let l3 = Int(parsed.l3Offset)
        let field = l3 + (which == .source ? 12 : 16)
        let old = frame.u32(field)
        let new = address.rawValue
        guard old != new else { return true }
        frame.setU32(field, new)
        frame.setU16(l3 + 10, InternetChecksum.update(frame.u16(l3 + 10), old: old, new: new))
        if let checksumField = l4ChecksumOffset(frame, parsed, pseudoHeaderCovered: true) {
            if partialChecksum {
                frame.setU16(checksumField, InternetChecksum.update(frame.u16(checksumField), old: new, new: old))
            } else {
                updateL4Checksum(frame, at: checksumField, parsed: parsed) { InternetChecksum.update($0, old: old, new: new) }
            }
        }
        return true
    }

    /// Rewrites an IPv6 address and fixes the TCP, UDP or ICMPv6 checksum (all cover the
    /// pseudo-header); `partialChecksum` as for `setIPv4Address`.
    public static func setIPv6Address(
        _ frame: UnsafeMutableRawBufferPointer, _ parsed: ParsedFrame, _ which: Endpoint, _ address: IPv6Address,
        partialChecksum: Bool = false
    ) -> Bool {
        guard parsed.layer3 == .ipv6 else { return false }
        let field = Int(parsed.l3Offset) + (which == .source ? 8 : 24)
        let checksumField = l4ChecksumOffset(frame, parsed, pseudoHeaderCovered: true)
        // Word by word from the two halves: a load balancer rewrites every packet so, and the
        // datapath allocates nothing per frame.
        for index in 0..<8 {
            let half = index < 4 ? address.high : address.low
            let new = UInt16(truncatingIfNeeded: half >> (48 - 16 * UInt64(index & 3)))
            let old = frame.u16(field + 2 * index)
            guard old != new else { continue }
            frame.setU16(field + 2 * index, new)
            if let checksumField {
                if partialChecksum {
                    frame.setU16(checksumField, InternetChecksum.update(frame.u16(checksumField), old: new, new: old))
                } else {
                    updateL4Checksum(frame, at: checksumField, parsed: parsed) {
                        InternetChecksum.update($0, old: old, new: new)
                    }
                }
            }
        }
        return true
    }

    /// Rewrites the TCP or UDP source or destination port and fixes the L4 checksum. With
    /// `partialChecksum` the port lies inside what the completion will sum, so the field (the
    /// pseudo-header's sum) stays as it is.
    public static func setPort(
        _ frame: UnsafeMutableRawBufferPointer, _ parsed: ParsedFrame, _ which: Endpoint, _ port: UInt16,
        partialChecksum: Bool = false
    ) -> Bool {
        guard parsed.hasL4, parsed.ipProtocol == IPProtocol.tcp || parsed.ipProtocol == IPProtocol.udp else {
            return false
        }
        let field = Int(parsed.l4Offset) + (which == .source ? 0 : 2)
        let old = frame.u16(field)
        frame.setU16(field, port)
        if !partialChecksum, let checksumField = l4ChecksumOffset(frame, parsed, pseudoHeaderCovered: false) {
            updateL4Checksum(frame, at: checksumField, parsed: parsed) { InternetChecksum.update($0, old: old, new: port) }
        }
        return true
    }

    public enum Endpoint: Sendable { case source, destination }

    /// Offset of the L4 checksum field, when there is one to keep correct. ICMPv4's checksum does not
    /// cover the IP addresses, so an address rewrite leaves it alone.
    private static func l4ChecksumOffset(
        _ frame: UnsafeMutableRawBufferPointer, _ parsed: ParsedFrame, pseudoHeaderCovered: Bool
    ) -> Int? {
        guard parsed.hasL4 else { return nil }
        let l4 = Int(parsed.l4Offset)
        switch parsed.ipProtocol {
        case IPProtocol.tcp: return l4 + 16
        case IPProtocol.udp: return l4 + 6
        case IPProtocol.icmpv6: return pseudoHeaderCovered ? l4 + 2 : nil
        default: return nil
        }
    }

    @inline(__always)
    private static func updateL4Checksum(
        _ frame: UnsafeMutableRawBufferPointer, at offset: Int, parsed: ParsedFrame, _ update: (UInt16) -> UInt16
    ) {
        let current = frame.u16(offset)
        let isUDP = parsed.ipProtocol == IPProtocol.udp
        if isUDP && current == 0 && parsed.layer3 == .ipv4 { return }  // no checksum in use
        var next = update(current)
        if isUDP && next == 0 { next = 0xFFFF }
        frame.setU16(offset, next)
    }

    /// Inserts a tag after the source MAC by moving the 12 MAC bytes into the headroom.
    ///
    /// - Parameters:
    ///   - region: the slot memory, headroom included.
    ///   - start: offset of the frame in `region`; must be at least 4.
    ///   - length: frame length.
    /// - Returns: the frame's new start, or nil when there is no headroom or no Ethernet header.
    public static func pushTag(
        _ region: UnsafeMutableRawBufferPointer, start: Int, length: Int, tpid: UInt16, tci: UInt16
    ) -> Int? {
        guard start >= VLANTagView.length, length >= 12, start + length <= region.count else { return nil }
        let base = region.baseAddress!
        let newStart = start - VLANTagView.length
        memmove(base + newStart, base + start, 12)
        region.setU16(newStart + 12, tpid)
        region.setU16(newStart + 14, tci)
        return newStart
    }

    /// Removes the outermost tag. Returns the frame's new start, or nil when the frame is not tagged.
    public static func popTag(_ region: UnsafeMutableRawBufferPointer, start: Int, length: Int) -> Int? {
        guard length >= 18, start + length <= region.count, EtherType.isTag(region.u16(start + 12)) else {
            return nil
        }
        let base = region.baseAddress!
        let newStart = start + VLANTagView.length
        memmove(base + newStart, base + start, 12)  // the regions overlap
        return newStart
    }
}
