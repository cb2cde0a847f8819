import TapestryWire

/// Software GRO (`TCPCoalescing`), as a TAP port applies it to frames that came through a
/// tunnel: byte 0's bit 0 picks real segments (the rest is one frame, cut by the software
/// segmentation at the MSS of the next two bytes, then one byte of one segment changed at a
/// place the input names) or arbitrary frames (records of a 2-byte length and the bytes).
///
/// Invariants: a run takes 2 to 64 frames; its merged frame is at most 65,549 bytes, starts with
/// the first frame's headers, carries the frames' payloads in order and nothing else, has a valid
/// IPv4 header checksum, and once its partial checksum is completed a valid TCP checksum; its
/// virtio-net header describes it (TCPv4 GSO at the first payload's size, checksum from the TCP
/// header). Every frame a run took has valid checksums of its own.
enum CoalescingTarget {
    static func run(_ data: UnsafeRawBufferPointer) throws(InvariantViolation) {
        var input = ByteReader(data)
        let mode = input.u8()
        var frames: [[UInt8]] = []
        if mode & 1 == 1 {
            let mss = Int(input.u16() % 2048) + 1
            let flip = (segment: Int(input.u8()), offset: Int(input.u16()), value: input.u8())
            let frame = Array(input.rest())
            var output = [UInt8](repeating: 0, count: 1 << 18)
            frame.withUnsafeBytes { source in
                output.withUnsafeMutableBytes { out in
                    _ = TCPSegmentation.segment(source, mss: mss, gap: 0, into: out) { offset, length in
                        frames.append(Array(out[offset..<(offset + length)]))
                    }
                }
            }
            if !frames.isEmpty, flip.value != 0 {
                let victim = flip.segment % frames.count
                frames[victim][flip.offset % frames[victim].count] ^= flip.value
            }
        } else {
            while !input.isAtEnd && frames.count < 80 {
                frames.append(Array(input.bytes(Int(input.u16() % 4096))))
            }
        }
        // The frames back to back, as a transmit queue holds them in its slots.
        let all = frames.flatMap { $0 }
        var ranges: [Range<Int>] = []
        var start = 0
        for frame in frames {
            ranges.append(start..<(start + frame.count))
            start += frame.count
        }
        var output = [UInt8](repeating: 0, count: 65_535 + 14)
        var violation: InvariantViolation?
        all.withUnsafeBytes { bytes in
            output.withUnsafeMutableBytes { out in
                var index = 0
                while index < frames.count && violation == nil {
                    let base = index
                    let frame = { (i: Int) in UnsafeRawBufferPointer(rebasing: bytes[ranges[base + i]]) }
                    guard let (span, first) = TCPCoalescing.run(count: frames.count - base, frame: frame) else {
                        index += 1
                        continue
                    }
                    do throws(InvariantViolation) {
                        try require(span >= 2 && span <= TCPCoalescing.maxSegments && base + span <= frames.count, "a run of \(span)")
                        guard let (length, header) = TCPCoalescing.merge(count: span, frame: frame, first, into: out) else {
                            throw InvariantViolation("a run of \(span) did not merge")
                        }
                        try check(Array(out[0..<length]), header, Array(frames[base..<(base + span)]), first)
                    } catch {
                        violation = error
                    }
                    index += span
                }
            }
        }
        if let violation { throw violation }
    }

    static func check(_ merged: [UInt8], _ header: VirtioNetHeader, _ parts: [[UInt8]], _ first: TCPCoalescing.Segment)
        throws(InvariantViolation)
    {
        try require(merged.count <= 65_535 + 14, "merged \(merged.count) bytes")
        try require(Array(merged[0..<12]) == Array(parts[0][0..<12]), "MACs changed")
        try require(Array(merged[first.headerLength...]) == parts.flatMap { $0[first.headerLength...] }, "payloads not carried in order")
        try require(
            header.gsoType == VirtioNetHeader.gsoTCPv4 && Int(header.gsoSize) == first.payloadLength
                && Int(header.headerLength) == first.headerLength && header.checksumStart == 34 && header.checksumOffset == 16,
            "header \(header)")
        for part in parts {
            let valid = part.withUnsafeBytes { bytes -> Bool in
                let parsed = FrameParser.parse(bytes)
                return ChecksumVerifier.ipv4HeaderIsValid(bytes, parsed) == true && ChecksumVerifier.l4IsValid(bytes, parsed) == true
            }
            try require(valid, "a frame with a bad checksum was merged")
        }
        var completed = merged
        let done = completed.withUnsafeMutableBytes { VirtioNetHeader.completeChecksum($0, header) }
        try require(done, "the partial checksum could not be completed")
        let valid = completed.withUnsafeBytes { bytes -> Bool in
            let parsed = FrameParser.parse(bytes)
            return parsed.isValid && ChecksumVerifier.ipv4HeaderIsValid(bytes, parsed) == true
                && ChecksumVerifier.l4IsValid(bytes, parsed) == true
        }
        try require(valid, "the merged frame's checksums do not verify")
    }
}
