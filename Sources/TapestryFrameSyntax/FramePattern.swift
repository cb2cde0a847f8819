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
        let expectedTags = spec.vlans.count
        if expectedTags != actual.vlans.count {
            return ("vlan tags", "\(expectedTags)", "\(actual.vlans.count)")
        }
        let theirs = Self.fields(actual.layerFields())
        let ours = Self.fields(spec.layerFields())
        let present = Set(actual.layerFields().map(\.name))
        for layer in layers where layer != "vlan" && !present.contains(layer) {
            return (layer, "a \(layer) layer", "none (\(actual.layerFields().map(\.name).joined(separator: ", ")))")
        }
        for name in written.sorted(by: Self.inFrameOrder) {
            let expected = ours[name] ?? "?"
            let got = theirs[name] ?? "absent"
            if expected != got { return (Self.display(name), expected, got) }
        }
        if !validChecksums.isEmpty {
            let correct = Self.fields(FrameSpec.decodeForComparison(frame).layerFields())
            for layer in validChecksums.sorted() where correct["\(layer).checksum"] != nil {
                return ("\(layer).checksum", "valid", "\(correct["\(layer).checksum"]!) (wrong)")
            }
        }
        return nil
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
