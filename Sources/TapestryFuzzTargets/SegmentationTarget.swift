import TapestryWire

#if canImport(Glibc)
import Glibc
#endif

/// Software segmentation and checksum completion, as a port without offloads applies them to a
/// frame a TAP device read with a virtio-net header (guest -> socket port): random headers and
/// frames, and frames grown to TSO sizes.
///
/// Input: 10 bytes of virtio-net header, 1 byte gap (0 or 4), 2 bytes of extra length (the frame
/// is padded with a pattern up to 64 KiB and more, which inputs cannot reach by themselves),
/// then the frame.
///
/// Invariants (`check`): a refused frame writes nothing; otherwise every segment lies inside
/// the output, parses without a malformation, has IP length fields that match its length, valid
/// IPv4 header and TCP checksums, and the sequence numbers and payloads put back together are
/// the original's. A completed partial checksum stays inside the frame.
enum SegmentationTarget {
    /// As PlainFrames: 256 KiB of scratch for one frame's segments.
    static let scratchBytes = 1 << 18

    static func run(_ data: UnsafeRawBufferPointer) throws(InvariantViolation) {
        var input = ByteReader(data)
        var header = [UInt8](repeating: 0, count: VirtioNetHeader.length)
        for (index, byte) in input.bytes(10).enumerated() { header[index] = byte }
        let offload = header.withUnsafeBytes { VirtioNetHeader(loading: $0.baseAddress!) }
        let gap = input.u8() & 1 == 0 ? 0 : 4
        let extra = Int(input.u16())
        var frame = Array(input.rest())
        if extra > 0 { frame += (0..<extra).map { UInt8(truncatingIfNeeded: $0 &* 31) } }
        let violation = frame.withUnsafeMutableBytes { bytes -> InvariantViolation? in
            do throws(InvariantViolation) {
                try check(UnsafeRawBufferPointer(bytes), offload, gap: gap)
            } catch {
                return error
            }
            _ = offload.shifted(by: 4)
            _ = offload.shifted(by: -4)
            if offload.needsChecksum {
                _ = VirtioNetHeader.completeChecksum(bytes, offload)
            }
            return nil
        }
        if let violation { throw violation }
    }

    /// What a port without offloads does with `frame` and its `offload` header, checked.
    static func check(_ frame: UnsafeRawBufferPointer, _ offload: VirtioNetHeader, gap: Int = 4) throws(InvariantViolation) {
        guard offload.isGSO, offload.gsoType & ~VirtioNetHeader.gsoECN != VirtioNetHeader.gsoUDP else { return }
        guard let headers = TCPSegmentation.headerLength(frame) else { return }
        try require(headers.l3 >= 14 && headers.l4 >= headers.l3 + 20 && headers.end >= headers.l4 + 20 && headers.end <= frame.count,
            "header offsets \(headers) for \(frame.count) bytes")
        let mss = Int(offload.gsoSize)
        let bound = TCPSegmentation.outputBound(frameLength: frame.count, headerLength: headers.end, mss: mss, gap: gap)
        guard bound <= scratchBytes else { return }  // PlainFrames counts these as offload-unsupported
        let fits = TCPSegmentation.segmentsFit(frameLength: frame.count, headers: headers, mss: mss)
        var output = [UInt8](repeating: 0xA5, count: bound + 8)
        var pieces: [(Int, Int)] = []
        let made = output.withUnsafeMutableBytes { out in
            TCPSegmentation.segment(frame, mss: mss, gap: gap, into: UnsafeMutableRawBufferPointer(rebasing: out[0..<bound])) {
                pieces.append(($0, $1))
            }
        }
        guard let made else {
            try require(pieces.isEmpty && isUntouched(output[...]), "a refused frame wrote output")
            try require(mss == 0 || !fits, "a frame that fits and has TCP headers was refused (mss \(mss))")
            return
        }
        try require(fits && mss > 0, "segmented a frame whose segments do not fit")
        try require(made == pieces.count && made > 0, "\(made) segments, \(pieces.count) emitted")
        try require(isUntouched(output[bound...]), "wrote past the bound")
        let payload = frame.count - headers.end
        var joined: [UInt8] = []
        joined.reserveCapacity(payload)
        let sequence = frame.u32(headers.l4 + 4)
        var previousEnd = 0
        for (index, (offset, length)) in pieces.enumerated() {
            try require(offset >= previousEnd + gap && offset + length <= bound, "segment \(index) at \(offset)+\(length) outside \(bound)")
            previousEnd = offset + length
            let violation = output.withUnsafeBytes { out -> InvariantViolation? in
                do throws(InvariantViolation) {
                    try checkSegment(UnsafeRawBufferPointer(rebasing: out[offset..<(offset + length)]), index, headers, sequence, &joined)
                    return nil
                } catch {
                    return error
                }
            }
            if let violation { throw violation }
        }
        let intact = joined.count == payload && (payload == 0 || joined.withUnsafeBytes { joined in
            memcmp(joined.baseAddress!, frame.baseAddress! + headers.end, payload) == 0
        })
        try require(intact, "payloads do not put back together")
    }

    static let untouched = [UInt8](repeating: 0xA5, count: scratchBytes + 8)

    /// Whether `bytes` still hold the fill pattern. memcmp, not a Swift loop: the coverage
    /// instrumentation of a per-byte comparison over 256 KiB made this target 5x slower.
    static func isUntouched(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.withUnsafeBytes { bytes in
            untouched.withUnsafeBytes { pattern in
                bytes.isEmpty || memcmp(bytes.baseAddress!, pattern.baseAddress!, bytes.count) == 0
            }
        }
    }

    static func checkSegment(
        _ segment: UnsafeRawBufferPointer, _ index: Int, _ headers: (l3: Int, l4: Int, end: Int, ipv4: Bool),
        _ sequence: UInt32, _ joined: inout [UInt8]
    ) throws(InvariantViolation) {
        let length = segment.count
        let parsed = FrameParser.parse(segment)
        try require(parsed.isValid, "segment \(index) does not parse: \(parsed.malformation!)")
        if headers.ipv4 {
            try require(Int(segment.u16(headers.l3 + 2)) == length - headers.l3, "segment \(index): IPv4 total length")
            try require(ChecksumVerifier.ipv4HeaderIsValid(segment, parsed) == true, "segment \(index): IPv4 header checksum")
        } else {
            try require(Int(segment.u16(headers.l3 + 4)) == length - headers.l4, "segment \(index): IPv6 payload length")
        }
        // The parser may see a fragment or extension headers the segmenter copied as they were;
        // where it sees the TCP header, its checksum must verify.
        if parsed.ipProtocol == IPProtocol.tcp, parsed.fragment == .none, Int(parsed.l4Offset) == headers.l4 {
            try require(ChecksumVerifier.l4IsValid(segment, parsed) == true, "segment \(index): TCP checksum")
        }
        try require(segment.u32(headers.l4 + 4) == sequence &+ UInt32(truncatingIfNeeded: joined.count), "segment \(index): sequence")
        joined += segment[headers.end...]
    }
}
