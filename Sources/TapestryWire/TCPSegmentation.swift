/// Software TCP segmentation (GSO), for ports that cannot take offloads: QEMU's socket backends
/// carry plain frames, so a 64 KB TSO segment read from a TAP device or a packet socket must leave
/// through them as MSS-sized frames. Each segment gets the original headers with its own IP length
/// (and IPv4 identification and header checksum), sequence number, flags (FIN and PSH on the last
/// only, CWR on the first only) and a full TCP checksum, as the kernel's tcp_gso_segment does.
public enum TCPSegmentation {
    /// The largest number of bytes `segment` can write for a frame of `frameLength` bytes with
    /// `gap` bytes before each segment: what to reserve for one frame.
    public static func outputBound(frameLength: Int, headerLength: Int, mss: Int, gap: Int) -> Int {
        let payload = max(0, frameLength - headerLength)
        let segments = max(1, (payload + max(1, mss) - 1) / max(1, mss))
        return segments * (gap + headerLength) + payload
    }

    /// Where the headers of a TSO frame end, if it is TCP over IPv4 or IPv6 (no extension headers)
    /// behind at most two VLAN tags; nil otherwise.
    public static func headerLength(_ frame: UnsafeRawBufferPointer) -> (l3: Int, l4: Int, end: Int, ipv4: Bool)? {
        guard frame.count >= 14 else { return nil }
        var l3 = 14
        var type = frame.u16(12)
        var tags = 0
        while (type == EtherType.vlan || type == EtherType.qinq) && tags < 2 {
            guard frame.count >= l3 + 4 else { return nil }
            type = frame.u16(l3 + 2)
            l3 += 4
            tags += 1
        }
        let l4: Int
        let ipv4: Bool
        switch type {
        case EtherType.ipv4:
            // IHL below 5 would put the TCP header inside the IP header: not a frame to cut.
            guard frame.count >= l3 + 20, frame[l3] >> 4 == 4, frame[l3] & 0x0F >= 5, frame[l3 + 9] == IPProtocol.tcp
            else { return nil }
            l4 = l3 + Int(frame[l3] & 0x0F) * 4
            ipv4 = true
        case EtherType.ipv6:
            guard frame.count >= l3 + 40, frame[l3] >> 4 == 6, frame[l3 + 6] == IPProtocol.tcp else { return nil }
            l4 = l3 + 40
            ipv4 = false
        default:
            return nil
        }
        guard frame.count >= l4 + 20 else { return nil }
        let end = l4 + Int(frame[l4 + 12] >> 4) * 4
        guard end >= l4 + 20, end <= frame.count else { return nil }
        return (l3, l4, end, ipv4)
    }

    /// Whether every segment of at most `mss` payload bytes gets an IP length that fits its 16-bit
    /// field (IPv4 total length from `l3`, IPv6 payload length from `l4`). A TSO frame read from a
    /// device can be up to 64 KiB plus headers with any gso_size a guest chose: a segment longer
    /// than IP can describe is not a frame to send (the caller counts it as `oversize`).
    public static func segmentsFit(frameLength: Int, headers: (l3: Int, l4: Int, end: Int, ipv4: Bool), mss: Int) -> Bool {
        guard mss > 0, frameLength >= headers.end else { return false }
        let largest = min(mss, frameLength - headers.end)
        let ipLength = headers.end - (headers.ipv4 ? headers.l3 : headers.l4) + largest
        return ipLength <= Int(UInt16.max)
    }

    /// Cuts `frame` into segments of at most `mss` payload bytes, written one after another into
    /// `output`, each preceded by `gap` bytes the caller fills (QEMU's length prefix). Calls
    /// `emit(offset, length)` with each segment's place in `output` (the gap sits just before it).
    /// Returns the number of segments, or nil (writing nothing) when the frame is not TCP this
    /// code understands, `mss` is 0, a segment would be longer than its IP length field can say
    /// (`segmentsFit`), or `output` is too small.
    public static func segment(
        _ frame: UnsafeRawBufferPointer, mss: Int, gap: Int, into output: UnsafeMutableRawBufferPointer,
        emit: (Int, Int) -> Void
    ) -> Int? {
        guard mss > 0, let headers = headerLength(frame),
            segmentsFit(frameLength: frame.count, headers: headers, mss: mss)
        else { return nil }
        let payload = frame.count - headers.end
        guard outputBound(frameLength: frame.count, headerLength: headers.end, mss: mss, gap: gap) <= output.count,
            let source = frame.baseAddress, let base = output.baseAddress
        else { return nil }
        let (l3, l4, end, ipv4) = headers
        let sequence = frame.u32(l4 + 4)
        let identification = ipv4 ? frame.u16(l3 + 4) : 0
        let flags = frame[l4 + 13]
        let addressRange = ipv4 ? (l3 + 12)..<(l3 + 20) : (l3 + 8)..<(l3 + 40)
        let addressSum = InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: frame[addressRange]))
        var offset = 0
        var written = 0
        var count = 0
        repeat {
            let length = min(mss, payload - offset)
            let start = written + gap
            let segment = UnsafeMutableRawBufferPointer(start: base + start, count: end + length)
            (base + start).copyMemory(from: source, byteCount: end)
            (base + start + end).copyMemory(from: source + end + offset, byteCount: length)
            let first = offset == 0
            let last = offset + length >= payload
            if ipv4 {
                // In range: segmentsFit checked the largest segment.
                segment.setU16(l3 + 2, UInt16(end - l3 + length))
                segment.setU16(l3 + 4, identification &+ UInt16(truncatingIfNeeded: count))
                segment.setU16(l3 + 10, 0)
                let headerSum = InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: segment[l3..<l4]))
                segment.setU16(l3 + 10, InternetChecksum.fold(headerSum))
            } else {
                segment.setU16(l3 + 4, UInt16(end - l4 + length))
            }
            segment.setU32(l4 + 4, sequence &+ UInt32(truncatingIfNeeded: offset))
            var segmentFlags = flags
            if !last { segmentFlags &= ~(TCPFlags.fin.rawValue | TCPFlags.psh.rawValue) }
            if !first { segmentFlags &= ~TCPFlags.cwr.rawValue }
            segment[l4 + 13] = segmentFlags
            segment.setU16(l4 + 16, 0)
            let pseudo = addressSum + UInt64(IPProtocol.tcp) + UInt64(end - l4 + length)
            let sum = InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: segment[l4...]), initial: pseudo)
            segment.setU16(l4 + 16, InternetChecksum.fold(sum))
            emit(start, end + length)
            written = start + end + length
            offset += length
            count += 1
        } while offset < payload
        return count
    }
}
