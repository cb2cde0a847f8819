import TapestryWire

extension FrameSpec {
    /// The spec as the YAML of a frame in a test file: one `layer: { field: value, ... }` line
    /// per layer, every field given. `indent` goes before every line but the first.
    public func text(indent: String = "") -> String {
        lines().joined(separator: "\n" + indent)
    }

    func lines() -> [String] {
        if let raw { return ["raw: \(hex(raw))"] }
        var lines = layerFields().map { layer in
            layer.name == "payload" ? "payload: \(layer.fields[0].value)" : "\(layer.name): { \(layer.fields.map { "\($0.name): \($0.value)" }.joined(separator: ", ")) }"
        }
        if vlans.count > 1 {  // two tags print as one list
            let tags = lines.filter { $0.hasPrefix("vlan: ") }.map { String($0.dropFirst(6)) }
            let first = lines.firstIndex { $0.hasPrefix("vlan: ") }!
            lines.removeAll { $0.hasPrefix("vlan: ") }
            lines.insert("vlan: [\(tags.joined(separator: ", "))]", at: first)
        }
        if !pad { lines.append("pad: false") }
        return lines
    }

    /// The layers in order with their fields as `decode` prints them (the values are the text the
    /// syntax reads back): `eth`, each `vlan` tag, the network and transport layers, `payload`.
    /// Patterns compare frames through this too.
    public func layerFields() -> [(name: String, fields: [(name: String, value: String)])] {
        var layers: [(name: String, fields: [(name: String, value: String)])] = []
        var eth: [(String, String)] = []
        if let src = self.eth.src { eth.append(("src", "\(src)")) }
        if let dst = self.eth.dst { eth.append(("dst", "\(dst)")) }
        if let type = self.eth.type { eth.append(("type", hex16(type))) }
        layers.append(("eth", eth))
        for tag in vlans {
            layers.append(("vlan", [("vid", "\(tag.vid)"), ("pcp", "\(tag.pcp)"), ("dei", "\(tag.dei)"), ("tpid", hex16(tag.tpid))]))
        }
        layers += upperLayerFields()
        return layers
    }

    /// The lines from the IP (or ARP) layer on, also an ICMP quote's.
    func upperLines() -> [String] {
        upperLayerFields().map { layer in
            layer.name == "payload" ? "payload: \(layer.fields[0].value)" : "\(layer.name): { \(layer.fields.map { "\($0.name): \($0.value)" }.joined(separator: ", ")) }"
        }
    }

    func upperLayerFields() -> [(name: String, fields: [(name: String, value: String)])] {
        var layers: [(name: String, fields: [(name: String, value: String)])] = []
        switch network {
        case .arp(let arp)?:
            let op = arp.op == 1 ? "request" : arp.op == 2 ? "reply" : "\(arp.op)"
            layers.append(("arp", [("op", op), ("sha", "\(arp.sha ?? eth.src ?? .zero)"), ("spa", "\(arp.spa)"), ("tha", "\(arp.tha)"), ("tpa", "\(arp.tpa)")]))
        case .ipv4(let ip)?:
            var fields: [(String, String)] = [("src", "\(ip.src)"), ("dst", "\(ip.dst)"), ("ttl", "\(ip.ttl)"), ("tos", "\(ip.tos)"), ("id", "\(ip.id)"), ("df", "\(ip.df)"), ("mf", "\(ip.mf)"), ("frag", "\(ip.frag)")]
            if let proto = ip.proto { fields.append(("proto", "\(proto)")) }
            if let checksum = ip.checksum { fields.append(("checksum", hex16(checksum))) }
            if !ip.options.isEmpty { fields.append(("options", "{ hex: \"\(hex(ip.options))\" }")) }
            layers.append(("ipv4", fields))
        case .ipv6(let ip)?:
            var fields: [(String, String)] = [("src", "\"\(ip.src)\""), ("dst", "\"\(ip.dst)\""), ("hlim", "\(ip.hlim)"), ("tc", "\(ip.tc)"), ("flow", "\(ip.flow)")]
            if let nh = ip.nh { fields.append(("nh", "\(nh)")) }
            if let frag = ip.frag { fields.append(("frag", "{ id: \(frag.id), offset: \(frag.offset), more: \(frag.more) }")) }
            layers.append(("ipv6", fields))
        case nil:
            break
        }
        switch transport {
        case .tcp(let tcp)?:
            var fields: [(String, String)] = [("sport", "\(tcp.sport)"), ("dport", "\(tcp.dport)"), ("seq", "\(tcp.seq)"), ("ack", "\(tcp.ack)"), ("flags", Self.flagLetters(tcp.flags)), ("window", "\(tcp.window)")]
            if let checksum = tcp.checksum { fields.append(("checksum", hex16(checksum))) }
            if !tcp.options.isEmpty { fields.append(("options", "{ hex: \"\(hex(tcp.options))\" }")) }
            layers.append(("tcp", fields))
        case .udp(let udp)?:
            var fields: [(String, String)] = [("sport", "\(udp.sport)"), ("dport", "\(udp.dport)")]
            if let checksum = udp.checksum { fields.append(("checksum", hex16(checksum))) }
            layers.append(("udp", fields))
        case .icmp(let icmp)?:
            layers.append(("icmp", icmpFields(icmp, v6: false)))
        case .icmpv6(let icmp)?:
            layers.append(("icmpv6", icmpFields(icmp, v6: true)))
        case nil:
            break
        }
        if !payload.isEmpty { layers.append(("payload", [("payload", Self.payloadText(payload))])) }
        return layers
    }

    private func icmpFields(_ icmp: ICMP, v6: Bool) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = [("type", Self.icmpTypeName(icmp.type, v6: v6) ?? "\(icmp.type)"), ("code", "\(icmp.code)")]
        if let quote = icmp.quote {
            fields.append(("quote", "{ \(quote.spec.upperLines().joined(separator: ", ")) }"))
        } else if let target = icmp.target {
            fields.append(("target", "\"\(target)\""))
            if icmp.neighborFlags != 0 { fields.append(("flags", Self.neighborFlagLetters(icmp.neighborFlags))) }
        } else {
            fields += [("id", "\(icmp.id)"), ("seq", "\(icmp.seq)")]
        }
        if let checksum = icmp.checksum { fields.append(("checksum", hex16(checksum))) }
        return fields
    }

    /// A neighbor advertisement's flags as letters, RSO in that order.
    public static func neighborFlagLetters(_ flags: UInt8) -> String {
        zip([UInt8(0x80), 0x40, 0x20], ["R", "S", "O"]).filter { flags & $0.0 != 0 }.map(\.1).joined()
    }

    /// The contract's letters, FSRPAUEC in that order.
    public static func flagLetters(_ flags: UInt8) -> String {
        let letters = TCPFlags(rawValue: flags).letters
        return letters.isEmpty ? "\"\"" : letters
    }

    static let icmpTypes: [(name: String, v4: UInt8, v6: UInt8?)] = [
        ("echo-request", 8, 128), ("echo-reply", 0, 129), ("dest-unreach", 3, 1), ("time-exceeded", 11, 3),
        ("neighbor-solicit", 255, 135), ("neighbor-advert", 255, 136),
    ]

    static func icmpTypeName(_ type: UInt8, v6: Bool) -> String? {
        icmpTypes.first { v6 ? $0.v6 == type : ($0.v4 == type && $0.v4 != 255) }?.name
    }

    /// Printable ASCII as a quoted string, anything else as `{ hex: "..." }`.
    static func payloadText(_ payload: [UInt8]) -> String {
        if payload.allSatisfy({ (0x20...0x7E).contains($0) && $0 != 0x22 && $0 != 0x5C }) {
            return "\"\(String(decoding: payload, as: UTF8.self))\""
        }
        return "{ hex: \"\(hex(payload))\" }"
    }
}

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    var text = ""
    text.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0F)])
    }
    return text
}

func hex16(_ value: UInt16) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}
