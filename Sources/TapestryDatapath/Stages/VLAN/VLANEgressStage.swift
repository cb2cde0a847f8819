import TapestryWire

/// Egress: copies each forwarded frame into its output port's transmit queue, tagged or untagged
/// for that port, and expands floods to every other port of the frame's network.
///
/// Tagging: an access port, and a trunk port in its native network, send untagged; a trunk port
/// in another network sends one 802.1Q tag (TPID 0x8100) with that network's VID and the PCP/DEI
/// of the tag the frame arrived with (0 if it had none). The tag is written during the copy, so
/// frames are never moved in place.
/// A VXLAN port sends every network untagged (its VNI says the network) and queues, with each
/// frame, the remote it goes to (a flood: all of them) and a hash of its inner flow.
/// Drops: `no-destination` when a flood has no other port to go to.
struct VLANEgressStage {
    /// `egressVID[port * networkCount + network]`: 0 to send untagged, else the VID to tag with.
    private let egressVID: UnsafeMutablePointer<UInt16>
    /// Ports of each network, flattened: `members[memberStart[n] ..< memberStart[n + 1]]`.
    private let members: UnsafeMutablePointer<PortID>
    private let memberStart: UnsafeMutablePointer<Int>
    private let tunnelPorts: UnsafeMutablePointer<Bool>
    private let networkVNI: UnsafeMutablePointer<UInt32>
    private let networkCount: Int

    init(configuration: DatapathConfiguration) {
        networkCount = configuration.networks.count
        let portCount = configuration.ports.count
        egressVID = .allocate(capacity: max(1, portCount * networkCount))
        egressVID.initialize(repeating: 0, count: max(1, portCount * networkCount))
        tunnelPorts = .allocate(capacity: max(1, portCount))
        tunnelPorts.initialize(repeating: false, count: max(1, portCount))
        networkVNI = .allocate(capacity: max(1, networkCount))
        networkVNI.initialize(repeating: 0, count: max(1, networkCount))
        for (index, network) in configuration.networks.enumerated() { networkVNI[index] = network.vni }
        var lists = [[PortID]](repeating: [], count: networkCount)
        for (index, port) in configuration.ports.enumerated() {
            tunnelPorts[index] = port.tunnel != nil
            for network in port.networks {
                lists[Int(network)].append(PortID(index))
                var vid = configuration.networks[Int(network)].vid
                switch port.mode {
                case .access: vid = 0
                case .trunk(_, let native): if native == network || port.tunnel != nil { vid = 0 }
                }
                egressVID[index * networkCount + Int(network)] = vid
            }
        }
        let total = lists.reduce(0) { $0 + $1.count }
        members = .allocate(capacity: max(1, total))
        memberStart = .allocate(capacity: networkCount + 1)
        var cursor = 0
        for (network, list) in lists.enumerated() {
            memberStart[network] = cursor
            for port in list {
                members[cursor] = port
                cursor += 1
            }
        }
        memberStart[networkCount] = cursor
    }

    func deallocate() {
        egressVID.deallocate()
        members.deallocate()
        memberStart.deallocate()
        tunnelPorts.deallocate()
        networkVNI.deallocate()
    }

    func process<Trace: TraceSink>(_ batch: FrameBatch, into queues: TransmitQueues, trace: inout Trace) {
        let ingress = batch.ingressPort
        for index in 0..<batch.count {
            switch batch.verdicts[index] {
            case .forward(let port):
                emit(batch, index, to: port, remote: batch.metadata[index].remote, queues, &trace)
            case .flood:
                let network = Int(batch.metadata[index].network)
                var sent = false
                for member in memberStart[network]..<memberStart[network + 1] where members[member] != ingress {
                    emit(batch, index, to: members[member], remote: TransmitQueues.allRemotes, queues, &trace)
                    sent = true
                }
                if !sent {
                    batch.verdicts[index] = .drop(.noDestination)
                    if Trace.isRecording { trace.record(TraceEvent(frame: index, .noDestination)) }
                }
            case .floodAll:
                let network = Int(batch.metadata[index].network)
                for member in memberStart[network]..<memberStart[network + 1] {
                    emit(batch, index, to: members[member], remote: TransmitQueues.allRemotes, queues, &trace)
                }
            case .pass, .drop, .consume:
                break
            }
        }
    }

    @inline(__always)
    private func emit<Trace: TraceSink>(
        _ batch: FrameBatch, _ index: Int, to port: PortID, remote: UInt16, _ queues: TransmitQueues,
        _ trace: inout Trace
    ) {
        let frame = batch.frame(index)
        let metadata = batch.metadata[index]
        let source = frame.baseAddress.unsafelyUnwrapped
        let destination = queues.reserve(port)
        let vid = egressVID[Int(port) * networkCount + Int(metadata.network)]
        let skip = metadata.consumedTag ? 16 : 12  // bytes before the (remaining) EtherType
        let rest = frame.count - skip
        // The two MAC addresses as one 8- and one 4-byte move: cheaper than a memcpy call.
        destination.storeBytes(of: source.loadUnaligned(as: UInt64.self), as: UInt64.self)
        destination.storeBytes(of: source.loadUnaligned(fromByteOffset: 8, as: UInt32.self), toByteOffset: 8, as: UInt32.self)
        var length = 12
        if vid != 0 {
            destination.storeBytes(of: EtherType.vlan.bigEndian, toByteOffset: 12, as: UInt16.self)
            destination.storeBytes(of: (metadata.priorityBits | vid).bigEndian, toByteOffset: 14, as: UInt16.self)
            length = 16
        }
        (destination + length).copyMemory(from: source + skip, byteCount: rest)
        // The virtio-net header sits in the 12 bytes before the frame; its offsets move with a tag.
        metadata.offload.shifted(by: length - skip).store(to: destination - VirtioNetHeader.length)
        if tunnelPorts[Int(port)] {
            let hash = Self.flowHash(UnsafeRawBufferPointer(frame), metadata.parsed)
            queues.finish(
                port, length: length + rest, remote: remote, flowHash: hash, vni: networkVNI[Int(metadata.network)])
        } else {
            queues.finish(port, length: length + rest)
        }
        if Trace.isRecording {
            trace.record(
                TraceEvent(frame: index, .sent, a: Int32(port), b: Int32(vid), c: tunnelPorts[Int(port)] ? Int32(remote) + 1 : 0))
        }
    }

    /// The inner flow of a frame leaving on a tunnel, for its outer UDP source port: the IP
    /// addresses, protocol and ports when it has them, else the MAC addresses and EtherType.
    /// Not keyed: it spreads flows over underlay paths and decides nothing an attacker could use.
    @inline(__always)
    static func flowHash(_ frame: UnsafeRawBufferPointer, _ parsed: ParsedFrame) -> UInt32 {
        var hash: UInt64 = 0x9E37_79B9_7F4A_7C15
        @inline(__always) func mix(_ word: UInt64) {
            hash = (hash ^ word) &* 0xBF58_476D_1CE4_E5B9
            hash ^= hash >> 31
        }
        let l3 = Int(parsed.l3Offset)
        switch parsed.layer3 {
        case .ipv4 where l3 + 20 <= frame.count:
            mix(UInt64(frame.loadUnaligned(fromByteOffset: l3 + 12, as: UInt64.self)))
        case .ipv6 where l3 + 40 <= frame.count:
            for offset in stride(from: 8, to: 40, by: 8) {
                mix(frame.loadUnaligned(fromByteOffset: l3 + offset, as: UInt64.self))
            }
        default:
            mix(frame.loadUnaligned(as: UInt64.self))
            mix(UInt64(frame.loadUnaligned(fromByteOffset: 8, as: UInt32.self)) << 16 | UInt64(parsed.etherType))
            return UInt32(truncatingIfNeeded: hash >> 32)
        }
        mix(UInt64(parsed.ipProtocol))
        if parsed.hasL4 && parsed.fragment == .none && Int(parsed.l4Offset) + 4 <= frame.count {
            mix(UInt64(frame.loadUnaligned(fromByteOffset: Int(parsed.l4Offset), as: UInt32.self)))
        }
        return UInt32(truncatingIfNeeded: hash >> 32)
    }
}
