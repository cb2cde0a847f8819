import Testing
import TapestryTestSupport
import TapestryWire

/// Software TCP segmentation: every segment parses, carries valid checksums, the right sequence
/// number and flags, and the payloads put back together are the original.
@Suite struct SegmentationTests {
    static let a = MACAddress("02:00:00:00:00:0a")!
    static let b = MACAddress("02:00:00:00:00:0b")!

    static func payload(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) } }

    /// A TSO frame as a TAP device hands it over: one TCP segment far larger than the MSS.
    static func bigIPv4(payload: [UInt8], flags: TCPFlags, tags: [FrameBuilder.Tag] = []) -> [UInt8] {
        let from = IPv4Address("10.0.0.1")!, to = IPv4Address("10.0.0.2")!
        return FrameBuilder.frame(
            dst: b, src: a, tags: tags, FrameBuilder.ipv4(src: from, dst: to, identification: 0xFFFE),
            FrameBuilder.tcp(sport: 40000, dport: 5201, flags: flags, seq: 0xFFFF_F000, ack: 77), payload: payload, pad: false)
    }

    static func segments(of frame: [UInt8], mss: Int, gap: Int = 4) -> [[UInt8]] {
        var output = [UInt8](repeating: 0xEE, count: 200_000)
        var result: [[UInt8]] = []
        let count = frame.withUnsafeBytes { source in
            output.withUnsafeMutableBytes { out in
                TCPSegmentation.segment(source, mss: mss, gap: gap, into: out) { offset, length in
                    result.append(Array(out[offset..<(offset + length)]))
                }
            }
        }
        #expect((count ?? 0) == result.count)
        return result
    }

    static func checksumsValid(_ frame: [UInt8]) -> Bool {
        frame.withUnsafeBytes { bytes in
            let parsed = FrameParser.parse(bytes)
            let l3 = parsed.layer3 == .ipv4 ? ChecksumVerifier.ipv4HeaderIsValid(bytes, parsed) ?? false : true
            return l3 && ChecksumVerifier.l4IsValid(bytes, parsed) ?? false
        }
    }

    @Test func ipv4SegmentsCarryTheirOwnHeaders() {
        let data = Self.payload(5000)
        let frame = Self.bigIPv4(payload: data, flags: [.ack, .psh, .fin, .cwr])
        let parts = Self.segments(of: frame, mss: 1448)
        #expect(parts.map(\.count) == [1502, 1502, 1502, 54 + 656])
        var joined: [UInt8] = []
        for (index, part) in parts.enumerated() {
            #expect(Self.checksumsValid(part), "segment \(index) checksum")
            part.withUnsafeBytes { bytes in
                #expect(Int(bytes.u16(16)) == part.count - 14)  // IPv4 total length
                #expect(bytes.u16(18) == 0xFFFE &+ UInt16(index))  // identification, wrapping
                #expect(bytes.u32(38) == 0xFFFF_F000 &+ UInt32(index * 1448))  // sequence, wrapping
                let flags = TCPFlags(rawValue: bytes[47])
                #expect(flags.contains(.ack))
                #expect(flags.contains(.fin) == (index == 3))
                #expect(flags.contains(.psh) == (index == 3))
                #expect(flags.contains(.cwr) == (index == 0))
            }
            joined += part[54...]
        }
        #expect(joined == data)
    }

    @Test func ipv6BehindAVLANTag() {
        let data = Self.payload(3000)
        let from = IPv6Address("fd00::1")!, to = IPv6Address("fd00::2")!
        let frame = FrameBuilder.frame(
            dst: Self.b, src: Self.a, tags: [.dot1q(20)], FrameBuilder.ipv6(src: from, dst: to),
            FrameBuilder.tcp(sport: 1, dport: 2, flags: [.ack], seq: 5), payload: data, pad: false)
        let parts = Self.segments(of: frame, mss: 1000)
        #expect(parts.count == 3)
        var joined: [UInt8] = []
        for (index, part) in parts.enumerated() {
            #expect(Self.checksumsValid(part))
            part.withUnsafeBytes { bytes in
                #expect(bytes.u16(12) == EtherType.vlan)
                #expect(Int(bytes.u16(22)) == part.count - 18 - 40)  // IPv6 payload length
                #expect(bytes.u32(18 + 40 + 4) == 5 + UInt32(index * 1000))
            }
            joined += part[(18 + 60)...]
        }
        #expect(joined == data)
    }

    @Test func refusesWhatItCannotCut() {
        let udp = FrameBuilder.udp4(dst: Self.b, src: Self.a, from: IPv4Address("10.0.0.1")!, to: IPv4Address("10.0.0.2")!)
        #expect(Self.segments(of: udp, mss: 1000).isEmpty)
        let frame = Self.bigIPv4(payload: Self.payload(3000), flags: [.ack])
        #expect(Self.segments(of: frame, mss: 0).isEmpty)
        // Output too small: nothing is written.
        var small = [UInt8](repeating: 0, count: 1000)
        let count = frame.withUnsafeBytes { source in
            small.withUnsafeMutableBytes { TCPSegmentation.segment(source, mss: 1448, gap: 4, into: $0) { _, _ in } }
        }
        #expect(count == nil)
        #expect(small.allSatisfy { $0 == 0 })
        // A frame no larger than the MSS comes out as one segment, unchanged but for its checksums.
        let one = Self.segments(of: frame, mss: 4000)
        #expect(one.count == 1 && one[0] == frame)
    }

    /// A TSO frame of 65,552 bytes (14 + 20 + 20 + 65,498 payload) as a guest can hand one over:
    /// with a gso_size of 65,535 its single segment would need an IPv4 total length of 65,538.
    /// This trapped at `UInt16(end - l3 + length)`; it must be refused (the port counts it as
    /// `oversize`), and with a sane MSS the same frame is cut normally.
    static func oversizeTSO(ipv6: Bool) -> [UInt8] {
        let total = 65_552
        var frame = [UInt8](repeating: 0x5A, count: total)
        let l3 = 14
        let l4 = l3 + (ipv6 ? 40 : 20)
        for index in 0..<(l4 + 20) { frame[index] = 0 }  // headers: no IP flags, no fragment offset
        frame[0] = 0x02
        frame[6] = 0x02
        frame[12] = ipv6 ? 0x86 : 0x08
        frame[13] = ipv6 ? 0xDD : 0x00
        if ipv6 {
            frame[l3] = 0x60
            frame[l3 + 4] = 0xFF  // payload length: a TAP frame's is not trusted
            frame[l3 + 5] = 0xFF
            frame[l3 + 6] = IPProtocol.tcp
        } else {
            frame[l3] = 0x45
            frame[l3 + 2] = 0xFF
            frame[l3 + 3] = 0xFF
            frame[l3 + 8] = 64
            frame[l3 + 9] = IPProtocol.tcp
        }
        frame[l4 + 12] = 0x50  // data offset 5: a 20-byte TCP header
        frame[l4 + 13] = TCPFlags.ack.rawValue
        return frame
    }

    @Test(arguments: [false, true]) func aSegmentLongerThanIPCanSayIsRefused(ipv6: Bool) {
        let frame = Self.oversizeTSO(ipv6: ipv6)
        let headers = frame.withUnsafeBytes { TCPSegmentation.headerLength($0) }
        #expect(headers != nil)
        guard let headers else { return }
        // IPv6's payload length excludes its 40-byte header (65,498 here, which fits), so only
        // the IPv4 frame overflows.
        #expect(TCPSegmentation.segmentsFit(frameLength: frame.count, headers: headers, mss: 65_535) == ipv6)
        var output = [UInt8](repeating: 0, count: 300_000)
        if !ipv6 {
            let count = frame.withUnsafeBytes { source in
                output.withUnsafeMutableBytes { TCPSegmentation.segment(source, mss: 65_535, gap: 4, into: $0) { _, _ in } }
            }
            #expect(count == nil)
            #expect(output.allSatisfy { $0 == 0 })
        }
        let parts = Self.segments(of: frame, mss: 1448)
        #expect(parts.count == (65_552 - headers.end + 1447) / 1448)
        #expect(parts.allSatisfy { Self.checksumsValid($0) })
    }

    @Test func anIPv6SegmentOverTheLimitIsRefused() {
        // 14 + 40 + 20 + 65,478: one segment's IPv6 payload length (TCP header and data) is
        // 65,498, which fits; 40 bytes more make it 65,538, which does not.
        var frame = Self.oversizeTSO(ipv6: true)
        frame += [UInt8](repeating: 0, count: 40)
        let headers = frame.withUnsafeBytes { TCPSegmentation.headerLength($0) }!
        #expect(!TCPSegmentation.segmentsFit(frameLength: frame.count, headers: headers, mss: 65_535))
        #expect(Self.segments(of: frame, mss: 65_535).isEmpty)
    }

    @Test func anIPv4HeaderLengthBelowFiveIsNotCut() {
        var frame = Self.bigIPv4(payload: Self.payload(3000), flags: [.ack])
        frame[14] = 0x44  // IHL 4: the TCP header would start inside the IP header
        #expect(frame.withUnsafeBytes { TCPSegmentation.headerLength($0) } == nil)
    }
}
