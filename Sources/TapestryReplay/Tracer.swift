import Foundation
import TapestryDatapath
import TapestryPcap
import TapestrySwitchCore
import TapestryTopology
import TapestryWire

/// `tapestry trace`: replays captures like `Replay` (the same merge, the same `SwitchCore`), one
/// frame per batch, and says for every frame what each stage decided and why, through the
/// datapath's observer hook, so what it explains is what `replay` and `run` do.
public struct Tracer {
    public var topology: Topology
    public var inputs: [Replay.Input]

    public init(topology: Topology, inputs: [Replay.Input]) {
        self.topology = topology
        self.inputs = inputs
    }

    /// The trace of every frame (or only frame `only`, counted from 1 in merged order), as text.
    public func run(only: Int? = nil) throws -> String {
        let core = SwitchCore(topology: topology, batchCapacity: 1)
        let names = core.portNames
        var readers: [(port: PortID, reader: PcapReader)] = []
        for input in inputs {
            guard let port = core.port(named: input.port) else {
                throw ReplayError.unknownPort(input.port, known: names)
            }
            do { readers.append((port, try PcapReader(path: input.path))) } catch { throw ReplayError.capture(error) }
        }
        var merge: CaptureMerge
        do { merge = try CaptureMerge(readers) } catch { throw ReplayError.capture(error) }
        var output: [String] = []
        var number = 0
        /// The TCP state each connection was left in, for "before -> after".
        var lastState: [Int32: String] = [:]
        while true {
            let next: (port: PortID, record: PcapReader.Record)?
            do { next = try merge.next() } catch { throw ReplayError.capture(error) }
            guard let (port, record) = next else { break }
            number += 1
            let now = Timestamp(nanoseconds: record.timestampNanoseconds)
            var lines: [String] = []
            let original = Array(record.bytes)
            core.begin(port: port)
            if record.bytes.count < record.originalLength {
                // As replay: the switch cannot send bytes the capture does not have.
                lines.append("  dropped (capture-truncated): the capture holds \(record.bytes.count) of its \(record.originalLength) bytes")
            } else if record.bytes.count > Replay.maxFrameLength || !core.append(record.bytes) {
                lines.append("  dropped (oversize): longer than the switch's frame buffers")
            } else {
                var decided = false  // a stage dropped it: later stages skip it
                let topology = core.topology
                core.run(now: now, observe: { step in
                    guard !decided else { return }
                    lines.append(contentsOf: TraceText.describe(step, core.datapath, core.batch, topology, &lastState))
                    if core.batch.verdicts[0].isDrop { decided = true }
                }, transmit: { _, _ in })
            }
            if only == nil || only == number {
                output.append("frame \(number): port \(names[Int(port)]), t=\(Replay.seconds(record.timestampNanoseconds)), \(original.count) bytes, \(TraceText.summary(original))")
                output.append(contentsOf: lines)
            }
        }
        if let only, only > number { output.append("no frame \(only): the captures hold \(number) frames") }
        return output.joined(separator: "\n")
    }
}
