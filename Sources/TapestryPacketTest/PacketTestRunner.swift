import TapestryDatapath
import TapestryFrameSyntax
import TapestrySwitchCore
import TapestryTopology
import TapestryWire

/// Runs a test file's tests, each on a fresh switch driven as replay drives one: frames in `at`
/// order (ties: list order), consecutive frames of one port and one time in one batch, the
/// clock at a fixed instant plus `at`.
public enum PacketTestRunner {
    /// The instant every test's clock starts at (2023-11-14 22:13:20 UTC).
    public static let start: Int64 = 1_700_000_000_000_000_000

    public struct Result: Sendable {
        public var file: String
        public var name: String
        /// Nil when the test passed.
        public var problem: String?
        /// For a failure: each port's actual frames in the frame syntax.
        public var detail: [String]
        public var passed: Bool { problem == nil }
    }

    public static func run(_ file: PacketTestFile, filter: String? = nil) -> [Result] {
        file.tests.filter { filter == nil || $0.name.contains(filter!) }.map { run($0, in: file) }
    }

    static func run(_ test: PacketTestFile.Test, in file: PacketTestFile) -> Result {
        let core = SwitchCore(topology: file.topology)
        // Probes never run here: a backend is down only when the test says so, as if its
        // health checks had failed.
        for (balancer, backend) in test.down {
            core.datapath.setBackendUp(balancer: balancer, backend: backend, false, now: Timestamp(nanoseconds: start))
        }
        let names = core.portNames
        // A VXLAN port's traffic is its underlay's: what it sends is each outer packet, per remote.
        let tunnels = (0..<names.count).map { VXLANEndpoint(configuration: core.configuration, port: PortID($0)) }
        var sent = [[[UInt8]]](repeating: [], count: names.count)
        let order = test.frames.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }.map(\.element)
        var index = 0
        while index < order.count {
            let port = core.port(named: order[index].port)!
            let time = order[index].at
            core.begin(port: port)
            while index < order.count, order[index].port == names[Int(port)], order[index].at == time, !core.batch.isFull {
                if let tunnel = tunnels[Int(port)], let underlay = order[index].underlay {
                    arrive(order[index].bytes, underlay: underlay, at: tunnel, port: port, core: core)
                } else {
                    order[index].bytes.withUnsafeBytes { _ = core.append($0) }
                }
                index += 1
            }
            core.run(now: Timestamp(nanoseconds: start &+ time)) { out, queues in
                guard let tunnel = tunnels[Int(out)] else {
                    for frame in 0..<queues.count(out) { sent[Int(out)].append(Array(queues.frame(out, frame))) }
                    return
                }
                for frame in 0..<queues.count(out) where !tunnel.forEachUnderlayPacket(queues, frame, { sent[Int(out)].append(Array($0)) }) {
                    core.datapath.countTransmitDrop(on: out, .oversize, bytes: queues.frame(out, frame).count)
                }
            }
        }
        core.finishInput()
        var problems: [String] = []
        for (number, name) in names.enumerated() where !test.ignorePorts.contains(name) {
            let frames = sent[number]
            let patterns = test.expect[name] ?? []
            if let problem = compare(port: name, frames, patterns, tunnel: tunnels[number]) { problems.append(problem) }
        }
        let counters = core.datapath.counters
        for (reason, expected) in test.drops.sorted(by: { $0.key.name < $1.key.name }) {
            let got = counters.drops[reason] ?? 0
            if got != expected { problems.append("drops \(reason.name): expected \(expected), got \(got)") }
        }
        guard let first = problems.first else { return Result(file: file.path, name: test.name, problem: nil, detail: []) }
        var detail = problems.dropFirst().map { "also: \($0)" }
        for (number, name) in names.enumerated() {
            detail.append("port \(name) sent \(sent[number].count) frame\(sent[number].count == 1 ? "" : "s")\(sent[number].isEmpty ? "" : ":")")
            for packet in sent[number] {
                var frame = packet
                var lines: [String] = []
                // On a VXLAN port: the outer packet's destination and VNI, then the inner frame,
                // as a test file writes an expected frame there.
                if let tunnel = tunnels[number], let outer = Self.outer(packet, tunnel: tunnel) {
                    lines.append("underlay: { remote: \(outer.remote), vni: \(outer.vni) }")
                    frame = outer.inner
                }
                let spec = FrameSpec.decodeForComparison(frame)
                lines += spec.text().split(separator: "\n").map(String.init)
                detail.append("  - " + (lines.first ?? ""))
                detail += lines.dropFirst().map { "    " + $0 }
                let built = (try? spec.build()) ?? []
                if built != frame { detail.append("    # \(frame.count) bytes; what follows the layers is not shown") }
            }
        }
        let dropped = counters.drops.filter { $0.value > 0 }.sorted { $0.key.name < $1.key.name }
        detail.append("drops: " + (dropped.isEmpty ? "none" : dropped.map { "\($0.key.name) \($0.value)" }.joined(separator: ", ")))
        return Result(file: file.path, name: test.name, problem: first, detail: detail)
    }

    /// A frame sent at a VXLAN port: wrapped in the outer headers its `underlay` says and
    /// admitted as the port admits a packet off the wire (a `tunnel` drop when it refuses it).
    static func arrive(
        _ inner: [UInt8], underlay: PacketTestFile.Underlay, at tunnel: VXLANEndpoint, port: PortID, core: SwitchCore
    ) {
        var packet = [UInt8](repeating: 0, count: VXLAN.underlayHeaderLength) + inner
        let written = packet.withUnsafeMutableBytes { buffer in
            VXLAN.writeUnderlay(
                at: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<VXLAN.underlayHeaderLength]), innerLength: inner.count,
                vni: underlay.vni, source: underlay.remote, destination: tunnel.tunnel.local,
                sourcePort: underlay.sourcePort, destinationPort: tunnel.tunnel.udpPort)
        }
        let admission = packet.withUnsafeBytes { tunnel.admitUnderlay($0) }
        guard written != nil, case .success(let admitted) = admission else {
            core.countDrop(on: port, .tunnel, bytes: packet.count)
            return
        }
        packet.withUnsafeBytes {
            _ = core.batch.appendTunnelFrame(
                UnsafeRawBufferPointer(rebasing: $0[admitted.inner]), network: admitted.network, remote: admitted.remote)
        }
    }

    /// An outer packet a VXLAN port sent, taken apart: its destination, VNI and inner frame.
    static func outer(_ packet: [UInt8], tunnel: VXLANEndpoint) -> (remote: IPv4Address, vni: UInt32, inner: [UInt8])? {
        packet.withUnsafeBytes { bytes in
            guard case .success(let underlay) = VXLAN.decodeUnderlay(bytes, port: tunnel.tunnel.udpPort),
                case .success(let vni) = VXLAN.decode(UnsafeRawBufferPointer(rebasing: bytes[underlay.payload]))
            else { return nil }
            return (underlay.destination, vni, Array(bytes[(underlay.payload.lowerBound + VXLAN.headerLength)..<underlay.payload.upperBound]))
        }
    }

    /// The first way a port's frames fail its patterns (one to one, in order). On a VXLAN port
    /// the frames are outer packets: their destination and VNI are compared with what the
    /// pattern's `underlay` writes, the pattern with the inner frame.
    static func compare(port: String, _ frames: [[UInt8]], _ patterns: [PacketTestFile.Expected], tunnel: VXLANEndpoint? = nil) -> String? {
        for (index, expected) in patterns.enumerated() {
            guard index < frames.count else {
                return "port \(port): expected \(patterns.count) frame\(patterns.count == 1 ? "" : "s"), got \(frames.count) (expected frame \(index + 1) did not come)"
            }
            var frame = frames[index]
            if let tunnel {
                guard let outer = outer(frame, tunnel: tunnel) else {
                    return "port \(port), frame \(index + 1): not a VXLAN packet the port could send"
                }
                if let remote = expected.remote, remote != outer.remote {
                    return "port \(port), frame \(index + 1): underlay.remote expected \(remote), got \(outer.remote)"
                }
                if let vni = expected.vni, vni != outer.vni {
                    return "port \(port), frame \(index + 1): underlay.vni expected \(vni), got \(outer.vni)"
                }
                frame = outer.inner
            }
            if let (field, expected, actual) = expected.pattern.mismatch(frame) {
                return "port \(port), frame \(index + 1): \(field) expected \(expected), got \(actual)"
            }
        }
        if frames.count > patterns.count {
            return "port \(port): expected \(patterns.count) frame\(patterns.count == 1 ? "" : "s"), got \(frames.count)"
        }
        return nil
    }
}
