import Testing
import TapestryTestSupport
import TapestryWire

@Suite struct ChecksumTests {
    @Test func rfc1071Example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to 0xddf2 (before complement).
        let bytes: [UInt8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]
        #expect(bytes.withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0)) } == ~UInt16(0xddf2))
        // An odd length pads with a zero byte.
        #expect([UInt8]([0xAB]).withUnsafeBytes { InternetChecksum.sum($0) } == 0xAB00)
    }

    /// RFC 1624's incremental update agrees with recomputing the sum, for random headers and edits.
    @Test func incrementalUpdateMatchesFullRecompute() {
        var generator = SplitMix64(seed: 1624)
        for _ in 0..<5_000 {
            var words = (0..<10).map { _ in UInt16(truncatingIfNeeded: generator.next()) }
            words[5] = 0
            let sum = words.reduce(UInt64(0)) { $0 + UInt64($1) }
            words[5] = InternetChecksum.fold(sum)
            let index = Int(generator.next() % 10)
            guard index != 5 else { continue }
            let old = words[index]
            let new = UInt16(truncatingIfNeeded: generator.next())
            words[index] = new
            words[5] = InternetChecksum.update(words[5], old: old, new: new)
            let check = words.reduce(UInt64(0)) { $0 + UInt64($1) }
            #expect(InternetChecksum.fold(check) == 0)
        }
    }
}

@Suite struct RewriteTests {
    func withFrame(_ frame: [UInt8], _ body: (UnsafeMutableRawBufferPointer, ParsedFrame) -> Void) -> [UInt8] {
        var copy = frame
        copy.withUnsafeMutableBytes { bytes in
            body(bytes, FrameParser.parse(UnsafeRawBufferPointer(bytes)))
        }
        return copy
    }

    func checksumsValid(_ frame: [UInt8]) -> Bool {
        frame.withUnsafeBytes { bytes in
            let parsed = FrameParser.parse(bytes)
            let l3 = parsed.layer3 == .ipv4 ? ChecksumVerifier.ipv4HeaderIsValid(bytes, parsed) ?? false : true
            return l3 && ChecksumVerifier.l4IsValid(bytes, parsed) ?? false
        }
    }

    static let newIP = IPv4Address("10.0.10.12")!

    @Test(arguments: ["udp", "tcp", "icmp"])
    func ipv4AddressRewriteKeepsChecksums(kind: String) {
        let frame: [UInt8]
        switch kind {
        case "udp": frame = FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: ipB)
        case "tcp": frame = FrameBuilder.tcp4(dst: macB, src: macA, from: ipA, to: ipB, flags: [.syn, .ack], payload: [1, 2, 3])
        default: frame = FrameBuilder.ping4(dst: macB, src: macA, from: ipA, to: ipB)
        }
        #expect(checksumsValid(frame))
        let rewritten = withFrame(frame) { bytes, parsed in
            #expect(FrameRewriter.setIPv4Address(bytes, parsed, .destination, Self.newIP))
            #expect(FrameRewriter.setIPv4Address(bytes, parsed, .source, IPv4Address("10.0.10.100")!))
        }
        #expect(checksumsValid(rewritten))
        let fields = FrameFields(rewritten).fields
        #expect(fields.contains(.init(name: "ipv4.dst", value: "10.0.10.12")))
        #expect(fields.contains(.init(name: "ipv4.src", value: "10.0.10.100")))
    }

    @Test func portRewriteKeepsChecksums() {
        for frame in [
            FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: ipB),
            FrameBuilder.tcp4(dst: macB, src: macA, from: ipA, to: ipB),
        ] {
            let rewritten = withFrame(frame) { bytes, parsed in
                #expect(FrameRewriter.setPort(bytes, parsed, .destination, 8080))
                #expect(FrameRewriter.setPort(bytes, parsed, .source, 1))
            }
            #expect(checksumsValid(rewritten))
            rewritten.withUnsafeBytes { bytes in
                let l4 = Int(FrameParser.parse(bytes).l4Offset)
                #expect(bytes.u16(l4) == 1 && bytes.u16(l4 + 2) == 8080)
            }
        }
        let ping = FrameBuilder.ping4(dst: macB, src: macA, from: ipA, to: ipB)
        _ = withFrame(ping) { bytes, parsed in #expect(!FrameRewriter.setPort(bytes, parsed, .source, 1), "ICMP has no ports") }
    }

    @Test func udpWithoutChecksumStaysWithout() {
        var frame = FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: ipB)
        frame[40] = 0
        frame[41] = 0
        let rewritten = withFrame(frame) { bytes, parsed in
            _ = FrameRewriter.setIPv4Address(bytes, parsed, .destination, Self.newIP)
            _ = FrameRewriter.setPort(bytes, parsed, .destination, 9)
        }
        #expect(rewritten[40] == 0 && rewritten[41] == 0)
        #expect(rewritten.withUnsafeBytes { ChecksumVerifier.ipv4HeaderIsValid($0, FrameParser.parse($0)) } == true)
    }

    @Test func ipv6AddressRewriteKeepsChecksums() {
        for frame in [
            FrameBuilder.udp6(dst: macB, src: macA, from: ip6A, to: ip6B),
            FrameBuilder.ping6(dst: macB, src: macA, from: ip6A, to: ip6B),
        ] {
            #expect(checksumsValid(frame))
            let rewritten = withFrame(frame) { bytes, parsed in
                #expect(FrameRewriter.setIPv6Address(bytes, parsed, .destination, IPv6Address("2001:db8:ffff::12")!))
            }
            #expect(checksumsValid(rewritten))
            #expect(FrameFields(rewritten).fields.contains(.init(name: "ipv6.dst", value: "2001:db8:ffff::12")))
        }
    }

    @Test func macRewrite() {
        let frame = FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: ipB)
        let rewritten = withFrame(frame) { bytes, _ in
            #expect(FrameRewriter.setDestinationMAC(bytes, MACAddress("02:00:00:00:01:00")!))
            #expect(FrameRewriter.setSourceMAC(bytes, MACAddress("02:00:00:00:02:00")!))
        }
        #expect(Array(rewritten.prefix(12)) == MACAddress("02:00:00:00:01:00")!.bytes + MACAddress("02:00:00:00:02:00")!.bytes)
        #expect(rewritten.dropFirst(12) == frame.dropFirst(12))
        var runt: [UInt8] = [1, 2, 3]
        runt.withUnsafeMutableBytes { #expect(!FrameRewriter.setSourceMAC($0, macA)) }
    }

    @Test func pushAndPopTagRoundTrip() {
        // Long enough that neither frame is padded to the 60-byte minimum.
        let payload = [UInt8](repeating: 0x55, count: 40)
        let frame = FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: ipB, payload: payload)
        let tagged = FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: ipB, payload: payload, tags: [.dot1q(20, pcp: 3)])
        var region = [UInt8](repeating: 0xEE, count: 8) + frame
        region.withUnsafeMutableBytes { bytes in
            let start = FrameRewriter.pushTag(bytes, start: 8, length: frame.count, tpid: EtherType.vlan, tci: 3 << 13 | 20)
            #expect(start == 4)
            #expect(Array(bytes[4..<(4 + frame.count + 4)]) == tagged)
            let popped = FrameRewriter.popTag(bytes, start: 4, length: frame.count + 4)
            #expect(popped == 8)
            #expect(Array(bytes[8...]) == frame)
            #expect(FrameRewriter.popTag(bytes, start: 8, length: frame.count) == nil, "untagged frame")
            #expect(FrameRewriter.pushTag(bytes, start: 2, length: frame.count, tpid: EtherType.vlan, tci: 1) == nil)
        }
    }
}

@Suite struct FrameFieldsTests {
    @Test func firstDifferenceNamesTheField() {
        let a = FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: ipB)
        let b = FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: IPv4Address("10.0.0.3")!)
        #expect(FrameFields.firstDifference(expected: a, actual: a) == nil)
        #expect(FrameFields.firstDifference(expected: a, actual: b) == "field ipv4.dst: expected 10.0.0.2, got 10.0.0.3")
        let tagged = FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: ipB, tags: [.dot1q(10)])
        #expect(FrameFields.firstDifference(expected: tagged, actual: a)?.hasPrefix("field vlan.tpid") == true)
        let long = FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: ipB, payload: [UInt8](repeating: 1, count: 40))
        var corrupted = long
        corrupted[corrupted.count - 1] ^= 0xFF
        #expect(
            FrameFields.firstDifference(expected: long, actual: corrupted)
                == "field udp.checksum: expected \(FrameFields(long).fields.first { $0.name == "udp.checksum" }!.value), got \(FrameFields(corrupted).fields.first { $0.name == "udp.checksum" }!.value)")
        #expect(FrameFields(corrupted).fields.contains { $0.name == "udp.checksum" && $0.value.hasSuffix("(bad)") })
        var padding = a
        padding[padding.count - 1] ^= 0xFF
        #expect(FrameFields.firstDifference(expected: a, actual: padding) == "payload byte 59: expected 0x0, got 0xff")
    }
}
