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
        public var bytes: [UInt8]
    }

    public struct Test: Sendable {
        public var name: String
        public var frames: [Frame]
        /// Port -> its expected frames, in order.
        public var expect: [String: [FramePattern]]
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

    private static func test(_ node: Node, topology: Topology?, frames reader: inout FrameSpecReader) -> Test? {
        guard let fields = reader.reader.entries(node, what: "a test", allowed: testKeys) else { return nil }
        let before = reader.diagnostics.count
        let ports = topology.map { Set($0.ports.map(\.name)) }
        let sortedPorts = ports?.sorted() ?? []
        var unknownPorts = 0
        let tunnelPorts = Set(topology?.ports.filter { if case .vxlan = $0.attachment { true } else { false } }.map(\.name) ?? [])
        /// `carriesFrames`: the port sends or receives the test's frames (not `ignore_ports`).
        func checkPort(_ name: String, _ node: Node, carriesFrames: Bool = true) {
            if carriesFrames && tunnelPorts.contains(name) {
                // Its traffic is the underlay's (outer IPv4, UDP, VXLAN), which the frame syntax
                // does not describe yet.
                reader.reader.error(
                    node,
                    "port '\(name)' is a vxlan port: test files do not describe its underlay packets yet; list it in ignore_ports, or test it with replay and a raw-IPv4 capture")
                return
            }
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
                guard let (spec, _) = reader.frame(frameNode, what: "a frame to send", extra: ["port", "at"]),
                    let portName, let bytes = try? spec.build()
                else { continue }
                sent.append(Frame(port: portName, at: at, bytes: bytes))
            }
        } else if fields["frames"] == nil {
            reader.reader.error(node, "a test needs frames: (the frames to send)")
        }
        var expect: [String: [FramePattern]] = [:]
        if let entry = fields["expect"], let ports = reader.reader.entries(entry.value, what: "expect") {
            for port in ports {
                checkPort(port.key, port.keyNode)
                guard let list = reader.reader.sequence(port.value, what: "expect.\(port.key)") else { continue }
                expect[port.key] = list.compactMap { reader.pattern($0) }
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
                checkPort(port, item, carriesFrames: false)
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
