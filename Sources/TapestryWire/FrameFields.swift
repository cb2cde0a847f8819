/// A frame decoded into named fields, outermost first (`eth.dst`, `vlan.vid`, `ipv4.src`,
/// `tcp.dport`, ...), for readable diffs and traces. Allocates; not for the datapath.
public struct FrameFields: Equatable, Sendable {
    public struct Field: Equatable, Sendable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public var fields: [Field] = []

    public init(_ bytes: [UInt8]) {
        self = bytes.withUnsafeBytes { FrameFields($0) }
    }

    public init(_ frame: UnsafeRawBufferPointer) {
        let parsed = FrameParser.parse(frame)
        func add(_ name: String, _ value: String) { fields.append(Field(name: name, value: value)) }
        func hex(_ value: some BinaryInteger, width: Int) -> String {
            let text = String(value, radix: 16)
            return "0x" + String(repeating: "0", count: max(0, width - text.count)) + text
        }
        guard let ethernet = EthernetView(validating: frame) else {
            add("length", "\(frame.count)")
            add("bytes", frame.map { hex($0, width: 2) }.joined(separator: " "))
            return
        }
        add("eth.dst", "\(ethernet.destination)")
        add("eth.src", "\(ethernet.source)")
        var offset = 12
        var tagIndex = 0
        while tagIndex < Int(parsed.tagCount), let tag = VLANTagView(validating: UnsafeRawBufferPointer(rebasing: frame[offset...])) {
            let prefix = tagIndex == 0 ? "vlan" : "vlan[\(tagIndex)]"
            add("\(prefix).tpid", hex(tag.tpid, width: 4))
            add("\(prefix).pcp", "\(tag.pcp)")
            add("\(prefix).dei", tag.dei ? "1" : "0")
            add("\(prefix).vid", "\(tag.vid)")
            offset += 4
            tagIndex += 1
        }
        if frame.count >= offset + 2 { add("eth.type", hex(frame.u16(offset), width: 4)) }
        if let malformation = parsed.malformation { add("malformed", "\(malformation)") }
        if parsed.l3Offset != ParsedFrame.absent {
            let l3 = UnsafeRawBufferPointer(rebasing: frame[Int(parsed.l3Offset)...])
            switch parsed.layer3 {
            case .arp:
                if let arp = ARPView(validating: l3), arp.isEthernetIPv4 {
                    add("arp.op", "\(arp.operation)")
                    add("arp.sha", "\(arp.senderMAC)")
                    add("arp.spa", "\(arp.senderIP)")
                    add("arp.tha", "\(arp.targetMAC)")
                    add("arp.tpa", "\(arp.targetIP)")
                }
            case .ipv4:
                if let ip = IPv4View(validating: l3) {
                    add("ipv4.src", "\(ip.source)")
                    add("ipv4.dst", "\(ip.destination)")
                    add("ipv4.proto", "\(ip.proto)")
                    add("ipv4.ttl", "\(ip.ttl)")
                    add("ipv4.len", "\(ip.totalLength)")
                    add("ipv4.id", hex(ip.identification, width: 4))
                    add("ipv4.checksum", hex(ip.checksum, width: 4) + (ip.checksumIsValid ? " (valid)" : " (bad)"))
                }
            case .ipv6:
                if let ip = IPv6View(validating: l3) {
                    add("ipv6.src", "\(ip.source)")
                    add("ipv6.dst", "\(ip.destination)")
                    add("ipv6.next", "\(parsed.ipProtocol)")
                    add("ipv6.hlim", "\(ip.hopLimit)")
                    add("ipv6.plen", "\(ip.payloadLength)")
                }
            case .none:
                break
            }
        }
        if parsed.hasL4 {
            let l4 = UnsafeRawBufferPointer(rebasing: frame[Int(parsed.l4Offset)...])
            let checksumNote: String
            switch ChecksumVerifier.l4IsValid(frame, parsed) {
            case true?: checksumNote = " (valid)"
            case false?: checksumNote = " (bad)"
            case nil: checksumNote = ""
            }
            switch parsed.ipProtocol {
            case IPProtocol.tcp:
                if let tcp = TCPView(validating: l4) {
                    add("tcp.sport", "\(tcp.sourcePort)")
                    add("tcp.dport", "\(tcp.destinationPort)")
                    add("tcp.flags", hex(tcp.flags.rawValue, width: 2))
                    add("tcp.seq", "\(tcp.sequenceNumber)")
                    add("tcp.ack", "\(tcp.acknowledgmentNumber)")
                    add("tcp.checksum", hex(tcp.checksum, width: 4) + checksumNote)
                }
            case IPProtocol.udp:
                if let udp = UDPView(validating: l4) {
                    add("udp.sport", "\(udp.sourcePort)")
                    add("udp.dport", "\(udp.destinationPort)")
                    add("udp.len", "\(udp.length)")
                    add("udp.checksum", hex(udp.checksum, width: 4) + checksumNote)
                }
            default:
                if let icmp = ICMPView(validating: l4) {
                    let name = parsed.ipProtocol == IPProtocol.icmpv6 ? "icmpv6" : "icmp"
                    add("\(name).type", "\(icmp.type)")
                    add("\(name).code", "\(icmp.code)")
                    add("\(name).id", "\(icmp.identifier)")
                    add("\(name).seq", "\(icmp.sequence)")
                    add("\(name).checksum", hex(icmp.checksum, width: 4) + checksumNote)
                }
            }
        }
        add("length", "\(frame.count)")
    }

    /// The first field whose name or value differs, then (if all fields agree) the first differing
    /// byte; nil when the frames are identical.
    public static func firstDifference(expected: [UInt8], actual: [UInt8]) -> String? {
        guard let difference = firstDifferenceDetail(expected: expected, actual: actual) else { return nil }
        let name = difference.field.hasPrefix("payload byte") ? difference.field : "field \(difference.field)"
        return "\(name): expected \(difference.expected ?? "absent"), got \(difference.actual ?? "absent")"
    }

    /// The first field that differs, with both values (nil: the field is not in that frame; a
    /// field of another name in its place is given as `NAME = VALUE`).
    public static func firstDifferenceDetail(
        expected: [UInt8], actual: [UInt8]
    ) -> (field: String, expected: String?, actual: String?)? {
        if expected == actual { return nil }
        let lhs = FrameFields(expected).fields
        let rhs = FrameFields(actual).fields
        for index in 0..<min(lhs.count, rhs.count) where lhs[index] != rhs[index] {
            if lhs[index].name != rhs[index].name {
                return (lhs[index].name, lhs[index].value, "field \(rhs[index].name) = \(rhs[index].value)")
            }
            return (lhs[index].name, lhs[index].value, rhs[index].value)
        }
        if lhs.count != rhs.count {
            let longer = lhs.count > rhs.count ? lhs[rhs.count] : rhs[lhs.count]
            return lhs.count > rhs.count ? (longer.name, longer.value, nil) : (longer.name, nil, longer.value)
        }
        let offset = zip(expected, actual).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            ?? min(expected.count, actual.count)
        func byte(_ bytes: [UInt8]) -> String { offset < bytes.count ? "0x" + String(bytes[offset], radix: 16) : "end of frame" }
        return ("payload byte \(offset)", byte(expected), byte(actual))
    }
}
