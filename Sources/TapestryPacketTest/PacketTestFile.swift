import Foundation
import TapestryDatapath
import TapestryFrameSyntax
import TapestryTopology
import TapestryWire
import Yams

/// A test file (`*.test.yaml`): a topology (a path relative to the file, or a mapping inline)
/// and tests, each frames to send and what must come out. Read with every problem reported at
/// once as `FILE:LINE:COLUMN`; nothing runs from a file with a problem.
public struct PacketTestFile: Sendable {
    public struct Frame: Sendable {
        public var port: String
        /// Nanoseconds from the test's start.
        public var at: Int64
        /// The inner frame, for a VXLAN port.
        public var bytes: [UInt8]
        /// At a VXLAN port: the outer packet's source (a remote, or any address), VNI and UDP
        /// source port; the runner wraps `bytes` in outer IPv4, UDP and VXLAN to the port's
        /// `local`.
        public var underlay: Underlay?
    }

    public struct Underlay: Sendable, Equatable {
        public var remote: IPv4Address
        public var vni: UInt32
        public var sourcePort: UInt16
    }

    /// One frame a port must send: `pattern` on the frame (on a VXLAN port, the inner frame), and
    /// on a VXLAN port the outer packet's destination (`remote`) and VNI when written.
    public struct Expected: Sendable {
        public var pattern: FramePattern
        public var remote: IPv4Address?
        public var vni: UInt32?
    }

    public struct Test: Sendable {
        public var name: String
        public var frames: [Frame]
        /// Port -> its expected frames, in order.
        public var expect: [String: [Expected]]
        public var drops: [DropReason: UInt64]
        public var ignorePorts: Set<String>
        /// (balancer index, backend index) marked down.
        public var down: [(balancer: Int, backend: Int)]
    }

    public var path: String
    public var topology: Topology
    public var tests: [Test]

    public static func load(path: String) -> Result<PacketTestFile, TopologyErrors> {
        func failure(_ message: String) -> Result<PacketTestFile, TopologyErrors> {
            .failure(TopologyErrors([Diagnostic(file: path, line: 1, column: 1, message: message)]))
        }
        let data: Data
        switch TopologyLoader.readBounded(path: path) {
        case .success(let bytes): data = bytes
        case .failure(let diagnostic): return .failure(TopologyErrors([diagnostic]))
        }
        guard let text = String(data: data, encoding: .utf8) else { return failure("file is not UTF-8 text") }
        return parse(yaml: text, file: path)
    }

    public static func parse(yaml: String, file: String) -> Result<PacketTestFile, TopologyErrors> {
        let (root, composed) = TopologyLoader.compose(yaml: yaml, file: file)
        guard let root else { return .failure(TopologyErrors(composed)) }
        var frames = FrameSpecReader(file: file)
        var diagnostics = composed
        guard let top = frames.reader.entries(root, what: "a test file", allowed: ["topology", "tests"]) else {
            return .failure(TopologyErrors(diagnostics + frames.diagnostics))
        }
        // The topology: a path relative to this file, or a mapping.
        var topology: Topology?
        if let entry = top["topology"] {
            if case .mapping = entry.value {
                switch TopologyLoader.topology(from: entry.value, file: file) {
                case .success(let loaded): topology = loaded
                case .failure(let errors): diagnostics += errors.diagnostics
                }
            } else if let relative = frames.reader.string(entry.value, what: "topology") {
                let base = URL(fileURLWithPath: file).deletingLastPathComponent()
                let resolved = relative.hasPrefix("/") ? relative : base.appendingPathComponent(relative).path
                switch TopologyLoader.load(path: resolved) {
                case .success(let loaded): topology = loaded
                case .failure(let errors):
                    // Not the topology's messages themselves: they quote its text, and a test file
                    // (untrusted) could name any readable file to copy its lines into a CI log.
                    let first = errors.diagnostics.first.map { " (its first at line \($0.line), column \($0.column))" } ?? ""
                    frames.reader.error(
                        entry.value,
                        "topology \(relative) is not a valid topology: \(errors.diagnostics.count) problem\(errors.diagnostics.count == 1 ? "" : "s")\(first); tapestry check \(resolved) lists them")
                }
            }
        } else {
            frames.reader.error(root, "a test file needs topology: (a file relative to it, or a topology mapping)")
        }
        var tests: [Test] = []
        if let entry = top["tests"], let list = frames.reader.sequence(entry.value, what: "tests") {
            if list.isEmpty { frames.reader.error(entry.value, "tests is empty") }
            var names: [String: Node] = [:]
            for node in list {
                guard let test = Self.test(node, topology: topology, frames: &frames) else { continue }
                if let first = names[test.name] {
                    frames.reader.error(node, "a second test named '\(test.name)' (the first is at line \(first.mark?.line ?? 0))")
                }
                names[test.name] = node
                tests.append(test)
            }
        } else if top["tests"] == nil {
            frames.reader.error(root, "a test file needs tests: (a list)")
        }
        diagnostics += frames.diagnostics
        guard diagnostics.isEmpty, let topology else { return .failure(TopologyErrors(diagnostics)) }
        return .success(PacketTestFile(path: file, topology: topology, tests: tests))
    }

    static let testKeys = ["name", "frames", "expect", "drops", "ignore_ports", "down"]
    static let underlayKeys = ["remote", "vni", "sport"]

    /// A frame's or pattern's `underlay:` on a VXLAN port with VNIs `vnis`. Sending (`sending`),
    /// `remote` is required and `vni` defaults to the port's only network's; expecting, both are
    /// optional (not written: not compared) and `sport` is not allowed (it hashes the inner flow).
    private static func underlay(
        _ node: Node, port: String, vnis: [UInt32], sending: Bool, reader: inout YAMLReader
    ) -> (remote: IPv4Address?, vni: UInt32?, sourcePort: UInt16)? {
        let allowed = sending ? underlayKeys : ["remote", "vni"]
        guard let fields = reader.entries(node, what: "underlay", allowed: allowed) else { return nil }
        var remote: IPv4Address?
        if let entry = fields["remote"], let text = reader.string(entry.value, what: "underlay.remote") {
            remote = IPv4Address(text)
            if remote == nil { reader.error(entry.value, "underlay.remote '\(text)' is not an IPv4 address") }
        } else if sending && fields["remote"] == nil {
            reader.error(node, "underlay needs remote: (the outer packet's source address)")
        }
        var vni: UInt32?
        if let entry = fields["vni"], let value = reader.integer(entry.value, what: "underlay.vni", range: 0...0xFF_FFFF) {
            vni = UInt32(value)
        } else if sending && fields["vni"] == nil {
            if vnis.count == 1 { vni = vnis[0] } else {
                reader.error(node, "underlay needs vni: port '\(port)' carries VNIs \(vnis.map(String.init).joined(separator: ", "))")
            }
        }
        var sourcePort: UInt16 = 49152
        if let entry = fields["sport"], let value = reader.integer(entry.value, what: "underlay.sport", range: 1...65535) {
            sourcePort = UInt16(value)
        }
        return (remote, vni, sourcePort)
    }

    private static func test(_ node: Node, topology: Topology?, frames reader: inout FrameSpecReader) -> Test? {
        guard let fields = reader.reader.entries(node, what: "a test", allowed: testKeys) else { return nil }
        let before = reader.diagnostics.count
        let ports = topology.map { Set($0.ports.map(\.name)) }
        let sortedPorts = ports?.sorted() ?? []
        var unknownPorts = 0
        /// VXLAN port -> the VNIs of its networks.
        var tunnelVNIs: [String: [UInt32]] = [:]
        for port in topology?.ports ?? [] {
            guard case .vxlan = port.attachment, let topology else { continue }
            let names: [String]
            switch port.mode {
            case .access(let network): names = [network]
            case .trunk(let networks, _): names = networks
            }
            tunnelVNIs[port.name] = names.compactMap { name in topology.networks.first { $0.name == name }?.vni }
        }
        func checkPort(_ name: String, _ node: Node) {
            guard let ports, !ports.contains(name) else { return }
            unknownPorts += 1
            // The list and suggestions for the first few only: each costs a pass over every port.
            guard unknownPorts <= 8 else {
                reader.reader.error(node, "port '\(String(name.prefix(64)))' is not in the topology")
                return
            }
            let suggestion = reader.reader.closest(name, in: sortedPorts).map { " (did you mean '\($0)'?)" } ?? ""
            let list = sortedPorts.count > 32 ? sortedPorts.prefix(32).joined(separator: ", ") + ", ..." : sortedPorts.joined(separator: ", ")
            reader.reader.error(node, "port '\(String(name.prefix(64)))' is not in the topology\(suggestion); ports: \(list)")
        }
        var name = ""
        if let entry = fields["name"] { name = reader.reader.string(entry.value, what: "name") ?? "" } else {
            reader.reader.error(node, "a test needs a name")
        }
        var sent: [Frame] = []
        if let entry = fields["frames"], let list = reader.reader.sequence(entry.value, what: "frames") {
            var previous: Int64 = 0
            for frameNode in list {
                // port and at first, so their problems are reported with the frame's own.
                var portName: String?
                var at = previous
                if case .mapping = frameNode {
                    // Quietly: reader.frame below reports the frame's problems once.
                    var mapping: [String: Node] = [:]
                    for entry in reader.reader.quietEntries(frameNode) where mapping[entry.key] == nil {
                        mapping[entry.key] = entry.value
                    }
                    if let port = mapping["port"] {
                        portName = reader.reader.string(port, what: "port")
                        if let portName { checkPort(portName, port) }
                    } else {
                        reader.reader.error(frameNode, "a frame to send needs port: (where it arrives)")
                    }
                    if let time = mapping["at"] {
                        if let seconds = Self.seconds(time) { at = seconds } else {
                            reader.reader.error(time, "at must be seconds from the test's start (0 to 1000000, e.g. 0.5), not \(reader.reader.describe(time))")
                        }
                    }
                }
                previous = at
                guard let (spec, extras) = reader.frame(frameNode, what: "a frame to send", extra: ["port", "at", "underlay"])
                else { continue }
                var underlay: Underlay?
                if let portName, let vnis = tunnelVNIs[portName] {
                    if let entry = extras["underlay"] {
                        if let fields = Self.underlay(entry.value, port: portName, vnis: vnis, sending: true, reader: &reader.reader),
                            let remote = fields.remote, let vni = fields.vni
                        {
                            underlay = Underlay(remote: remote, vni: vni, sourcePort: fields.sourcePort)
                        }
                    } else {
                        reader.reader.error(
                            frameNode,
                            "a frame sent at vxlan port '\(portName)' needs underlay: { remote: ADDRESS, vni: N } (the outer packet's source and VNI; the layers are the inner frame)")
                    }
                } else if let entry = extras["underlay"] {
                    reader.reader.error(entry.keyNode, "underlay: is for a frame at a vxlan port; '\(portName ?? "?")' is not one")
                }
                guard let portName, let bytes = try? spec.build() else { continue }
                sent.append(Frame(port: portName, at: at, bytes: bytes, underlay: underlay))
            }
        } else if fields["frames"] == nil {
            reader.reader.error(node, "a test needs frames: (the frames to send)")
        }
        var expect: [String: [Expected]] = [:]
        if let entry = fields["expect"], let ports = reader.reader.entries(entry.value, what: "expect") {
            for port in ports {
                checkPort(port.key, port.keyNode)
                guard let list = reader.reader.sequence(port.value, what: "expect.\(port.key)") else { continue }
                let vnis = tunnelVNIs[port.key]
                expect[port.key] = list.compactMap { node in
                    guard let pattern = reader.pattern(node, extra: ["underlay"]) else { return nil }
                    var expected = Expected(pattern: pattern, remote: nil, vni: nil)
                    guard let underlayNode = reader.reader.quietEntries(node).first(where: { $0.key == "underlay" }) else {
                        return expected
                    }
                    guard let vnis else {
                        reader.reader.error(underlayNode.keyNode, "underlay: is for a frame at a vxlan port; '\(port.key)' is not one")
                        return nil
                    }
                    guard let fields = Self.underlay(underlayNode.value, port: port.key, vnis: vnis, sending: false, reader: &reader.reader)
                    else { return nil }
                    expected.remote = fields.remote
                    expected.vni = fields.vni
                    return expected
                }
            }
        }
        var drops: [DropReason: UInt64] = [:]
        if let entry = fields["drops"], let reasons = reader.reader.entries(entry.value, what: "drops") {
            let names = DropReason.allCases.map(\.name)
            for reason in reasons {
                guard let known = DropReason.allCases.first(where: { $0.name == reason.key }) else {
                    let suggestion = reader.reader.closest(reason.key, in: names).map { " (did you mean '\($0)'?)" } ?? ""
                    reader.reader.error(reason.keyNode, "'\(reason.key)' is not a drop reason\(suggestion); reasons: \(names.joined(separator: ", "))")
                    continue
                }
                if let count = reader.reader.integer(reason.value, what: "drops.\(reason.key)", range: 0...1_000_000_000) {
                    drops[known] = UInt64(count)
                }
            }
        }
        var ignored: Set<String> = []
        if let entry = fields["ignore_ports"], let list = reader.reader.sequence(entry.value, what: "ignore_ports") {
            for item in list {
                guard let port = reader.reader.string(item, what: "ignore_ports") else { continue }
                checkPort(port, item)
                if expect[port] != nil {
                    reader.reader.error(item, "port '\(port)' is both expected and ignored: one or the other")
                }
                ignored.insert(port)
            }
        }
        var down: [(Int, Int)] = []
        if let entry = fields["down"], let list = reader.reader.sequence(entry.value, what: "down") {
            for item in list {
                guard let text = reader.reader.string(item, what: "down") else { continue }
                let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
                let balancers = topology?.loadBalancers ?? []
                guard parts.count == 2, let balancer = balancers.firstIndex(where: { $0.name == parts[0] }),
                    let backend = balancers[balancer].backends.firstIndex(where: { $0.address.withPort($0.port) == parts[1] })
                else {
                    let known = balancers.flatMap { lb in lb.backends.map { "\(lb.name)/\($0.address.withPort($0.port))" } }
                    reader.reader.error(item, "down: '\(text)' is not a backend; backends: \(known.isEmpty ? "none" : known.joined(separator: ", "))")
                    continue
                }
                down.append((balancer, backend))
            }
        }
        guard reader.diagnostics.count == before else { return nil }
        return Test(name: name, frames: sent, expect: expect, drops: drops, ignorePorts: ignored, down: down)
    }

    /// `at`: seconds, whole or with a fraction, from 0 to a million; as nanoseconds.
    static func seconds(_ node: Node) -> Int64? {
        guard case .scalar(let scalar) = node, scalar.style == .plain, let value = Double(scalar.string),
            value.isFinite, value >= 0, value <= 1_000_000
        else { return nil }
        return Int64((value * 1_000_000_000).rounded())
    }
}
