import Foundation
import TapestryDatapath
import TapestryPcap
import TapestrySwitchCore
import TapestryTopology
import TapestryWire

/// `tapestry trace`: replays captures exactly as `Replay` does (the same merge, batches and
/// `SwitchCore`, through `Replay.feed`) with tracing on, and renders for every frame what each
/// stage recorded deciding it, so what it explains is what `replay` and `run` do.
public struct Tracer {
    public var topology: Topology
    public var inputs: [Replay.Input]

    public init(topology: Topology, inputs: [Replay.Input]) {
        self.topology = topology
        self.inputs = inputs
    }

    /// The trace of every frame (or only frame `only`, counted from 1 in merged order), as text.
    public func run(only: Int? = nil) throws -> String {
        let core = SwitchCore(topology: topology)
        let names = core.portNames
        var readers: [(port: PortID, reader: PcapReader)] = []
        for input in inputs {
            guard let port = core.port(named: input.port) else {
                throw ReplayError.unknownPort(input.port, known: names)
            }
            do {
                readers.append((port, try PcapReader(path: input.path, linkType: Replay.linkType(core, port))))
            } catch { throw ReplayError.capture(error) }
        }
        var output: [String] = []
        var number = 0
        func header(_ number: Int, _ port: PortID, _ time: Int64, _ bytes: [UInt8]) -> String {
            "frame \(number): port \(names[Int(port)]), t=\(Replay.seconds(time)), \(bytes.count) bytes, \(TraceText.summary(bytes))"
        }
        /// The frames of the batch being filled, as they arrived: (number, time, bytes).
        var pending: [(number: Int, time: Int64, bytes: [UInt8])] = []
        let watcher = Replay.Watcher(
            appended: { _, record in
                number += 1
                if only == nil || only == number {
                    pending.append((number, record.timestampNanoseconds, Array(record.bytes)))
                } else {
                    pending.append((number, record.timestampNanoseconds, []))
                }
            },
            dropped: { port, record, reason, cause in
                number += 1
                guard only == nil || only == number else { return }
                // A VXLAN port's packets the driver drops are underlay packets, not frames.
                if core.configuration.ports[Int(port)].tunnel != nil {
                    output.append(
                        "frame \(number): port \(names[Int(port)]), t=\(Replay.seconds(record.timestampNanoseconds)), \(record.bytes.count) bytes (underlay)")
                } else {
                    output.append(header(number, port, record.timestampNanoseconds, Array(record.bytes)))
                }
                output.append("  dropped (\(reason.name)): \(cause)")
            },
            ran: { core in
                let events = core.datapath.traceEvents
                for (index, frame) in pending.enumerated() where only == nil || only == frame.number {
                    output.append(header(frame.number, core.batch.ingressPort, frame.time, frame.bytes))
                    output.append(
                        contentsOf: TraceText.describe(
                            frame: index, events: events, original: frame.bytes, ingress: core.batch.ingressPort,
                            configuration: core.configuration, topology: core.topology))
                }
                if core.datapath.traceEventsLost > 0 {
                    output.append("  (\(core.datapath.traceEventsLost) trace events of this batch did not fit and are not shown)")
                }
                pending.removeAll(keepingCapacity: true)
            })
        do {
            try Replay.feed(readers, into: core, log: nil, watcher: watcher) { _, _, _ in }
        } catch { throw ReplayError.capture(error) }
        if let only, only > number { throw ReplayError.noSuchFrame(only, count: number) }
        return output.joined(separator: "\n")
    }
}
