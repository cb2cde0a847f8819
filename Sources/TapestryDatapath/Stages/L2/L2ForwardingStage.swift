import TapestryWire

/// L2 learning and forwarding per (network, MAC).
///
/// Expects: frames classified by `VLANIngressStage` (`metadata.network`).
/// Emits: `.forward(port)` for a destination learned on another port, `.flood` for broadcast,
/// multicast and unknown unicast.
/// Drops: `multicast-source` (never learned), `hairpin` (destination learned on the ingress port).
/// Frames are handled strictly in order, learning before lookup, so a batch decides exactly what
/// the same frames one by one would.
struct L2ForwardingStage {
    let table: MACTable

    /// Learning events, for counters.
    struct Events {
        var learned: UInt64 = 0
        var moved: UInt64 = 0
        /// Learned by evicting another entry (table or port limit full).
        var evicted: UInt64 = 0
    }

    func process<Trace: TraceSink>(_ batch: FrameBatch, now: Timestamp, events: inout Events, trace: inout Trace) {
        let ingress = batch.ingressPort
        for index in 0..<batch.count where !batch.verdicts[index].isDrop {
            let frame = UnsafeRawBufferPointer(batch.frame(index))
            let source = frame.mac(6)
            if source.isMulticast {
                batch.verdicts[index] = .drop(.multicastSource)
                if Trace.isRecording { trace.record(TraceEvent(frame: index, .multicastSource)) }
                continue
            }
            let network = batch.metadata[index].network
            let learnsArriving = batch.metadata[index].learnArrivingSource && !batch.metadata[index].arrivingSource.isMulticast
            if !batch.metadata[index].skipLearning || learnsArriving {
                let learned = learnsArriving ? batch.metadata[index].arrivingSource : source
                let result = table.learn(network, learned, port: ingress, remote: batch.metadata[index].remote, now: now)
                switch result {
                case .refreshed: break
                case .learned: events.learned &+= 1
                case .moved: events.moved &+= 1
                case .learnedAfterEviction: events.learned &+= 1; events.evicted &+= 1
                }
                if Trace.isRecording {
                    switch result {
                    case .refreshed: trace.record(TraceEvent(frame: index, .learned, a: 0))
                    case .learned: trace.record(TraceEvent(frame: index, .learned, a: 1))
                    case .moved(let from): trace.record(TraceEvent(frame: index, .learned, a: 2, b: Int32(from)))
                    case .learnedAfterEviction: trace.record(TraceEvent(frame: index, .learned, a: 3))
                    }
                }
            } else if Trace.isRecording {
                trace.record(TraceEvent(frame: index, .learningSkipped))
            }
            // An earlier stage already decided where this frame goes (a load balancer's answer).
            guard case .pass = batch.verdicts[index] else {
                if Trace.isRecording { trace.record(TraceEvent(frame: index, .alreadyDecided)) }
                continue
            }
            let destination = frame.mac(0)
            if destination.isMulticast {
                batch.verdicts[index] = .flood
                if Trace.isRecording {
                    trace.record(TraceEvent(frame: index, .flooded, a: destination.isBroadcast ? 1 : 2))
                }
            } else if let location = table.locate(network, destination, now: now) {
                let port = location.port
                // One VXLAN port is one port: a frame from one of its remotes is never sent on to
                // another (split horizon, as in a full mesh of tunnels each remote floods itself).
                batch.verdicts[index] = port == ingress ? .drop(.hairpin) : .forward(port)
                batch.metadata[index].remote = location.remote
                if Trace.isRecording {
                    trace.record(
                        TraceEvent(frame: index, port == ingress ? .hairpin : .fdbHit, a: Int32(port), b: Int32(location.remote)))
                }
            } else {
                batch.verdicts[index] = .flood
                if Trace.isRecording { trace.record(TraceEvent(frame: index, .flooded, a: 0)) }
            }
        }
    }
}
