import TapestryTopology
import TapestryWire
import Yams

/// Reads a frame in the frame syntax from a YAML mapping, every problem recorded with its line
/// and column (and a suggestion for a misspelt key or layer).
package struct FrameSpecReader {
    package var reader: YAMLReader
    /// Reading an expected frame (`pattern`): layers may be skipped, `checksum: valid` is allowed,
    /// nothing is built.
    private var readingPattern = false
    /// Layers whose `checksum: valid` a pattern asks for.
    private var validChecksums: Set<String> = []
    /// Reading an ICMP error's quote: no quote inside it.
    private var readingQuote = false

    package init(file: String) { reader = YAMLReader(file: file) }

    package var diagnostics: [Diagnostic] { reader.diagnostics }

    static let layers = ["eth", "vlan", "arp", "ipv4", "ipv6", "tcp", "udp", "icmp", "icmpv6", "payload", "raw", "pad"]

    /// A frame from `node`; `extra` keys are allowed beside the layers (a test's `port`, `at`)
    /// and returned for the caller to read. Nil when anything is wrong (all of it reported).
    package mutating func frame(_ node: Node, what: String = "a frame", extra: [String] = []) -> (FrameSpec, [String: YAMLReader.Entry])? {
        guard let fields = reader.entries(node, what: what, allowed: Self.layers + extra) else { return nil }
        let before = reader.diagnostics.count
        var spec = FrameSpec()
        if let raw = fields["raw"] {
            let others = fields.keys.filter { Self.layers.contains($0) && $0 != "raw" }.sorted()
            if !others.isEmpty { reader.error(raw.keyNode, "raw gives the whole frame: it cannot go with \(others.joined(separator: ", "))") }
            if let bytes = hexBytes(raw.value, what: "raw") {
                // Any length up to the switch's largest frame: a runt is a frame a test may send.
                if bytes.count > FrameSpec.maxLength {
                    reader.error(raw.value, "raw frame of \(bytes.count) bytes is longer than \(FrameSpec.maxLength)")
                } else {
                    spec.raw = bytes
                }
            }
        } else {
            if let eth = fields["eth"] { spec.eth = ethernet(eth.value) ?? spec.eth } else if !readingPattern {
                reader.error(node, "\(what) needs an eth layer (or raw)")
            }
            if let vlan = fields["vlan"] { spec.vlans = tags(vlan.value) }
            let networks = ["arp", "ipv4", "ipv6"].filter { fields[$0] != nil }
            if networks.count > 1 { reader.error(fields[networks[1]]!.keyNode, "one of arp, ipv4, ipv6, not \(networks.joined(separator: " and "))") }
            if let arp = fields["arp"] { spec.network = self.arp(arp.value).map { .arp($0) } }
            if let ip = fields["ipv4"] { spec.network = ipv4(ip.value).map { .ipv4($0) } }
            if let ip = fields["ipv6"] { spec.network = ipv6(ip.value).map { .ipv6($0) } }
            spec.transport = transport(fields, after: networks.first, isIPv6: networks.first == "ipv6")
            if let payload = fields["payload"] { spec.payload = self.payload(payload.value) ?? [] }
            if let pad = fields["pad"] { spec.pad = reader.boolean(pad.value, what: "pad") ?? true }
        }
        guard reader.diagnostics.count == before else { return nil }
        if !readingPattern {
            do {
                _ = try spec.build()
            } catch {
                reader.error(node, "this frame cannot be built: \(error)")
                return nil
            }
        }
        return (spec, fields.filter { extra.contains($0.key) })
    }

    /// An expected frame: the same keys as a frame, each field written must be equal, fields not
    /// written are not compared; `checksum: valid` asks for a correct checksum; `{}` is any frame.
    /// `extra` keys are allowed beside the layers and not compared (a VXLAN port's `underlay`).
    package mutating func pattern(_ node: Node, what: String = "an expected frame", extra: [String] = []) -> FramePattern? {
        readingPattern = true
        validChecksums = []
        defer { readingPattern = false }
        guard let (spec, _) = frame(node, what: what, extra: extra) else { return nil }
        var pattern = FramePattern(spec: spec)
        pattern.validChecksums = validChecksums
        // Which layers and fields are written, read through entries (quietly: frame() reported
        // the problems) so that fields brought in by a merge key (<<) are compared too.
        let top = reader.quietEntries(node)
        var quoteNode: Node?
        for entry in top {
            let layer = entry.key
            let value = entry.value
            guard Self.layers.contains(layer), layer != "pad" else { continue }
            pattern.layers.append(layer)
            func subkeys(_ node: Node, index: Int?) {
                for field in reader.quietEntries(node) {
                    let name = field.key
                    guard name != "checksum" || !validChecksums.contains(layer) else { continue }
                    if name == "quote" && (layer == "icmp" || layer == "icmpv6") {
                        quoteNode = field.value  // compared as a pattern of its own
                        continue
                    }
                    if name == "frag" && layer == "ipv6", case .mapping = field.value {
                        for part in reader.quietEntries(field.value) { pattern.written.insert("ipv6.frag.\(part.key)") }
                        continue
                    }
                    pattern.written.insert("\(layer)\(index.map { "\($0)" } ?? "").\(name)")
                }
            }
            if case .sequence(let tags) = value, layer == "vlan" {
                for (index, tag) in tags.enumerated() { subkeys(tag, index: index) }
            } else if layer == "vlan" {
                subkeys(value, index: 0)
            } else if layer == "payload" {
                pattern.written.insert("payload")
            } else {
                subkeys(value, index: nil)
            }
        }
        if let quoteNode {
            if readingQuote {
                reader.error(quoteNode, "a quote inside a quote is not supported; give the inner packet as payload")
                return nil
            }
            readingQuote = true
            defer { readingQuote = false }
            let before = reader.diagnostics.count
            let nested = self.pattern(quoteNode, what: "a quote")
            readingPattern = true  // the nested read ended pattern mode
            guard let nested, reader.diagnostics.count == before else { return nil }
            pattern.quote = FramePattern.Nested(nested)
        }
        return pattern
    }

    private mutating func transport(_ fields: [String: YAMLReader.Entry], after network: String?, isIPv6: Bool) -> FrameSpec.Transport? {
        let present = ["tcp", "udp", "icmp", "icmpv6"].filter { fields[$0] != nil }
        guard let first = present.first, let entry = fields[first] else { return nil }
        if present.count > 1 { reader.error(fields[present[1]]!.keyNode, "one of tcp, udp, icmp, icmpv6, not \(present.joined(separator: " and "))") }
        guard network == "ipv4" || network == "ipv6" || readingPattern else {
            reader.error(entry.keyNode, "a \(first) layer needs an ipv4 or ipv6 layer")
            return nil
        }
        switch first {
        case "tcp": return tcp(entry.value).map { .tcp($0) }
        case "udp": return udp(entry.value).map { .udp($0) }
        case "icmp":
            if isIPv6 { reader.error(entry.keyNode, "over ipv6 the layer is icmpv6") }
            return icmp(entry.value, v6: false).map { .icmp($0) }
        default:
            if !isIPv6 && !(readingPattern && network == nil) { reader.error(entry.keyNode, "over ipv4 the layer is icmp") }
            return icmp(entry.value, v6: true).map { .icmpv6($0) }
        }
    }

    // MARK: layers

    private mutating func ethernet(_ node: Node) -> FrameSpec.Ethernet? {
        guard let fields = reader.entries(node, what: "eth", allowed: ["src", "dst", "type"]) else { return nil }
        var eth = FrameSpec.Ethernet()
        eth.src = fields["src"].flatMap { mac($0.value, what: "eth.src") }
        eth.dst = fields["dst"].flatMap { mac($0.value, what: "eth.dst") }
        eth.type = fields["type"].flatMap { number($0.value, what: "eth.type", max: 0xFFFF) }.map { UInt16($0) }
        return eth
    }

    private mutating func tags(_ node: Node) -> [FrameSpec.VLAN] {
        if case .sequence(let list) = node {
            guard (1...2).contains(list.count) else {
                reader.error(node, "vlan takes one tag or a list of two (outer first), not \(list.count)")
                return []
            }
            return list.compactMap { tag($0) }
        }
        return tag(node).map { [$0] } ?? []
    }

    private mutating func tag(_ node: Node) -> FrameSpec.VLAN? {
        guard let fields = reader.entries(node, what: "vlan", allowed: ["vid", "pcp", "dei", "tpid"]) else { return nil }
        var tag = FrameSpec.VLAN()
        tag.vid = fields["vid"].flatMap { number($0.value, what: "vlan.vid", max: 4095) }.map { UInt16($0) } ?? 0
        tag.pcp = fields["pcp"].flatMap { number($0.value, what: "vlan.pcp", max: 7) }.map { UInt8($0) } ?? 0
        tag.dei = fields["dei"].flatMap { number($0.value, what: "vlan.dei", max: 1) }.map { UInt8($0) } ?? 0
        if let tpid = fields["tpid"].flatMap({ number($0.value, what: "vlan.tpid", max: 0xFFFF) }) {
            if tpid != 0x8100 && tpid != 0x88A8 {
                reader.error(fields["tpid"]!.value, "vlan.tpid must be 0x8100 or 0x88a8, not 0x\(String(tpid, radix: 16))")
            }
            tag.tpid = UInt16(tpid)
        }
        return tag
    }

    private mutating func arp(_ node: Node) -> FrameSpec.ARP? {
        guard let fields = reader.entries(node, what: "arp", allowed: ["op", "sha", "spa", "tha", "tpa"]) else { return nil }
        var arp = FrameSpec.ARP()
        if let op = fields["op"] {
            if case .scalar(let scalar) = op.value, scalar.string == "request" || scalar.string == "reply" {
                arp.op = scalar.string == "request" ? 1 : 2
            } else if let value = number(op.value, what: "arp.op (request, reply or a number)", max: 0xFFFF) {
                arp.op = UInt16(value)
            }
        }
        arp.sha = fields["sha"].flatMap { mac($0.value, what: "arp.sha") }
        arp.tha = fields["tha"].flatMap { mac($0.value, what: "arp.tha") } ?? .zero
        arp.spa = fields["spa"].flatMap { ipv4Address($0.value, what: "arp.spa") } ?? arp.spa
        arp.tpa = fields["tpa"].flatMap { ipv4Address($0.value, what: "arp.tpa") } ?? arp.tpa
        return arp
    }

    private mutating func ipv4(_ node: Node) -> FrameSpec.IPv4? {
        let allowed = ["src", "dst", "ttl", "tos", "id", "df", "mf", "frag", "proto", "checksum", "options"]
        guard let fields = reader.entries(node, what: "ipv4", allowed: allowed) else { return nil }
        var ip = FrameSpec.IPv4()
        ip.src = fields["src"].flatMap { ipv4Address($0.value, what: "ipv4.src") } ?? ip.src
        ip.dst = fields["dst"].flatMap { ipv4Address($0.value, what: "ipv4.dst") } ?? ip.dst
        ip.ttl = fields["ttl"].flatMap { number($0.value, what: "ipv4.ttl", max: 255) }.map { UInt8($0) } ?? 64
        ip.tos = fields["tos"].flatMap { number($0.value, what: "ipv4.tos", max: 255) }.map { UInt8($0) } ?? 0
        ip.id = fields["id"].flatMap { number($0.value, what: "ipv4.id", max: 0xFFFF) }.map { UInt16($0) } ?? 0
        ip.df = fields["df"].flatMap { reader.boolean($0.value, what: "ipv4.df") } ?? false
        ip.mf = fields["mf"].flatMap { reader.boolean($0.value, what: "ipv4.mf") } ?? false
        if let frag = fields["frag"], let value = number(frag.value, what: "ipv4.frag", max: 65_528) {
            if value % 8 != 0 { reader.error(frag.value, "ipv4.frag is an offset in bytes and must be a multiple of 8, not \(value)") }
            ip.frag = value
        }
        ip.proto = fields["proto"].flatMap { number($0.value, what: "ipv4.proto", max: 255) }.map { UInt8($0) }
        ip.checksum = fields["checksum"].flatMap { checksum($0.value, what: "ipv4.checksum") }
        if let options = fields["options"], let bytes = hexBytes(options.value, what: "ipv4.options", mapping: true) {
            if bytes.count % 4 != 0 || bytes.count > 40 { reader.error(options.value, "ipv4.options must be a multiple of 4 bytes, at most 40") }
            ip.options = bytes
        }
        return ip
    }

    private mutating func ipv6(_ node: Node) -> FrameSpec.IPv6? {
        guard let fields = reader.entries(node, what: "ipv6", allowed: ["src", "dst", "hlim", "tc", "flow", "nh", "frag"]) else { return nil }
        var ip = FrameSpec.IPv6()
        ip.src = fields["src"].flatMap { ipv6Address($0.value, what: "ipv6.src") } ?? ip.src
        ip.dst = fields["dst"].flatMap { ipv6Address($0.value, what: "ipv6.dst") } ?? ip.dst
        ip.hlim = fields["hlim"].flatMap { number($0.value, what: "ipv6.hlim", max: 255) }.map { UInt8($0) } ?? 64
        ip.tc = fields["tc"].flatMap { number($0.value, what: "ipv6.tc", max: 255) }.map { UInt8($0) } ?? 0
        ip.flow = fields["flow"].flatMap { number($0.value, what: "ipv6.flow", max: 0xFFFFF) }.map { UInt32($0) } ?? 0
        ip.nh = fields["nh"].flatMap { number($0.value, what: "ipv6.nh", max: 255) }.map { UInt8($0) }
        if let frag = fields["frag"], let parts = reader.entries(frag.value, what: "ipv6.frag", allowed: ["id", "offset", "more"]) {
            var fragment = FrameSpec.IPv6.Fragment()
            fragment.id = parts["id"].flatMap { number($0.value, what: "ipv6.frag.id", max: 0xFFFF_FFFF) }.map { UInt32($0) } ?? 0
            if let offset = parts["offset"], let value = number(offset.value, what: "ipv6.frag.offset", max: 65_528) {
                if value % 8 != 0 { reader.error(offset.value, "ipv6.frag.offset must be a multiple of 8, not \(value)") }
                fragment.offset = value
            }
            fragment.more = parts["more"].flatMap { reader.boolean($0.value, what: "ipv6.frag.more") } ?? false
            ip.frag = fragment
        }
        return ip
    }

    private mutating func tcp(_ node: Node) -> FrameSpec.TCP? {
        let allowed = ["sport", "dport", "seq", "ack", "flags", "window", "checksum", "options"]
        guard let fields = reader.entries(node, what: "tcp", allowed: allowed) else { return nil }
        var tcp = FrameSpec.TCP()
        tcp.sport = fields["sport"].flatMap { number($0.value, what: "tcp.sport", max: 65_535) }.map { UInt16($0) } ?? 0
        tcp.dport = fields["dport"].flatMap { number($0.value, what: "tcp.dport", max: 65_535) }.map { UInt16($0) } ?? 0
        tcp.seq = fields["seq"].flatMap { number($0.value, what: "tcp.seq", max: 0xFFFF_FFFF) }.map { UInt32($0) } ?? 0
        tcp.ack = fields["ack"].flatMap { number($0.value, what: "tcp.ack", max: 0xFFFF_FFFF) }.map { UInt32($0) } ?? 0
        tcp.window = fields["window"].flatMap { number($0.value, what: "tcp.window", max: 65_535) }.map { UInt16($0) } ?? 65_535
        tcp.checksum = fields["checksum"].flatMap { checksum($0.value, what: "tcp.checksum") }
        if let flags = fields["flags"] { tcp.flags = self.flags(flags.value) ?? tcp.flags }
        if let options = fields["options"], let bytes = hexBytes(options.value, what: "tcp.options", mapping: true) {
            if bytes.count % 4 != 0 || bytes.count > 40 { reader.error(options.value, "tcp.options must be a multiple of 4 bytes, at most 40") }
            tcp.options = bytes
        }
        return tcp
    }

    private mutating func udp(_ node: Node) -> FrameSpec.UDP? {
        guard let fields = reader.entries(node, what: "udp", allowed: ["sport", "dport", "checksum"]) else { return nil }
        var udp = FrameSpec.UDP()
        udp.sport = fields["sport"].flatMap { number($0.value, what: "udp.sport", max: 65_535) }.map { UInt16($0) } ?? 0
        udp.dport = fields["dport"].flatMap { number($0.value, what: "udp.dport", max: 65_535) }.map { UInt16($0) } ?? 0
        udp.checksum = fields["checksum"].flatMap { checksum($0.value, what: "udp.checksum") }
        return udp
    }

    /// `RSO` letters (any of them, each once) of a neighbor advertisement.
    private mutating func neighborFlags(_ node: Node) -> UInt8? {
        guard case .scalar(let scalar) = node else {
            reader.error(node, "icmpv6.flags must be letters of R, S, O (like SO)")
            return nil
        }
        var flags: UInt8 = 0
        for letter in scalar.string {
            let bit: UInt8
            switch letter {
            case "R": bit = 0x80
            case "S": bit = 0x40
            case "O": bit = 0x20
            default:
                reader.error(node, "icmpv6.flags '\(scalar.string)' must be letters of R, S, O (like SO)")
                return nil
            }
            guard flags & bit == 0 else {
                reader.error(node, "icmpv6.flags '\(scalar.string)' names \(letter) twice")
                return nil
            }
            flags |= bit
        }
        return flags
    }

    private mutating func icmp(_ node: Node, v6: Bool) -> FrameSpec.ICMP? {
        let layer = v6 ? "icmpv6" : "icmp"
        let allowed = ["type", "code", "id", "seq", "quote", "checksum"] + (v6 ? ["target", "flags"] : [])
        guard let fields = reader.entries(node, what: layer, allowed: allowed) else { return nil }
        var icmp = FrameSpec.ICMP()
        icmp.type = v6 ? 128 : 8
        if let type = fields["type"] {
            if case .scalar(let scalar) = type.value, Int(scalar.string) == nil, !scalar.string.lowercased().hasPrefix("0x") {
                let names = FrameSpec.icmpTypes.filter { v6 || $0.v4 != 255 }.map(\.name)
                if let known = FrameSpec.icmpTypes.first(where: { $0.name == scalar.string }), v6 || known.v4 != 255 {
                    icmp.type = v6 ? known.v6 ?? 0 : known.v4
                } else {
                    let suggestion = reader.closest(scalar.string, in: names).map { " (did you mean '\($0)'?)" } ?? ""
                    reader.error(type.value, "\(layer).type '\(scalar.string)' is not a number or one of \(names.joined(separator: ", "))\(suggestion)")
                }
            } else if let value = number(type.value, what: "\(layer).type", max: 255) {
                icmp.type = UInt8(value)
            }
        }
        icmp.code = fields["code"].flatMap { number($0.value, what: "\(layer).code", max: 255) }.map { UInt8($0) } ?? 0
        icmp.id = fields["id"].flatMap { number($0.value, what: "\(layer).id", max: 65_535) }.map { UInt16($0) } ?? 0
        icmp.seq = fields["seq"].flatMap { number($0.value, what: "\(layer).seq", max: 65_535) }.map { UInt16($0) } ?? 0
        icmp.checksum = fields["checksum"].flatMap { checksum($0.value, what: "\(layer).checksum") }
        icmp.target = fields["target"].flatMap { ipv6Address($0.value, what: "icmpv6.target") }
        if let flags = fields["flags"] {
            icmp.neighborFlags = neighborFlags(flags.value) ?? 0
            if icmp.type != 136 || fields["target"] == nil {
                reader.error(flags.keyNode, "icmpv6.flags are a neighbor advertisement's (type neighbor-advert, with a target)")
            }
        }
        if let quote = fields["quote"] {
            if fields["id"] != nil || fields["seq"] != nil || fields["target"] != nil {
                reader.error(quote.keyNode, "\(layer).quote takes the place of id and seq (and target)")
            }
            if readingQuote {
                reader.error(quote.keyNode, "a quote inside a quote is not supported; give the inner packet as payload")
            } else if !readingPattern {  // a pattern's quote is read as a pattern of its own
                readingQuote = true
                icmp.quote = quoted(quote.value, what: "\(layer).quote").map { FrameSpec.Quote($0) }
                readingQuote = false
            }
        }
        return icmp
    }

    /// A quoted packet: from its IP layer on (no eth, no vlan).
    private mutating func quoted(_ node: Node, what: String) -> FrameSpec? {
        let allowed = ["ipv4", "ipv6", "tcp", "udp", "icmp", "icmpv6", "payload"]
        guard let fields = reader.entries(node, what: what, allowed: allowed) else { return nil }
        var spec = FrameSpec()
        let networks = ["ipv4", "ipv6"].filter { fields[$0] != nil }
        guard let network = networks.first else {
            reader.error(node, "\(what) starts at an ipv4 or ipv6 layer")
            return nil
        }
        if networks.count > 1 { reader.error(fields["ipv6"]!.keyNode, "one of ipv4, ipv6") }
        if let ip = fields["ipv4"] { spec.network = ipv4(ip.value).map { .ipv4($0) } }
        if let ip = fields["ipv6"] { spec.network = ipv6(ip.value).map { .ipv6($0) } }
        spec.transport = transport(fields, after: network, isIPv6: network == "ipv6")
        if let payload = fields["payload"] { spec.payload = self.payload(payload.value) ?? [] }
        return spec
    }

    // MARK: values

    /// A whole number within 0...max, decimal or 0x hexadecimal.
    private mutating func number(_ node: Node, what: String, max: Int) -> Int? {
        guard case .scalar(let scalar) = node, scalar.style == .plain else {
            reader.error(node, "\(what) must be a number, not \(reader.describe(node))")
            return nil
        }
        let text = scalar.string
        let value = text.hasPrefix("0x") || text.hasPrefix("0X") ? Int(text.dropFirst(2), radix: 16) : Int(text)
        guard let value else {
            reader.error(node, "\(what) must be a number, not '\(text)'")
            return nil
        }
        guard (0...max).contains(value) else {
            reader.error(node, "\(what) \(text) is out of range 0...\(max)")
            return nil
        }
        return value
    }

    private mutating func checksum(_ node: Node, what: String) -> UInt16? {
        if readingPattern, case .scalar(let scalar) = node, scalar.string == "valid" {
            validChecksums.insert(String(what.prefix { $0 != "." }))
            return nil
        }
        return number(node, what: what, max: 0xFFFF).map { UInt16($0) }
    }

    private mutating func mac(_ node: Node, what: String) -> MACAddress? {
        guard let text = reader.string(node, what: what) else { return nil }
        guard let mac = MACAddress(text) else {
            reader.error(node, "\(what) '\(text)' is not a MAC address (six hex bytes with colons)")
            return nil
        }
        return mac
    }

    private mutating func ipv4Address(_ node: Node, what: String) -> IPv4Address? {
        guard let text = reader.string(node, what: what) else { return nil }
        guard let address = IPv4Address(text) else {
            reader.error(node, "\(what) '\(text)' is not an IPv4 address")
            return nil
        }
        return address
    }

    private mutating func ipv6Address(_ node: Node, what: String) -> IPv6Address? {
        guard let text = reader.string(node, what: what) else { return nil }
        guard let address = IPv6Address(text) else {
            reader.error(node, "\(what) '\(text)' is not an IPv6 address")
            return nil
        }
        return address
    }

    /// TCP flags as letters of FSRPAUEC (`SA`; `""` for none) or a number.
    private mutating func flags(_ node: Node) -> UInt8? {
        guard case .scalar(let scalar) = node else {
            reader.error(node, "tcp.flags must be letters of FSRPAUEC or a number, not \(reader.describe(node))")
            return nil
        }
        if scalar.style == .plain, let value = Int(scalar.string) ?? (scalar.string.lowercased().hasPrefix("0x") ? Int(scalar.string.dropFirst(2), radix: 16) : nil) {
            guard (0...255).contains(value) else {
                reader.error(node, "tcp.flags \(value) is out of range 0...255")
                return nil
            }
            return UInt8(value)
        }
        guard let flags = TCPFlags(letters: scalar.string) else {
            let letter = scalar.string.first { TCPFlags(letters: String($0)) == nil } ?? "?"
            reader.error(node, "tcp.flags '\(scalar.string)': '\(letter)' is not one of F S R P A U E C")
            return nil
        }
        return flags.rawValue
    }

    /// Text (its UTF-8 bytes) or `{ hex: "..." }`.
    private mutating func payload(_ node: Node) -> [UInt8]? {
        if case .mapping = node { return hexBytes(node, what: "payload", mapping: true) }
        guard case .scalar(let scalar) = node else {
            reader.error(node, "payload must be text or { hex: \"...\" }, not \(reader.describe(node))")
            return nil
        }
        return Array(scalar.string.utf8)
    }

    /// Hex digits (spaces and colons allowed between bytes) as a scalar, or under `hex:` in a
    /// mapping when `mapping`.
    private mutating func hexBytes(_ node: Node, what: String, mapping: Bool = false) -> [UInt8]? {
        var value = node
        if mapping {
            guard let fields = reader.entries(node, what: what, allowed: ["hex"]), let hex = fields["hex"] else {
                if case .mapping = node { reader.error(node, "\(what) needs hex: \"...\"") }
                return nil
            }
            value = hex.value
        }
        guard case .scalar(let scalar) = value else {
            reader.error(value, "\(what) must be hex digits, not \(reader.describe(value))")
            return nil
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(scalar.string.utf8.count / 2)
        var high: UInt8?
        for character in scalar.string.utf8 {
            if character == 0x20 || character == 0x3A { continue }
            let nibble: UInt8
            switch character {
            case 0x30...0x39: nibble = character - 0x30
            case 0x61...0x66: nibble = character - 0x61 + 10
            case 0x41...0x46: nibble = character - 0x41 + 10
            default:
                reader.error(value, "\(what) must be hex digits; '\(String(decoding: [character], as: UTF8.self))' is not one")
                return nil
            }
            if let first = high {
                bytes.append(first << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        if high != nil {
            reader.error(value, "\(what) has an odd number of hex digits")
            return nil
        }
        return bytes
    }
}
