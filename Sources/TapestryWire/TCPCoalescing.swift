#if canImport(Glibc)
import Glibc
#endif

/// Software GRO for frames about to be written to a TAP device: consecutive TCP segments of one
/// flow become one TSO frame (a virtio-net header with GSO and a partial checksum), so the host
/// behind the device handles, and acknowledges, 64 KB at a time instead of 1,450 bytes.
///
/// What may be merged follows Linux's `tcp_gro_receive`: untagged IPv4 without options or
/// fragmentation, the same addresses, ports, TOS, TTL, DF, acknowledgement, window and TCP
/// options (timestamps included), flags ACK only (PSH allowed on the last segment, which then
/// ends the run), each segment's sequence number where the previous one ended, every segment as
/// long as the first but the last, which may be shorter, and IPv4 identifications counting up
/// from the first's (or, with DF, all equal to it), which is what cutting the merged frame again
/// gives back. Each segment's IPv4 header and TCP
/// checksums are verified first: the merged frame's checksum is left for the receiver to trust
/// (partial), so a segment with a bad checksum must not hide in it.
public enum TCPCoalescing {
    /// One candidate segment: where its headers end and its flow's fields.
    public struct Segment: Equatable, Sendable {
        /// Ethernet + IPv4 + TCP header bytes.
        public var headerLength: Int
        public var payloadLength: Int
        public var sequence: UInt32
        public var flags: UInt8

        public var nextSequence: UInt32 { sequence &+ UInt32(truncatingIfNeeded: payloadLength) }
    }

    static let l3 = 14
    static let l4 = 34
    /// At most this many segments in one merged frame (Linux's GRO limit is 64).
    public static let maxSegments = 64

    /// The segment `frame` is, when it may take part in a merge.
    public static func segment(_ frame: UnsafeRawBufferPointer) -> Segment? {
        guard frame.count >= l4 + 20, frame.u16(12) == EtherType.ipv4, frame[l3] == 0x45 else { return nil }
        let total = Int(frame.u16(l3 + 2))
        // Ethernet padding (a frame longer than its IP packet) would end up inside the merge.
        guard total + l3 == frame.count, frame[l3 + 9] == IPProtocol.tcp, frame.u16(l3 + 6) & 0x3FFF == 0 else { return nil }
        let tcpLength = Int(frame[l4 + 12] >> 4) * 4
        guard tcpLength >= 20, l4 + tcpLength < frame.count else { return nil }
        let flags = frame[l4 + 13]
        guard flags == TCPFlags.ack.rawValue || flags == TCPFlags.ack.rawValue | TCPFlags.psh.rawValue else { return nil }
        let ip = UnsafeRawBufferPointer(rebasing: frame[l3..<l4])
        guard InternetChecksum.fold(InternetChecksum.sum(ip)) == 0 else { return nil }
        let pseudo = InternetChecksum.ipv4PseudoHeaderSum(
            source: IPv4Address(rawValue: frame.u32(l3 + 12)), destination: IPv4Address(rawValue: frame.u32(l3 + 16)),
            proto: IPProtocol.tcp, length: total - 20)
        guard InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: frame[l4...]), initial: pseudo)) == 0 else {
            return nil
        }
        return Segment(
            headerLength: l4 + tcpLength, payloadLength: frame.count - l4 - tcpLength, sequence: frame.u32(l4 + 4), flags: flags)
    }

    /// Whether `next` (a segment) continues `first`'s run as its segment number `position`
    /// (the first is 0), the previous segment having ended at `sequence` and been
    /// `previousLength` long.
    public static func continues(
        _ first: UnsafeRawBufferPointer, _ firstSegment: Segment, _ next: UnsafeRawBufferPointer, _ nextSegment: Segment,
        position: Int, sequence: UInt32, previousLength: Int
    ) -> Bool {
        guard nextSegment.headerLength == firstSegment.headerLength, nextSegment.sequence == sequence,
            previousLength == firstSegment.payloadLength, nextSegment.payloadLength <= firstSegment.payloadLength
        else { return false }
        let id = first.u16(l3 + 4)
        let nextID = next.u16(l3 + 4)
        let dontFragment = first[l3 + 6] & 0x40 != 0
        guard nextID == id &+ UInt16(truncatingIfNeeded: position) || (dontFragment && nextID == id) else { return false }
        // MACs and EtherType, TOS, then flags/fragment, TTL and protocol, addresses, ports,
        // acknowledgement, data offset, window, urgent pointer and options: all equal. The
        // lengths, identification and checksums may differ, and the flags (checked per segment).
        func same(_ range: Range<Int>) -> Bool {
            first.count >= range.upperBound && next.count >= range.upperBound
                && memcmp(first.baseAddress! + range.lowerBound, next.baseAddress! + range.lowerBound, range.count) == 0
        }
        return same(0..<(l3 + 2)) && same((l3 + 6)..<(l3 + 10)) && same((l3 + 12)..<(l4 + 4))
            && same((l4 + 8)..<(l4 + 13)) && same((l4 + 14)..<(l4 + 16)) && same((l4 + 18)..<firstSegment.headerLength)
    }

    /// The run that starts at `frame(0)`: how many of `frame(0..<count)` it takes (at least two,
    /// at most `maxSegments`, a PSH segment last, at most 65,535 bytes of IPv4 in all) and the
    /// first segment; nil when there is none.
    public static func run(count: Int, frame: (Int) -> UnsafeRawBufferPointer) -> (span: Int, first: Segment)? {
        guard count >= 2 else { return nil }
        let head = frame(0)
        guard let first = segment(head) else { return nil }
        var sequence = first.nextSequence
        var previous = first.payloadLength
        var total = head.count
        var end = 1
        // PSH ends a run (Linux's GRO flushes on it).
        var open = first.flags & TCPFlags.psh.rawValue == 0
        while open, end < count, end < maxSegments {
            let next = frame(end)
            guard let candidate = segment(next),
                continues(head, first, next, candidate, position: end, sequence: sequence, previousLength: previous),
                total + candidate.payloadLength - l3 <= 65_535
            else { break }
            total += candidate.payloadLength
            sequence = candidate.nextSequence
            previous = candidate.payloadLength
            open = candidate.flags & TCPFlags.psh.rawValue == 0
            end += 1
        }
        return end >= 2 ? (end, first) : nil
    }

    /// Writes the merged frame of `count` segments, `frame(0..<count)` (each one that `continues`
    /// the run), into `output` and returns its length and the virtio-net header to send it with;
    /// nil when it does not fit `output` or would exceed IPv4's 65,535 bytes.
    public static func merge(
        count: Int, frame: (Int) -> UnsafeRawBufferPointer, _ first: Segment, into output: UnsafeMutableRawBufferPointer
    ) -> (length: Int, header: VirtioNetHeader)? {
        guard count > 0, count <= maxSegments, let base = output.baseAddress else { return nil }
        var length = first.headerLength
        for index in 0..<count { length += frame(index).count - first.headerLength }
        guard length - l3 <= 65_535, length <= output.count else { return nil }
        base.copyMemory(from: frame(0).baseAddress!, byteCount: first.headerLength)
        var offset = first.headerLength
        for index in 0..<count {
            let bytes = frame(index)
            let payload = bytes.count - first.headerLength
            (base + offset).copyMemory(from: bytes.baseAddress! + first.headerLength, byteCount: payload)
            offset += payload
        }
        // The last segment's flags (PSH) stand for the whole frame.
        output[l4 + 13] = frame(count - 1)[l4 + 13]
        output.setU16(l3 + 2, UInt16(length - l3))
        output.setU16(l3 + 10, 0)
        output.setU16(l3 + 10, InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: output[l3..<l4]))))
        // A partial checksum: the field holds the pseudo-header sum, the receiver adds the rest
        // (as Linux's own TSO frames carry it).
        let pseudo = InternetChecksum.ipv4PseudoHeaderSum(
            source: IPv4Address(rawValue: output.u32(l3 + 12)), destination: IPv4Address(rawValue: output.u32(l3 + 16)),
            proto: IPProtocol.tcp, length: length - l4)
        output.setU16(l4 + 16, ~InternetChecksum.fold(pseudo))
        var header = VirtioNetHeader()
        header.flags = VirtioNetHeader.flagNeedsChecksum
        header.gsoType = VirtioNetHeader.gsoTCPv4
        header.headerLength = UInt16(first.headerLength)
        header.gsoSize = UInt16(first.payloadLength)
        header.checksumStart = UInt16(l4)
        header.checksumOffset = 16
        return (length, header)
    }
}
