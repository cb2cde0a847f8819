import TapestryControl
import TapestryDatapath
import TapestrySwitchCore
import TapestryTopology
import TapestryWire

#if canImport(Glibc)
import Glibc
#endif

/// Live tracing: `ctl trace PORT [COUNT] [SECONDS]` explains, stage by stage, the next COUNT
/// frames (default 10, at most 1000) arriving on PORT within SECONDS (default 10, at most 60).
/// While it is armed, that port's batches run with tracing on (the stages record what they
/// decide) at the usual batch size; other ports and untraced time run with tracing off.
extension LiveSwitch {
    struct PendingTrace {
        /// The control thread's client that asked (its answer goes back through the channel).
        var client: UInt64
        var port: PortID
        var remaining: Int
        var deadline: Int64
        var lines: [String] = []
        var frames = 0
    }

    /// Arms a trace of `count` frames on the port named `name` within `seconds` (both already
    /// within their bounds, `ControlRequest` checked them) for `client`; nil means armed
    /// (answered when it ends), else the refusal.
    func armTrace(port name: String, count: Int, seconds: Int, client: UInt64) -> ControlResult? {
        guard pendingTrace == nil else { return .failed("a trace is already running") }
        guard let port = topology.ports.firstIndex(where: { $0.name == name }) else {
            let names = topology.ports.map(\.name)
            return .refused("unknown port '\(name)'\(DidYouMean.suffix(name, in: names)); ports: \(names.joined(separator: ", "))")
        }
        pendingTrace = PendingTrace(
            client: client, port: PortID(port), remaining: min(1000, max(1, count)),
            deadline: Self.wallClock().nanoseconds + Int64(min(60, max(1, seconds))) * 1_000_000_000)
        return nil
    }

    func serviceTraced(port: PortID) {
        guard var trace = pendingTrace else { return }
        let name = topology.ports[Int(port)].name
        receive(port, limit: batch.capacity)
        defer { finishClosing(port) }
        guard !batch.isEmpty else { return }
        let now = Self.wallClock()
        // Copies of the frames as they arrived, before any stage rewrites them (only those traced).
        let traced = min(trace.remaining, batch.count)
        let originals = (0..<traced).map { Array(batch.frame($0)) }
        core.run(now: now, tracing: true) { port, queues in transmit(port, queues) }
        let events = datapath.traceEvents
        for (index, original) in originals.enumerated() {
            trace.frames += 1
            trace.lines.append("frame \(trace.frames): port \(name), t=\(now), \(original.count) bytes, \(TraceText.summary(original))")
            trace.lines.append(
                contentsOf: TraceText.describe(
                    frame: index, events: events, original: original, ingress: port, configuration: core.configuration,
                    topology: core.topology))
        }
        if datapath.traceEventsLost > 0 {
            trace.lines.append("  (\(datapath.traceEventsLost) trace events of this batch did not fit and are not shown)")
        }
        trace.remaining -= traced
        pendingTrace = trace
        if trace.remaining == 0 { finishTrace() }
    }

    func finishTraceIfDue() {
        guard let trace = pendingTrace, Self.wallClock().nanoseconds >= trace.deadline else { return }
        finishTrace()
    }

    private func finishTrace() {
        guard let trace = pendingTrace else { return }
        pendingTrace = nil
        channel.answer(.traced(frames: trace.frames, lines: trace.lines), for: trace.client)
        channel.wakeServer()
    }
}
