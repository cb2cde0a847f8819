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
        let pseudo = InternetChecksum.ipv4PseudoHeaderSum(source: from, destination: to, proto: IPProtocol.tcp, length: 20 + payload.count)
        let tcp = FrameBuilder.tcp(sport: 40000, dport: 5201, flags: flags, seq: 0xFFFF_F000, ack: 77, payload: payload, pseudo: pseudo)
        let ip = FrameBuilder.ipv4(src: from, dst: to, proto: IPProtocol.tcp, payload: tcp, identification: 0xFFFE)
        return FrameBuilder.ethernet(dst: b, src: a, tags: tags, type: EtherType.ipv4, payload: ip)
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
        let pseudo = InternetChecksum.ipv6PseudoHeaderSum(source: from, destination: to, proto: IPProtocol.tcp, length: 20 + data.count)
        let tcp = FrameBuilder.tcp(sport: 1, dport: 2, flags: [.ack], seq: 5, payload: data, pseudo: pseudo)
        let frame = FrameBuilder.ethernet(
            dst: Self.b, src: Self.a, tags: [.dot1q(20)], type: EtherType.ipv6,
            payload: FrameBuilder.ipv6(src: from, dst: to, nextHeader: IPProtocol.tcp, payload: tcp))
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
}
