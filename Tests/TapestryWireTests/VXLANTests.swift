import Testing
import TapestryWire

/// The VXLAN header and its underlay, checked against packets scapy built (scapy 2.5,
/// `IP(flags="DF", id=0, ttl=64)/UDP(sport=52000, dport=4789, chksum=0)/VXLAN(vni=5010)/inner`).
@Suite struct VXLANTests {
    static func bytes(_ hex: String) -> [UInt8] {
        var result: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            result.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return result
    }

    /// The outer headers scapy wrote for the inner frame below (IPv4 10.0.99.1 -> 10.0.99.2).
    static let scapyHeaders = bytes("4500005c000040004011608e0a0063010a006302cb2012b5004800000800000000139200")
    /// Ethernet 02:..:01 -> 02:..:02, IPv4 10.0.10.1 -> 10.0.10.2, UDP 40000 -> 5000, "hello tapestry".
    static let inner = bytes(
        "02000000000202000000000108004500002a00014000401112c00a000a010a000a029c4013880016195068656c6c6f207461706573747279")

    @Test func writesWhatScapyWrites() {
        var packet = [UInt8](repeating: 0xEE, count: VXLAN.underlayHeaderLength) + Self.inner
        let total = packet.withUnsafeMutableBytes { buffer in
            VXLAN.writeUnderlay(
                at: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<VXLAN.underlayHeaderLength]),
                innerLength: Self.inner.count, vni: 5010, source: IPv4Address("10.0.99.1")!,
                destination: IPv4Address("10.0.99.2")!, sourcePort: 52000, destinationPort: 4789)
        }
        #expect(total == 92)
        #expect(Array(packet[0..<36]) == Self.scapyHeaders)
    }

    @Test func readsWhatScapyWrites() throws {
        let packet = Self.scapyHeaders + Self.inner
        let underlay = try packet.withUnsafeBytes { try VXLAN.decodeUnderlay($0, port: 4789).get() }
        #expect(underlay.source == IPv4Address("10.0.99.1")! && underlay.destination == IPv4Address("10.0.99.2")!)
        #expect(underlay.sourcePort == 52000 && underlay.destinationPort == 4789)
        #expect(underlay.payload == 28..<92)
        let vni = try packet.withUnsafeBytes { try VXLAN.decode(UnsafeRawBufferPointer(rebasing: $0[underlay.payload])).get() }
        #expect(vni == 5010)
        #expect(Array(packet[(underlay.payload.lowerBound + VXLAN.headerLength)...]) == Self.inner)
    }

    @Test func refusesWhatLinuxRefuses() {
        func problem(_ header: [UInt8], inner: Int = 14) -> VXLAN.Problem? {
            let payload = header + [UInt8](repeating: 0, count: inner)
            return payload.withUnsafeBytes { buffer -> VXLAN.Problem? in
                if case .failure(let problem) = VXLAN.decode(buffer) { return problem }
                return nil
            }
        }
        #expect(problem([0x08, 0, 0, 0, 0x00, 0x13, 0x92, 0]) == nil)
        #expect(problem([0x08, 0, 0, 0, 0x00, 0x13, 0x92, 0], inner: 13) == .short(21), "no room for an inner Ethernet header")
        #expect(problem([0x00, 0, 0, 0, 0x00, 0x13, 0x92, 0]) == .noVNIFlag)
        #expect(problem(Self.bytes("8800000000139200")) == .reservedBits, "scapy's GBP flag (G) with I")
        #expect(problem([0x0C, 0, 0, 0, 0x00, 0x13, 0x92, 0]) == .reservedBits, "GPE's P flag")
        #expect(problem([0x08, 0, 0, 1, 0x00, 0x13, 0x92, 0]) == .reservedBits, "reserved byte 3")
        #expect(problem([0x08, 0, 0, 0, 0x00, 0x13, 0x92, 1]) == .reservedBits, "reserved byte 7")
    }

    @Test func refusesUnderlaysThatAreNotVXLAN() {
        func problem(_ edit: (inout [UInt8]) -> Void) -> VXLAN.Problem? {
            var packet = Self.scapyHeaders + Self.inner
            edit(&packet)
            return packet.withUnsafeBytes { buffer -> VXLAN.Problem? in
                if case .failure(let problem) = VXLAN.decodeUnderlay(buffer, port: 4789) { return problem }
                return nil
            }
        }
        #expect(problem { _ in } == nil)
        #expect(problem { $0 = Array($0[0..<19]) } == .notIPv4)
        #expect(problem { $0[3] = 200 } == .notIPv4, "total length past the end")
        #expect(problem { $0[6] = 0x20 } == .fragment, "more fragments")
        #expect(problem { $0[7] = 1 } == .fragment, "an offset")
        #expect(problem { $0[9] = 6 } == .notUDP)
        #expect(problem { $0[24] = 0x10 } == .notUDP, "UDP length past the IP packet")
        #expect(problem { $0[24] = 0; $0[25] = 7 } == .notUDP, "UDP length below its header")
        #expect(problem { $0[22] = 0x12; $0[23] = 0xB6 } == .port(4790))
        #expect(problem { $0[10] ^= 0x01 } == .badChecksum, "IPv4 header checksum")
        #expect(problem { $0[26] = 0x12; $0[27] = 0x34 } == .badChecksum, "a UDP checksum that is not 0 is checked")
        // A correct nonzero UDP checksum (as an underlay with udpcsum on sends) is taken.
        #expect(problem { packet in
            let length = packet.count - 20
            let pseudo = InternetChecksum.ipv4PseudoHeaderSum(
                source: IPv4Address(10, 0, 99, 1), destination: IPv4Address(10, 0, 99, 2), proto: 17, length: length)
            let sum = packet.withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: $0[20...]), initial: pseudo)) }
            packet[26] = UInt8(sum >> 8)
            packet[27] = UInt8(sum & 0xFF)
        } == nil)
    }

    @Test func sourcePortsStayInTheDynamicRange() {
        #expect(VXLAN.sourcePort(flowHash: 0) == 49152)
        #expect(VXLAN.sourcePort(flowHash: .max) == 65535)
        var seen = Set<UInt16>()
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<10_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let port = VXLAN.sourcePort(flowHash: state)
            #expect(port >= 49152)
            seen.insert(port)
        }
        #expect(seen.count > 7_000, "flows spread over the range")
    }
}
