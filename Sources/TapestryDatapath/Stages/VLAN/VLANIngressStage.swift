import TapestryWire

/// Ingress VLAN classification: parses each frame once and decides its network.
///
/// Expects: a batch of frames from one port, verdicts `.pass`.
/// Emits: `metadata.parsed`, `metadata.network`, `metadata.consumedTag`, `metadata.priorityBits`.
/// Drops: `invalid` (malformed headers, per `FrameParser`, and offload headers whose checksum
/// offsets or GSO type do not fit the frame, per `VirtioNetHeader.fits`), `vlan`:
/// - access port: any frame tagged with a nonzero VID (even the port's own, as Open vSwitch does),
///   any 802.1ad S-tag outer, and any double-tagged frame. Untagged and priority-tagged (VID 0)
///   frames enter the port's network.
/// - trunk port: an 802.1Q tag whose VID is listed enters that network (an inner tag is payload);
///   untagged and priority-tagged frames enter `native`, or are dropped without one; an unlisted
///   VID or an 802.1ad outer tag is dropped.
/// - VXLAN port: the decapsulation named the network (its VNI's); an inner frame tagged with a
///   nonzero VID is dropped (`vlan`), as on an access port. A frame committed without a
///   network (`FrameBatch.commit` on a tunnel port) is dropped as `tunnel`.
/// See also: `VLANEgressStage` (the tagging side), docs/architecture.md.
struct VLANIngressStage {
    /// `classification[port * 4096 + vid]`: the network a frame with that VID enters on that port
    /// (VID 0 = untagged or priority-tagged), or `unclassified`. Precomputed so ingress is one load.
    private let classification: UnsafeMutablePointer<NetworkID>
    private let tunnelPorts: UnsafeMutablePointer<Bool>
    private let portCount: Int
    static let unclassified = NetworkID.max

    init(configuration: DatapathConfiguration) {
        portCount = configuration.ports.count
        classification = .allocate(capacity: max(1, portCount) * 4096)
        classification.initialize(repeating: Self.unclassified, count: max(1, portCount) * 4096)
        tunnelPorts = .allocate(capacity: max(1, portCount))
        tunnelPorts.initialize(repeating: false, count: max(1, portCount))
        for (index, port) in configuration.ports.enumerated() {
            let row = classification + index * 4096
            if port.tunnel != nil {
                tunnelPorts[index] = true
                continue
            }
            switch port.mode {
            case .access(let network):
                row[0] = network
            case .trunk(let networks, let native):
                for network in networks { row[Int(configuration.networks[Int(network)].vid)] = network }
                if let native { row[0] = native }
            }
        }
    }

    func deallocate() {
        classification.deallocate()
        tunnelPorts.deallocate()
    }

    func process<Trace: TraceSink>(_ batch: FrameBatch, accessPort: Bool, trace: inout Trace) {
        let row = classification + Int(batch.ingressPort) * 4096
        let tunnel = tunnelPorts[Int(batch.ingressPort)]
        let accessPort = accessPort || tunnel
        for index in 0..<batch.count {
            let parsed = FrameParser.parse(UnsafeRawBufferPointer(batch.frame(index)))
            batch.metadata[index].parsed = parsed
            batch.metadata[index].connection = -1
            batch.metadata[index].skipLearning = false
            batch.metadata[index].learnArrivingSource = false
            batch.metadata[index].cause = .none  // read by the firewall for what it decided
            if !parsed.isValid {
                batch.verdicts[index] = .drop(.invalid)
                if Trace.isRecording { trace.record(Self.malformed(index, batch)) }
                continue
            }
            // Most frames carry no offload: two byte loads decide. (`parsed` stays a `let`: a
            // mutable copy of it cost 35 instructions a frame.)
            let offload = batch.metadata[index].offload
            if (offload.flags | offload.gsoType) != 0 && !offload.fits(parsed) {
                batch.metadata[index].parsed.malformation = .offloadMismatch
                batch.verdicts[index] = .drop(.invalid)
                if Trace.isRecording {
                    trace.record(TraceEvent(frame: index, .malformed, c: Int32(Malformation.offloadMismatch.rawValue)))
                }
                continue
            }
            var vid: UInt16 = 0
            var consumed = false
            if parsed.tagCount > 0 {
                // Only a C-tag is a VLAN membership tag here; an S-tag outer is never accepted, and
                // an access port takes no second tag behind a priority tag either.
                if parsed.outerTPID != EtherType.vlan || (accessPort && parsed.tagCount > 1) {
                    batch.verdicts[index] = .drop(.vlan)
                    if Trace.isRecording {
                        trace.record(
                            parsed.outerTPID != EtherType.vlan
                                ? TraceEvent(frame: index, .serviceTagRefused, a: Int32(parsed.outerTPID))
                                : TraceEvent(frame: index, .doubleTagOnAccess))
                    }
                    continue
                }
                vid = parsed.outerTCI & 0x0FFF
                consumed = true
            }
            var network = row[Int(vid)]
            if tunnel {
                network = batch.metadata[index].network
                if network == Self.unclassified {
                    batch.verdicts[index] = .drop(.tunnel)
                    if Trace.isRecording { trace.record(TraceEvent(frame: index, .notDecapsulated)) }
                    continue
                }
                if vid != 0 { network = Self.unclassified }
            }
            if network == Self.unclassified {
                batch.verdicts[index] = .drop(.vlan)
                if Trace.isRecording {
                    trace.record(TraceEvent(frame: index, accessPort ? .tagOnAccess : .vidNotOnTrunk, a: Int32(vid)))
                }
                continue
            }
            batch.metadata[index].network = network
            batch.metadata[index].consumedTag = consumed
            batch.metadata[index].priorityBits = consumed ? parsed.outerTCI & 0xF000 : 0
            if Trace.isRecording {
                trace.record(
                    TraceEvent(
                        frame: index, .classified, a: Int32(network),
                        b: tunnel ? Int32(batch.metadata[index].remote) : Int32(vid),
                        c: tunnel ? 3 : !consumed ? 0 : vid == 0 ? 2 : 1))
            }
        }
    }

    /// A traced malformed frame: parsed again to locate the bad header (the per-frame parse does not).
    private static func malformed(_ index: Int, _ batch: FrameBatch) -> TraceEvent {
        let (parsed, location) = FrameParser.parseLocatingProblem(UnsafeRawBufferPointer(batch.frame(index)))
        return TraceEvent(
            frame: index, .malformed, a: Int32(truncatingIfNeeded: location.offset),
            b: Int32(truncatingIfNeeded: location.length), c: Int32(parsed.malformation?.rawValue ?? 0))
    }
}
