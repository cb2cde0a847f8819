import Testing
import TapestryTestSupport
import TapestryWire

/// Software GRO for TAP devices: a run of segments merged and cut again by the software
/// segmentation gives back exactly the segments; what may not be merged is not.
@Suite struct TCPCoalescingTests {
    /// A 20,000-byte TSO frame cut into 1,400-byte segments, as a tunnel delivers them.
    static func segments(flags: TCPFlags = .ack, mss: Int = 1400) -> [[UInt8]] {
        let frame = SegmentationTests.bigIPv4(payload: SegmentationTests.payload(20_000), flags: flags)
        return SegmentationTests.segments(of: frame, mss: mss, gap: 0)
    }

    /// How many of `frames` the first run takes, and the merged frame completed (its partial
    /// checksum filled in), with its virtio-net header.
    static func merge(_ frames: [[UInt8]]) -> (count: Int, frame: [UInt8], header: VirtioNetHeader)? {
        guard let first = frames[0].withUnsafeBytes({ TCPCoalescing.segment($0) }) else { return nil }
        var count = 1
        var sequence = first.nextSequence
        var previous = first.payloadLength
        while count < frames.count {
            let next = frames[count].withUnsafeBytes { TCPCoalescing.segment($0) }
            guard let next,
                frames[0].withUnsafeBytes({ head in
                    frames[count].withUnsafeBytes {
                        TCPCoalescing.continues(
                            head, first, $0, next, position: count, sequence: sequence, previousLength: previous)
                    }
                })
            else { break }
            sequence = next.nextSequence
            previous = next.payloadLength
            count += 1
            if next.flags & TCPFlags.psh.rawValue != 0 { break }
        }
        guard count >= 2 else { return nil }
        var output = [UInt8](repeating: 0, count: 70_000)
        let all = frames.prefix(count).flatMap { $0 }
        var ranges: [Range<Int>] = []
        var start = 0
        for frame in frames.prefix(count) {
            ranges.append(start..<(start + frame.count))
            start += frame.count
        }
        let result = output.withUnsafeMutableBytes { out in
            all.withUnsafeBytes { bytes in
                TCPCoalescing.merge(count: count, frame: { UnsafeRawBufferPointer(rebasing: bytes[ranges[$0]]) }, first, into: out)
            }
        }
        guard let (length, header) = result else { return nil }
        var merged = Array(output[0..<length])
        let completed = merged.withUnsafeMutableBytes { VirtioNetHeader.completeChecksum($0, header) }
        #expect(completed)
        return (count, merged, header)
    }

    @Test func mergedSegmentsCutAgainGiveTheSameSegments() throws {
        let segments = Self.segments()
        #expect(segments.count == 15)
        let merged = try #require(Self.merge(segments))
        #expect(merged.count == 15)
        #expect(merged.header.gsoType == VirtioNetHeader.gsoTCPv4 && merged.header.gsoSize == 1400)
        #expect(merged.header.headerLength == 54 && merged.header.checksumStart == 34 && merged.header.checksumOffset == 16)
        #expect(SegmentationTests.checksumsValid(merged.frame), "the completed merged frame's checksums verify")
        let again = SegmentationTests.segments(of: merged.frame, mss: Int(merged.header.gsoSize), gap: 0)
        #expect(again == segments, "cut again, the merged frame is the segments it came from")
    }

    @Test func aBadChecksumAGapOrAnotherFlowEndsTheRun() throws {
        var segments = Self.segments()
        // A flipped payload byte in segment 4: its checksum fails, the run stops before it.
        segments[4][100] ^= 0xFF
        #expect(try #require(Self.merge(segments)).count == 4)
        // A missing segment: the sequence jumps.
        var gap = Self.segments()
        gap.remove(at: 3)
        #expect(try #require(Self.merge(gap)).count == 3)
        // Another acknowledgement number (a different flow state) ends it too.
        let other = FrameBuilder.frame(
            dst: SegmentationTests.b, src: SegmentationTests.a,
            FrameBuilder.ipv4(src: IPv4Address("10.0.0.1")!, dst: IPv4Address("10.0.0.2")!, identification: 0xFFFE),
            FrameBuilder.tcp(sport: 40000, dport: 5201, flags: .ack, seq: 0xFFFF_F000, ack: 78),
            payload: SegmentationTests.payload(20_000), pad: false)
        let acked = Array(Self.segments().prefix(2)) + Array(SegmentationTests.segments(of: other, mss: 1400, gap: 0).dropFirst(2))
        #expect(try #require(Self.merge(acked)).count == 2)
        // PSH ends a run after its segment: 2,800 bytes with PSH (two segments), then more.
        func burst(_ length: Int, _ flags: TCPFlags, seq: UInt32) -> [[UInt8]] {
            let frame = FrameBuilder.frame(
                dst: SegmentationTests.b, src: SegmentationTests.a,
                FrameBuilder.ipv4(src: IPv4Address("10.0.0.1")!, dst: IPv4Address("10.0.0.2")!, identification: 0xFFFE),
                FrameBuilder.tcp(sport: 40000, dport: 5201, flags: flags, seq: seq, ack: 77),
                payload: SegmentationTests.payload(length), pad: false)
            return SegmentationTests.segments(of: frame, mss: 1400, gap: 0)
        }
        let pushed = burst(2800, [.ack, .psh], seq: 1000) + burst(2800, .ack, seq: 3800)
        #expect(pushed.count == 4)
        #expect(try #require(Self.merge(pushed)).count == 2, "the PSH segment is the run's last")
        #expect(try #require(Self.merge(Array(pushed[2...]))).count == 2, "the next run starts after it")
    }

    @Test func onlyPlainIPv4TCPWithACKIsTaken() {
        let frame = SegmentationTests.bigIPv4(payload: SegmentationTests.payload(3000), flags: .ack)
        let segments = SegmentationTests.segments(of: frame, mss: 1400, gap: 0)
        #expect(segments[0].withUnsafeBytes { TCPCoalescing.segment($0) } != nil)
        let tagged = SegmentationTests.segments(
            of: SegmentationTests.bigIPv4(payload: SegmentationTests.payload(3000), flags: .ack, tags: [.dot1q(5)]), mss: 1400, gap: 0)
        #expect(tagged[0].withUnsafeBytes { TCPCoalescing.segment($0) } == nil, "tagged frames are not merged")
        let syn = SegmentationTests.segments(
            of: SegmentationTests.bigIPv4(payload: SegmentationTests.payload(3000), flags: [.ack, .syn]), mss: 1400, gap: 0)
        #expect(syn[0].withUnsafeBytes { TCPCoalescing.segment($0) } == nil, "SYN, FIN, RST, URG are never merged")
        let padded = segments[0] + [0, 0, 0, 0]
        #expect(padded.withUnsafeBytes { TCPCoalescing.segment($0) } == nil, "Ethernet padding would land inside a merge")
        let ack = FrameBuilder.tcp4(
            dst: SegmentationTests.b, src: SegmentationTests.a, from: IPv4Address("10.0.0.1")!, to: IPv4Address("10.0.0.2")!,
            sport: 1, dport: 2, flags: .ack)
        #expect(ack.withUnsafeBytes { TCPCoalescing.segment($0) } == nil, "a pure ACK carries nothing to merge")
    }
}
