import Foundation
import TapestryDatapath
import TapestryPcap
import TapestrySwitchCore
import TapestryTopology
import TapestryWire

/// Offline, deterministic run of a topology over pcap inputs (the contract's `replay`).
///
/// Frames from every input are merged by timestamp (ties: the order of the inputs, then file
/// order) and fed to their port; the datapath's clock is the frame's timestamp. Consecutive frames
/// of one port with one timestamp share a batch, so a batch never mixes ports or times. Every frame
/// that leaves a port is written to `DIR/PORT.pcap`, stamped with the timestamp of the frame that
/// caused it. Outputs are written under temporary names and renamed only when the whole replay
/// succeeded: a failed replay leaves nothing behind.
///
/// A VXLAN port's captures are its underlay's: raw IPv4 packets (link type IPV4) holding outer
/// IPv4, UDP and VXLAN headers. Each is decapsulated as the live port does (`VXLANEndpoint`);
/// what leaves the port is written encapsulated, one packet per remote it goes to.
public struct Replay {
    public struct Input: Sendable, Equatable {
        public var port: String
        public var path: String
        public init(port: String, path: String) {
            self.port = port
            self.path = path
        }
    }

    public var topology: Topology
    public var inputs: [Input]
    public var outputDirectory: String
    public var expectations: [Input]
    /// The tables' hash key: fixed, so a replay is reproducible; no result depends on it (the
    /// scenario tests run every scenario with a random key too).
    public var hashKey: HashKey = .fixed
    /// Receives the firewall log's lines (rules with `log: true`, `log_default`), each starting
    /// with the capture time of the batch that decided it: `t=SECONDS firewall: ...`.
    public var log: ((String) -> Void)?
    /// `--drops FILE.pcapng`: every dropped frame, as it arrived, with a frame comment
    /// `port PORT: STAGE: REASON: CAUSE` (batches then run with tracing on, to know the cause).
    public var dropsPath: String?

    /// Frames up to this length are replayed; longer ones are dropped as `oversize`.
    public static let maxFrameLength = SwitchCore.maxFrameLength

    public init(topology: Topology, inputs: [Input], outputDirectory: String, expectations: [Input] = []) {
        self.topology = topology
        self.inputs = inputs
        self.outputDirectory = outputDirectory
        self.expectations = expectations
    }

    public func run() throws -> ReplaySummary {
        let core = SwitchCore(topology: topology, hashKey: hashKey)
        let portNames = core.portNames
        for input in inputs + expectations where core.port(named: input.port) == nil {
            throw ReplayError.unknownPort(input.port, known: portNames)
        }
        var readers: [(port: PortID, reader: PcapReader)] = []
        for input in inputs {
            let port = core.port(named: input.port)!
            do {
                readers.append((port, try PcapReader(path: input.path, linkType: Self.linkType(core, port))))
            } catch { throw ReplayError.capture(error) }
        }
        var expected: [PortID: [(Int64, [UInt8])]] = [:]
        for expectation in expectations {
            let port = core.port(named: expectation.port)!
            do {
                expected[port] = try PcapReader(path: expectation.path, linkType: Self.linkType(core, port)).readAll()
            } catch { throw ReplayError.capture(error) }
        }
        // A directory this replay creates is removed again if the replay fails.
        let createdDirectory = !FileManager.default.fileExists(atPath: outputDirectory)
        do {
            try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        } catch {
            throw ReplayError.cannotCreateDirectory(outputDirectory, (error as NSError).localizedDescription)
        }
        var writers: [PcapWriter] = []
        for (index, name) in portNames.enumerated() {
            do {
                writers.append(
                    try PcapWriter(
                        path: (outputDirectory as NSString).appendingPathComponent("\(name).pcap"),
                        linkType: Self.linkType(core, PortID(index))))
            } catch {
                writers.forEach { $0.discard() }
                if createdDirectory { try? FileManager.default.removeItem(atPath: outputDirectory) }
                throw ReplayError.capture(error)
            }
        }
        var recorded: [PortID: [(Int64, [UInt8])]] = [:]
        for port in expected.keys { recorded[port] = [] }
        var dropsWriter: PcapngWriter?
        if let dropsPath {
            do {
                // A VXLAN port's refused underlay packets go on an interface of their own (raw IPv4).
                let underlays = portNames.indices.filter { Self.linkType(core, PortID($0)) == .rawIPv4 }
                    .map { (name: "\(portNames[$0]) (underlay)", linkType: PcapReader.LinkType.rawIPv4) }
                dropsWriter = try PcapngWriter(
                    path: dropsPath, interfaces: portNames.map { ($0, PcapReader.LinkType.ethernet) } + underlays)
            } catch {
                writers.forEach { $0.discard() }
                if createdDirectory { try? FileManager.default.removeItem(atPath: outputDirectory) }
                throw ReplayError.capture(error)
            }
        }
        do {
            var underlayInterface: [PortID: Int] = [:]
            for index in portNames.indices where Self.linkType(core, PortID(index)) == .rawIPv4 {
                underlayInterface[PortID(index)] = portNames.count + underlayInterface.count
            }
            let watcher = dropsWriter.map { Self.dropWatcher($0, portNames: portNames, underlays: underlayInterface) }
            try Self.feed(readers, into: core, log: log, watcher: watcher) { port, frame, timestamp in
                writers[Int(port)].write(frame, timestampNanoseconds: timestamp)
                if recorded[port] != nil { recorded[port]!.append((timestamp, Array(frame))) }
            }
            for writer in writers { try writer.commit() }
            try dropsWriter?.commit()
            let counters = core.datapath.counters
            var summary = ReplaySummary(
                topology: topology.name,
                ports: portNames.enumerated().map { index, name in
                    let port = counters.ports[index]
                    return ReplaySummary.PortLine(
                        name: name, framesIn: port.framesIn, bytesIn: port.bytesIn, framesOut: port.framesOut,
                        bytesOut: port.bytesOut)
                },
                drops: counters.drops, macLearned: counters.macLearned, macMoved: counters.macMoved,
                macEvicted: counters.macEvicted, differences: [], expectationsChecked: expectations.count)
            if !topology.loadBalancers.isEmpty {
                summary.loadBalancers = topology.loadBalancers.enumerated().map { index, balancer in
                    .init(
                        name: balancer.name,
                        backends: balancer.backends.enumerated().map { backendIndex, backend in
                            (backend.address.withPort(backend.port),
                             counters.backendSelections.isEmpty ? 0 : counters.backendSelections[index][backendIndex])
                        })
                }
                summary.loadBalancerUnresolved = counters.backendUnresolved
                summary.loadBalancerReleased = counters.heldReleased
                summary.loadBalancerExpired = counters.heldExpired
                summary.loadBalancerAnswers = counters.loadBalancerAnswers
            }
            if topology.firewall != nil {
                summary.firewall = .init(
                    created: counters.connectionsCreated, evicted: counters.connectionsEvicted,
                    related: counters.relatedPassed, tracked: counters.connections)
            }
            for expectation in expectations {
                let port = core.port(named: expectation.port)!
                summary.differences += Self.compare(
                    port: expectation.port, expected: expected[port]!, actual: recorded[port]!)
            }
            return summary
        } catch {
            writers.forEach { $0.discard() }
            dropsWriter?.discard()
            if createdDirectory { try? FileManager.default.removeItem(atPath: outputDirectory) }
            throw ReplayError.capture(error)
        }
    }

    /// What `trace` watches while `feed` runs: frames as they are appended to the batch (before
    /// any stage rewrites them), frames the driver drops before the pipeline, and each batch
    /// right after it ran with tracing on (`core.datapath.traceEvents`).
    struct Watcher {
        var appended: (PortID, PcapReader.Record) -> Void
        /// The frame, the reason and what caused it.
        var dropped: (PortID, PcapReader.Record, DropReason, String) -> Void
        var ran: (SwitchCore) -> Void
    }

    /// Writes every dropped frame to `writer` with its cause as the frame comment: frames the
    /// driver dropped (oversize, capture-truncated) as they come, a batch's drops after it ran,
    /// from the trace events of the stage that dropped them.
    /// `underlays`: the pcapng interface of each VXLAN port's underlay packets (those the driver
    /// drops before decapsulation are underlay packets; what a stage drops is the inner frame).
    static func dropWatcher(_ writer: PcapngWriter, portNames: [String], underlays: [PortID: Int]) -> Watcher {
        final class Pending {
            var frames: [(time: Int64, bytes: [UInt8])] = []
        }
        let pending = Pending()
        return Watcher(
            appended: { _, record in pending.frames.append((record.timestampNanoseconds, Array(record.bytes))) },
            dropped: { port, record, reason, cause in
                writer.write(
                    record.bytes, interface: underlays[port] ?? Int(port), timestampNanoseconds: record.timestampNanoseconds,
                    comment: "port \(portNames[Int(port)]): replay: \(reason.name): \(cause)")
            },
            ran: { core in
                let batch = core.batch
                let events = core.datapath.traceEvents
                for (index, frame) in pending.frames.enumerated() where index < batch.count {
                    guard case .drop(let reason) = batch.verdicts[index] else { continue }
                    let drop = TraceText.drop(
                        frame: index, events: events, original: frame.bytes, ingress: batch.ingressPort,
                        configuration: core.configuration, topology: core.topology)
                    let what = drop.map { "\($0.step.rawValue): \($0.reason): \($0.cause)" }
                        ?? "?: \(reason.name): (its trace events did not fit the buffer)"
                    writer.write(
                        frame.bytes, interface: Int(batch.ingressPort), timestampNanoseconds: frame.time,
                        comment: "port \(portNames[Int(batch.ingressPort)]): \(what)")
                }
                pending.frames.removeAll(keepingCapacity: true)
            })
    }

    /// Merges the inputs by timestamp and runs them through the switch in batches (the one loop
    /// `replay` and `trace` share).
    static func feed(
        _ readers: [(port: PortID, reader: PcapReader)], into core: SwitchCore, log: ((String) -> Void)?,
        watcher: Watcher? = nil, emit: (PortID, UnsafeRawBufferPointer, Int64) -> Void
    ) throws(PcapError) {
        var merge = try CaptureMerge(readers)
        let batch = core.batch
        var batchTime: Int64 = 0
        let endpoints = (0..<core.configuration.ports.count).map {
            VXLANEndpoint(configuration: core.configuration, port: PortID($0))
        }

        var latest = Int64.min  // the latest batch time: capture times may go back
        func writeLog(at time: Int64) {
            latest = max(latest, time)
            guard let log, core.datapath.firewallLogPending else { return }
            core.drainFirewallLog(now: Timestamp(nanoseconds: time)) { log("t=\(Self.seconds(time)) \($0)") }
        }

        func flush() {
            let ran = !batch.isEmpty
            core.run(now: Timestamp(nanoseconds: batchTime), tracing: watcher != nil) { port, queues in
                guard let endpoint = endpoints[Int(port)] else {
                    for index in 0..<queues.count(port) { emit(port, queues.frame(port, index), batchTime) }
                    return
                }
                for index in 0..<queues.count(port) where !endpoint.forEachUnderlayPacket(queues, index, { emit(port, $0, batchTime) }) {
                    core.datapath.countTransmitDrop(on: port, .oversize, bytes: queues.frame(port, index).count)
                }
            }
            if ran { watcher?.ran(core) }
            writeLog(at: batchTime)
            core.begin(port: batch.ingressPort)
        }

        while let (port, record) = try merge.next() {
            if !batch.isEmpty && (batch.ingressPort != port || batchTime != record.timestampNanoseconds || batch.isFull) {
                flush()
            }
            if record.bytes.count > Self.maxFrameLength || record.bytes.count < record.originalLength {
                // Too large for a frame buffer, or cut short by the capture's snap length: the
                // switch cannot send bytes it does not have.
                flush()
                let reason: DropReason = record.bytes.count < record.originalLength ? .captureTruncated : .oversize
                core.countDrop(on: port, reason, bytes: record.bytes.count)
                watcher?.dropped(
                    port, record, reason,
                    reason == .captureTruncated
                        ? "the capture holds \(record.bytes.count) of its \(record.originalLength) bytes"
                        : "longer than the switch's frame buffers (\(record.bytes.count) bytes)")
            } else if let endpoint = endpoints[Int(port)] {
                switch endpoint.admitUnderlay(record.bytes) {
                case .failure(let refusal):
                    flush()
                    core.countDrop(on: port, .tunnel, bytes: record.bytes.count)
                    watcher?.dropped(port, record, .tunnel, "\(refusal)")
                case .success(let admission):
                    if batch.isEmpty { core.begin(port: port) }
                    batchTime = record.timestampNanoseconds
                    let inner = UnsafeRawBufferPointer(rebasing: record.bytes[admission.inner])
                    batch.appendTunnelFrame(inner, network: admission.network, remote: admission.remote)
                    var decapsulated = record
                    decapsulated.bytes = inner
                    watcher?.appended(port, decapsulated)
                }
            } else {
                if batch.isEmpty { core.begin(port: port) }
                batchTime = record.timestampNanoseconds
                core.append(record.bytes)
                watcher?.appended(port, record)
            }
        }
        flush()
        core.finishInput()
        // The capture is over: the rules still over their rate say what they did not log.
        writeLog(at: max(latest, batchTime) &+ 1_000_000_000)
    }

    /// What a port's captures hold: Ethernet frames, or a VXLAN port's underlay packets.
    static func linkType(_ core: SwitchCore, _ port: PortID) -> PcapReader.LinkType {
        core.configuration.ports[Int(port)].tunnel == nil ? .ethernet : .rawIPv4
    }

    /// `SECONDS.NNNNNNNNN` for a capture timestamp, which may be any Int64 (a pcapng
    /// `if_tsoffset` reaches before 1970): `-1.500000000` before 1970, no trap at Int64.min.
    public static func seconds(_ nanoseconds: Int64) -> String { Timestamp(nanoseconds: nanoseconds).description }

    /// Differences between an expected and an actual capture of one port, aligned by content.
    public static func compare(port: String, expected: [(Int64, [UInt8])], actual: [(Int64, [UInt8])]) -> [ExpectDifference] {
        ExpectComparison.compare(port: port, expected: expected, actual: actual)
    }
}
