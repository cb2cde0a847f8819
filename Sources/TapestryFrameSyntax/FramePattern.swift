import TapestryWire

/// An expected frame of a test: the layers and fields written in it (`FrameSpecReader.pattern`).
/// A frame matches when it has every layer named, the same VLAN tags as the pattern's `vlan`
/// (none if absent) once any layer is named, and every written field equal; `{}` matches any
/// frame; `raw` compares the whole frame.
public struct FramePattern: Sendable {
    /// The written values (fields not written hold defaults that are not compared).
    public var spec: FrameSpec
    /// The layers named, in the order written.
    public var layers: [String] = []
    /// "layer.field" for each field written ("vlan0.vid" for the outer tag, "payload").
    public var written: Set<String> = []
    /// Layers whose checksum must be correct (`checksum: valid`).
    public var validChecksums: Set<String> = []

    public init(spec: FrameSpec) { self.spec = spec }

    /// An ICMP error's quote, when the pattern gives one: compared as a pattern of its own.
    public var quote: Nested?

    public final class Nested: Sendable {
        public let pattern: FramePattern
        public init(_ pattern: FramePattern) { self.pattern = pattern }
    }

    public var matchesAnyFrame: Bool { spec.raw == nil && layers.isEmpty }

    /// The first field in which `frame` differs from the pattern, with both values; nil when it matches.
    public func mismatch(_ frame: [UInt8]) -> (field: String, expected: String, actual: String)? {
        if let raw = spec.raw {
            return raw == frame ? nil : ("raw", hex(raw), hex(frame))
        }
        guard !layers.isEmpty else { return nil }
        let actual = FrameSpec.decodeForComparison(frame, keepingChecksums: true)
        if actual.raw != nil {
            return ("layers", layers.joined(separator: ", "), "a frame the syntax cannot say field by field: raw: \(hex(frame))")
        }
        if spec.vlans.count != actual.vlans.count {
            return ("vlan tags", "\(spec.vlans.count)", "\(actual.vlans.count)")
        }
        return mismatch(actual, correct: FrameSpec.decodeForComparison(frame), prefix: "")
    }

    /// `actual` decoded with every checksum, `correct` with the correct ones left out.
    func mismatch(_ actual: FrameSpec, correct: FrameSpec, prefix: String) -> (field: String, expected: String, actual: String)? {
        let named = actual.layerFields().map(\.name)
        for layer in layers where layer != "vlan" && layer != "payload" && !named.contains(layer) {
            return (prefix + layer, "a \(layer) layer", "none (\(named.joined(separator: ", ")))")
        }
        let theirs = Self.fields(actual)
        let ours = Self.fields(spec)
        for name in written.sorted(by: Self.inFrameOrder) where name != "payload" {
            let expected = ours[name] ?? "?"
            let got = theirs[name] ?? "absent"
            if expected != got { return (prefix + display(name), expected, got) }
        }
        if written.contains("payload"), spec.payload != actual.payload {
            return (prefix + "payload", FrameSpec.payloadText(spec.payload), actual.payload.isEmpty ? "none" : FrameSpec.payloadText(actual.payload))
        }
        let wrong = Self.fields(correct)
        for layer in validChecksums.sorted() {
            if let value = wrong["\(layer).checksum"] { return (prefix + "\(layer).checksum", "valid", "\(value) (wrong)") }
        }
        if let quote {
            func quoted(_ spec: FrameSpec) -> FrameSpec? {
                switch spec.transport {
                case .icmp(let icmp)?, .icmpv6(let icmp)?: return icmp.quote?.spec
                default: return nil
                }
            }
            let layer = named.contains("icmpv6") ? "icmpv6" : "icmp"
            guard let inner = quoted(actual), let innerCorrect = quoted(correct) else {
                return (prefix + "\(layer).quote", "a quoted packet", "none")
            }
            return quote.pattern.mismatch(inner, correct: innerCorrect, prefix: prefix + "\(layer).quote.")
        }
        return nil
    }

    /// "layer.field" -> value (the tags numbered from 0: "vlan0.vid"; "ipv6.frag.id"...).
    static func fields(_ spec: FrameSpec) -> [String: String] {
        var result = fields(spec.layerFields())
        if case .ipv6(let ip)? = spec.network, let frag = ip.frag {
            result["ipv6.frag.id"] = "\(frag.id)"
            result["ipv6.frag.offset"] = "\(frag.offset)"
            result["ipv6.frag.more"] = "\(frag.more)"
        }
        return result
    }

    /// "layer.field" -> value, the tags numbered from 0 ("vlan0.vid").
    static func fields(_ layers: [(name: String, fields: [(name: String, value: String)])]) -> [String: String] {
        var result: [String: String] = [:]
        var tag = 0
        for layer in layers {
            let prefix = layer.name == "vlan" ? "vlan\(tag)" : layer.name
            if layer.name == "vlan" { tag += 1 }
            for field in layer.fields { result[layer.name == "payload" ? "payload" : "\(prefix).\(field.name)"] = field.value }
        }
        return result
    }

    static let order = ["eth", "vlan0", "vlan1", "arp", "ipv4", "ipv6", "tcp", "udp", "icmp", "icmpv6", "payload"]

    static func inFrameOrder(_ a: String, _ b: String) -> Bool {
        let la = order.firstIndex(of: String(a.prefix { $0 != "." })) ?? order.count
        let lb = order.firstIndex(of: String(b.prefix { $0 != "." })) ?? order.count
        return la != lb ? la < lb : a < b
    }

    /// "vlan0.vid" as "vlan.vid" (one tag) or "vlan[0].vid".
    func display(_ name: String) -> String { Self.display(name, tags: spec.vlans.count) }

    static func display(_ name: String, tags: Int = 1) -> String {
        guard name.hasPrefix("vlan") else { return name }
        let index = name.dropFirst(4).prefix { $0 != "." }
        let rest = name.drop { $0 != "." }
        return tags > 1 ? "vlan[\(index)]\(rest)" : "vlan\(rest)"
    }
}
