import TapestryControl
import TapestryDatapath
import TapestrySwitchCore
import TapestryWire

#if canImport(Glibc)
import Glibc
#endif

/// Live tracing: `ctl trace PORT [COUNT] [SECONDS]` explains, stage by stage, the next COUNT
/// frames (default 10, at most 1000) arriving on PORT within SECONDS (default 10, at most 60).
/// While it is armed that port is read one frame per batch, so each frame is explained on its
/// own; other ports and untraced time run exactly as without tracing.
extension LiveSwitch {
    struct PendingTrace {
        /// The control thread's client that asked (its answer goes back through the channel).
        var client: UInt64
        var port: PortID
        var remaining: Int
        var deadline: Int64
        var lines: [String] = []
        var frames = 0
        var lastState: [Int32: String] = [:]
    }

    /// Arms a trace of `count` frames on the port named `name` within `seconds` (both already
    /// within their bounds, `ControlRequest` checked them) for `client`; nil means armed
    /// (answered when it ends), else the refusal.
    func armTrace(port name: String, count: Int, seconds: Int, client: UInt64) -> ControlResult? {
        guard pendingTrace == nil else { return .failed("a trace is already running") }
        guard let port = topology.ports.firstIndex(where: { $0.name == name }) else {
            return .refused("unknown port '\(name)'; ports: \(topology.ports.map(\.name).joined(separator: ", "))")
        }
        pendingTrace = PendingTrace(
            client: client, port: PortID(port), remaining: min(1000, max(1, count)),
            deadline: Self.wallClock().nanoseconds + Int64(min(60, max(1, seconds))) * 1_000_000_000)
        return nil
    }

    func serviceTraced(port: PortID) {
        guard var trace = pendingTrace else { return }
        let names = topology.ports.map(\.name)
        while trace.remaining > 0 {
            receive(port, limit: 1)
            guard !batch.isEmpty else { break }
            defer { finishClosing() }
            let original = Array(batch.frame(0))
            let now = Self.wallClock()
            trace.frames += 1
            trace.remaining -= 1
            trace.lines.append("frame \(trace.frames): port \(names[Int(port)]), t=\(now), \(original.count) bytes, \(TraceText.summary(original))")
            var decided = false
            let topology = core.topology
            core.run(now: now, observe: { step in
                guard !decided else { return }
                trace.lines.append(contentsOf: TraceText.describe(step, self.datapath, self.batch, topology, &trace.lastState))
                if self.batch.verdicts[0].isDrop { decided = true }
            }, transmit: { port, queues in self.transmit(port, queues) })
        }
        finishClosing()
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
