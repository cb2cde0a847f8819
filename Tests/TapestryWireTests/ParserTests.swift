import Testing
import TapestryTestSupport
import TapestryWire

let macA = MACAddress("02:00:00:00:00:0a")!
let macB = MACAddress("02:00:00:00:00:0b")!
let ipA = IPv4Address("10.0.0.1")!
let ipB = IPv4Address("10.0.0.2")!
let ip6A = IPv6Address("2001:db8::a")!
let ip6B = IPv6Address("2001:db8::b")!

func parse(_ frame: [UInt8]) -> ParsedFrame { frame.withUnsafeBytes { FrameParser.parse($0) } }

@Suite struct ParserTests {
    @Test func untaggedUDP() {
        let parsed = parse(FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: ipB))
        #expect(parsed.isValid)
        #expect(parsed.tagCount == 0 && parsed.etherType == EtherType.ipv4)
        #expect(parsed.layer3 == .ipv4 && parsed.l3Offset == 14 && parsed.l4Offset == 34)
        #expect(parsed.ipProtocol == IPProtocol.udp && parsed.fragment == .none)
    }

    @Test func singleAndDoubleTags() {
        let one = parse(FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: ipB, tags: [.dot1q(10, pcp: 5, dei: true)]))
        #expect(one.tagCount == 1 && one.outerTPID == EtherType.vlan)
        #expect(one.outerTCI == (5 << 13 | 0x1000 | 10))
        #expect(one.l3Offset == 18 && one.l4Offset == 38)
        let two = parse(FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: ipB, tags: [.dot1ad(100), .dot1q(10)]))
        #expect(two.tagCount == 2 && two.outerTPID == EtherType.qinq && two.innerTPID == EtherType.vlan)
        #expect(two.outerTCI & 0x0FFF == 100 && two.l3Offset == 22)
        let three = parse(FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: ipB, tags: [.dot1q(1), .dot1q(2), .dot1q(3)]))
        #expect(three.isValid && three.tagCount == 2 && three.layer3 == .none, "a third tag leaves the frame opaque")
    }

    @Test func arpAndTCPAndICMP() {
        let arp = parse(FrameBuilder.arpRequest(src: macA, senderIP: ipA, targetIP: ipB))
        #expect(arp.layer3 == .arp && arp.l3Offset == 14 && !arp.hasL4)
        let tcp = parse(FrameBuilder.tcp4(dst: macB, src: macA, from: ipA, to: ipB))
        #expect(tcp.ipProtocol == IPProtocol.tcp && tcp.l4Offset == 34)
        let ping = parse(FrameBuilder.ping4(dst: macB, src: macA, from: ipA, to: ipB))
        #expect(ping.ipProtocol == IPProtocol.icmp && ping.l4Offset == 34)
        let other = parse(FrameBuilder.ethernet(dst: macB, src: macA, type: 0x88CC, payload: [1, 2, 3]))
        #expect(other.isValid && other.layer3 == .none)
    }

    @Test func ipv4OptionsMoveTheL4Header() {
        let parsed = parse(FrameBuilder.frame(
            dst: macB, src: macA, FrameBuilder.ipv4(src: ipA, dst: ipB, options: [1, 1, 1, 0, 7, 4, 0, 0]),
            FrameBuilder.udp(sport: 1, dport: 2), payload: [9]))
        #expect(parsed.isValid && parsed.l4Offset == 14 + 28)
    }

    @Test func ipv4Fragments() {
        let parsedFirst = parse(FrameBuilder.frame(
            dst: macB, src: macA, FrameBuilder.ipv4(src: ipA, dst: ipB, dontFragment: false, moreFragments: true),
            FrameBuilder.udp(sport: 1, dport: 2), payload: Array(repeating: 7, count: 16), pad: false))
        let parsedLater = parse(FrameBuilder.frame(
            dst: macB, src: macA, FrameBuilder.ipv4(src: ipA, dst: ipB, dontFragment: false, fragmentOffset: 24, proto: IPProtocol.udp),
            payload: [1, 2, 3, 4], pad: false))
        #expect(parsedFirst.fragment == .first && parsedFirst.hasL4)
        #expect(parsedLater.isValid && parsedLater.fragment == .later && !parsedLater.hasL4)
        #expect(parsedLater.ipProtocol == IPProtocol.udp)
    }

    @Test func ipv6WalksExtensionHeaders() {
        let hopByHop: (UInt8, [UInt8]) = (0, [0, 0, 1, 4, 0, 0, 0, 0])  // PadN option, 8 bytes
        let destination: (UInt8, [UInt8]) = (60, [0, 1] + [UInt8](repeating: 0, count: 14))  // 16 bytes
        let frame = FrameBuilder.udp6(dst: macB, src: macA, from: ip6A, to: ip6B, extensionHeaders: [hopByHop, destination])
        let parsed = parse(frame)
        #expect(parsed.isValid && parsed.layer3 == .ipv6)
        #expect(parsed.ipProtocol == IPProtocol.udp && parsed.l4Offset == 14 + 40 + 8 + 16)
        let ping = parse(FrameBuilder.ping6(dst: macB, src: macA, from: ip6A, to: ip6B))
        #expect(ping.ipProtocol == IPProtocol.icmpv6 && ping.l4Offset == 54)
    }

    @Test func ipv6Fragments() {
        let firstHeader: (UInt8, [UInt8]) = (44, [0, 0, 0x00, 0x01, 0, 0, 0, 42])  // offset 0, M=1
        let first = parse(FrameBuilder.udp6(dst: macB, src: macA, from: ip6A, to: ip6B, extensionHeaders: [firstHeader]))
        #expect(first.fragment == .first && first.hasL4 && first.l4Offset == 14 + 48)
        let laterHeader: (UInt8, [UInt8]) = (44, [0, 0, 0x00, 0x08, 0, 0, 0, 42])  // offset 1
        let later = parse(FrameBuilder.udp6(dst: macB, src: macA, from: ip6A, to: ip6B, extensionHeaders: [laterHeader]))
        #expect(later.isValid && later.fragment == .later && !later.hasL4 && later.ipProtocol == IPProtocol.udp)
    }
}

@Suite struct MalformedFrameTests {
    static func mutate(_ frame: [UInt8], _ change: (inout [UInt8]) -> Void) -> [UInt8] {
        var copy = frame
        change(&copy)
        return copy
    }

    static let udp = FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: ipB, payload: Array(repeating: 1, count: 40))
    static let tcp = FrameBuilder.tcp4(dst: macB, src: macA, from: ipA, to: ipB, payload: Array(repeating: 2, count: 30))

    @Test(arguments: [
        ("runt", Array(udp.prefix(13)), Malformation.runt),
        ("tag cut after TPID", Array(udp.prefix(12)) + [0x81, 0x00, 0x00], .truncatedTag),
        ("tag without EtherType", Array(udp.prefix(12)) + [0x81, 0x00, 0x00, 0x0a], .truncatedTag),
        ("ARP cut short", Array(FrameBuilder.arpRequest(src: macA, senderIP: ipA, targetIP: ipB).prefix(30)), .truncatedARP),
        ("IHL 3", mutate(udp) { $0[14] = 0x43 }, .badIPv4Header),
        ("version 6 in IPv4", mutate(udp) { $0[14] = 0x65 }, .badIPv4Header),
        ("total length past frame", mutate(udp) { $0[16] = 0x05; $0[17] = 0xDC }, .badIPv4Header),
        ("total length below header", mutate(udp) { $0[16] = 0; $0[17] = 10 }, .badIPv4Header),
        ("IPv4 header cut", Array(udp.prefix(14 + 19)), .badIPv4Header),
        ("UDP length 4", mutate(udp) { $0[38] = 0; $0[39] = 4 }, .badUDPHeader),
        ("UDP length past datagram", mutate(udp) { $0[38] = 0x04; $0[39] = 0 }, .badUDPHeader),
        ("TCP data offset 4", mutate(tcp) { $0[46] = 0x40 }, .badTCPHeader),
        ("TCP data offset past segment", mutate(tcp) { $0[46] = 0xF0 }, .badTCPHeader),
    ])
    func malformedIsReported(name: String, frame: [UInt8], expected: Malformation) {
        #expect(parse(frame).malformation == expected, "\(name)")
    }

    @Test func ipv6Malformations() {
        let frame = FrameBuilder.udp6(dst: macB, src: macA, from: ip6A, to: ip6B)
        #expect(parse(Self.mutate(frame) { $0[18] = 0x05 }).malformation == .badIPv6Header, "payload length past frame")
        #expect(parse(Array(frame.prefix(14 + 39))).malformation == .badIPv6Header)
        let hopByHop: (UInt8, [UInt8]) = (0, [0, 0, 1, 4, 0, 0, 0, 0])
        let withHeader = FrameBuilder.udp6(dst: macB, src: macA, from: ip6A, to: ip6B, payload: [], extensionHeaders: [hopByHop])
        // Claim the hop-by-hop header is 4 * 8 bytes long: it then runs past the payload.
        #expect(parse(Self.mutate(withHeader) { $0[55] = 3 }).malformation == .truncatedIPv6ExtensionHeader)
        let ping = FrameBuilder.ping6(dst: macB, src: macA, from: ip6A, to: ip6B)
        // Payload length 4: ICMPv6 header cut to 4 bytes.
        let short = Array(ping.prefix(14 + 40 + 4))
        #expect(parse(Self.mutate(short) { $0[18] = 0; $0[19] = 4 }).malformation == .truncatedICMP)
    }

    /// Every prefix of every kind of frame parses without trapping, and any prefix cut inside the
    /// headers is reported malformed (never silently valid with a wrong offset).
    @Test func everyPrefixIsSafe() {
        let frames = [
            Self.udp, Self.tcp, FrameBuilder.ping4(dst: macB, src: macA, from: ipA, to: ipB),
            FrameBuilder.udp4(dst: macB, src: macA, from: ipA, to: ipB, tags: [.dot1ad(5), .dot1q(6)]),
            FrameBuilder.udp6(dst: macB, src: macA, from: ip6A, to: ip6B, extensionHeaders: [(0, [0, 0, 1, 4, 0, 0, 0, 0])]),
            FrameBuilder.ping6(dst: macB, src: macA, from: ip6A, to: ip6B),
            FrameBuilder.arpRequest(src: macA, senderIP: ipA, targetIP: ipB),
        ]
        for frame in frames {
            let full = parse(frame)
            #expect(full.isValid)
            let headersEnd = full.hasL4 ? Int(full.l4Offset) + 8 : Int(full.l3Offset) + 8
            for length in 0..<frame.count {
                let parsed = parse(Array(frame.prefix(length)))
                if length < headersEnd { #expect(!parsed.isValid, "prefix \(length) of a \(frame.count)-byte frame") }
            }
        }
    }

    /// Random bytes never trap, and offsets of anything called valid stay inside the frame.
    @Test func randomBytesNeverTrap() {
        var generator = SplitMix64(seed: 0x7A9E_5775)
        for _ in 0..<20_000 {
            let length = Int(generator.next() % 120)
            var frame = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            if length > 14, generator.next() % 2 == 0 { frame[12] = 0x08; frame[13] = 0x00; frame[14] = 0x45 }
            if length > 14, generator.next() % 4 == 0 { frame[12] = 0x86; frame[13] = 0xDD; frame[14] = 0x60 }
            let parsed = parse(frame)
            if parsed.l3Offset != ParsedFrame.absent { #expect(Int(parsed.l3Offset) <= frame.count) }
            if parsed.hasL4 { #expect(Int(parsed.l4Offset) + 8 <= frame.count) }
            _ = FrameFields(frame)
        }
    }
}
