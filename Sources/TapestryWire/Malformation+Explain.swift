extension Malformation {
    /// The field and value that made the header at `offset` (with `length` bytes to live in, as
    /// the parser recorded them in `ParsedFrame.problemOffset`/`problemLength`) malformed, in
    /// words: "IPv4 header length 4 is below 5". For `trace`; reads only inside `frame`.
    public func explain(_ frame: UnsafeRawBufferPointer, offset: Int, length: Int) -> String {
        let end = min(frame.count, offset + length)
        guard offset >= 0, offset <= end else { return description }
        let header = UnsafeRawBufferPointer(rebasing: frame[offset..<end])
        let at = "at byte \(offset)"
        switch self {
        case .runt:
            return "the frame has \(frame.count) bytes, fewer than the 14 of an Ethernet header"
        case .truncatedTag:
            return "VLAN tag \(at) is cut short: \(header.count) bytes left, a tag and an EtherType need 6"
        case .truncatedARP:
            guard header.count >= 8 else { return "ARP \(at) has \(header.count) bytes, fewer than 8" }
            let needed = 8 + 2 * (Int(header[4]) + Int(header[5]))
            return "ARP \(at) has \(header.count) bytes; its address lengths \(header[4]) and \(header[5]) need \(needed)"
        case .badIPv4Header:
            guard header.count >= 20 else { return "IPv4 header \(at) has \(header.count) bytes, fewer than 20" }
            let version = header[0] >> 4
            let ihl = Int(header[0] & 0x0F)
            let total = Int(header.u16(2))
            if version != 4 { return "IPv4 version \(version) is not 4" }
            if ihl < 5 { return "IPv4 header length \(ihl) is below 5" }
            if ihl * 4 > header.count {
                return "IPv4 header length \(ihl) (\(ihl * 4) bytes) is more than the \(header.count) bytes left"
            }
            if total < ihl * 4 { return "IPv4 total length \(total) is below its header length of \(ihl * 4) bytes" }
            return "IPv4 total length \(total) is more than the \(header.count) bytes left"
        case .badIPv6Header:
            guard header.count >= 40 else { return "IPv6 header \(at) has \(header.count) bytes, fewer than 40" }
            let version = header[0] >> 4
            if version != 6 { return "IPv6 version \(version) is not 6" }
            return "IPv6 payload length \(header.u16(4)) is more than the \(header.count - 40) bytes after the header"
        case .truncatedIPv6ExtensionHeader:
            guard header.count >= 8 else {
                return "IPv6 extension header \(at) has \(header.count) bytes of payload left, fewer than 8"
            }
            return "IPv6 extension header \(at) (length field \(header[1])) runs past the \(header.count) bytes of payload left"
        case .badTCPHeader:
            guard header.count >= 20 else { return "TCP header \(at) has \(header.count) bytes, fewer than 20" }
            let dataOffset = Int(header[12] >> 4)
            if dataOffset < 5 { return "TCP data offset \(dataOffset) is below 5" }
            return "TCP data offset \(dataOffset) (\(dataOffset * 4) bytes) is more than the \(header.count) bytes left"
        case .badUDPHeader:
            guard header.count >= 8 else { return "UDP header \(at) has \(header.count) bytes, fewer than 8" }
            let udpLength = Int(header.u16(4))
            if udpLength < 8 { return "UDP length \(udpLength) is below 8" }
            return "UDP length \(udpLength) is more than the \(header.count) bytes of IP payload"
        case .truncatedICMP:
            return "ICMP header \(at) has \(header.count) bytes, fewer than 8"
        case .headerBeyondOffsetLimit:
            return "the upper-layer header starts at byte \(offset), beyond byte 65,534"
        case .offloadMismatch:
            return description
        }
    }
}
