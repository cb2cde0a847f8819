import TapestryDatapath
import TapestrySwitchCore
import TapestryTopology
import TapestryWire

/// A whole switch in memory: the `SwitchCore` the live switch runs, with `MemoryPort`s and a
/// `ManualClock`, the role of SwiftNIO's `EmbeddedChannel`. Tests inject frames on ports, run,
/// and read what left every port; no devices, root or real time involved.
public final class EmbeddedSwitch {
    public let topology: Topology
    public let core: SwitchCore
    public var datapath: Datapath { core.datapath }
    public var clock = ManualClock()
    public let ports: [MemoryPort]
    private var pending: [(port: PortID, bytes: [UInt8])] = []

    public init(topology: Topology, batchCapacity: Int = SwitchCore.batchCapacity) {
        self.topology = topology
        core = SwitchCore(topology: topology, batchCapacity: batchCapacity)
        ports = core.portNames.map { MemoryPort(name: $0) }
    }

    /// Builds a switch from YAML text; traps on an invalid topology (tests give valid ones).
    public convenience init(yaml: String, batchCapacity: Int = SwitchCore.batchCapacity) {
        switch TopologyLoader.parse(yaml: yaml, file: "test.yaml") {
        case .success(let topology): self.init(topology: topology, batchCapacity: batchCapacity)
        case .failure(let errors): fatalError("invalid test topology:\n\(errors)")
        }
    }

    public func port(_ name: String) -> MemoryPort {
        guard let port = ports.first(where: { $0.name == name }) else { fatalError("no port \(name)") }
        return port
    }

    /// Queues a frame to arrive on `port`; `runUntilIdle()` delivers it.
    public func inject(_ frame: [UInt8], on port: String) {
        guard let id = core.port(named: port) else { fatalError("no port \(port)") }
        pending.append((id, frame))
    }

    /// Runs every queued frame through the pipeline at the clock's current time, in batches of
    /// consecutive frames from one port.
    public func runUntilIdle() {
        var index = 0
        let batch = core.batch
        while index < pending.count {
            core.begin(port: pending[index].port)
            while index < pending.count, pending[index].port == batch.ingressPort, !batch.isFull {
                let appended = pending[index].bytes.withUnsafeBytes { core.append($0) }
                precondition(appended, "frame larger than the switch's buffers")
                index += 1
            }
            core.run(now: clock.now) { port, queues in
                for frame in 0..<queues.count(port) { ports[Int(port)].outbound.append(Array(queues.frame(port, frame))) }
            }
            takeFirewallLog()
        }
        pending.removeAll()
    }

    /// Runs `frames` from `port` as one batch with tracing on, as `ctl trace` does, and returns
    /// each frame's trace lines (`TraceText.describe`); what they send stays on the ports.
    public func trace(_ frames: [[UInt8]], on port: String) -> [[String]] {
        runUntilIdle()
        guard let id = core.port(named: port) else { fatalError("no port \(port)") }
        core.begin(port: id)
        for frame in frames {
            let appended = frame.withUnsafeBytes { core.append($0) }
            precondition(appended, "more frames than a batch holds, or one larger than the switch's buffers")
        }
        core.run(now: clock.now, tracing: true) { port, queues in
            for frame in 0..<queues.count(port) { ports[Int(port)].outbound.append(Array(queues.frame(port, frame))) }
        }
        takeFirewallLog()
        let events = datapath.traceEvents
        return frames.indices.map {
            TraceText.describe(
                frame: $0, events: events, original: frames[$0], ingress: id, configuration: core.configuration,
                topology: core.topology)
        }
    }

    /// The firewall log's lines so far (rules with `log: true`, `log_default`).
    public private(set) var firewallLog: [String] = []

    /// Takes the lines the firewall log holds at the clock's time (also the "not logged" lines
    /// of rules whose second has ended: advance the clock, then call this).
    public func takeFirewallLog() {
        core.drainFirewallLog(now: clock.now) { firewallLog.append($0) }
    }

    /// Injects one frame, runs, and returns what left each port (by name; ports that sent nothing
    /// are absent).
    @discardableResult
    public func send(_ frame: [UInt8], on port: String) -> [String: [[UInt8]]] {
        inject(frame, on: port)
        runUntilIdle()
        return drainAll()
    }

    /// Everything sent since the last drain, by port name.
    public func drainAll() -> [String: [[UInt8]]] {
        var result: [String: [[UInt8]]] = [:]
        for port in ports {
            let frames = port.drainSent()
            if !frames.isEmpty { result[port.name] = frames }
        }
        return result
    }

    public var counters: DatapathCounters { datapath.counters }

    /// Drops by reason name, for assertions.
    public var drops: [String: UInt64] {
        Dictionary(uniqueKeysWithValues: counters.drops.map { ($0.key.name, $0.value) })
    }

    /// Frames sent but never read by the test, per port; a test that ends with leftovers missed
    /// something (`EmbeddedChannel.finish()`).
    public func finish() -> [String: Int] {
        var leftovers: [String: Int] = [:]
        for port in ports where port.unreadCount > 0 { leftovers[port.name] = port.unreadCount }
        return leftovers
    }
}
