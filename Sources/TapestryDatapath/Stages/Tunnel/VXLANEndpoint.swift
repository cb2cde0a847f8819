import TapestryWire

/// One VXLAN port's two edges, shared by every driver (live socket, replay, tests):
/// decapsulation decides whether a received packet enters the switch, from which remote and in
/// which network (`admit`); encapsulation writes the headers in front of a queued frame, in the
/// transmit queue's prefix, so nothing is copied or allocated (`vxlanPayload`, `underlayPacket`).
///
/// A live port's UDP socket sees the VXLAN payload (the kernel wrote and checked the outer IPv4
/// and UDP headers); a replayed port sees the whole outer IPv4 packet, as a raw-IPv4 capture
/// holds it.
public struct VXLANEndpoint: Sendable {
    public let port: PortID
    public let tunnel: DatapathConfiguration.Tunnel
    private let networkByVNI: [UInt32: NetworkID]
    private let remoteByAddress: [UInt32: UInt16]

    /// Why a packet did not enter (every one a `tunnel` drop).
    public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        case unlistedSource(IPv4Address)
        case notOurs(IPv4Address)
        case malformed(VXLAN.Problem)
        case unknownVNI(UInt32)

        public var description: String {
            switch self {
            case .unlistedSource(let address): return "from \(address), which is not a listed remote"
            case .notOurs(let address): return "addressed to \(address), not to the tunnel's local address"
            case .malformed(let problem): return "\(problem)"
            case .unknownVNI(let vni): return "VNI \(vni) is not a network of this port"
            }
        }
    }

    /// What `admit` found: the inner frame's range in the given bytes, its network and remote.
    public struct Admission: Equatable, Sendable {
        public var inner: Range<Int>
        public var network: NetworkID
        public var remote: UInt16
        public init(inner: Range<Int>, network: NetworkID, remote: UInt16) {
            self.inner = inner
            self.network = network
            self.remote = remote
        }
    }

    /// Nil when `port` is not a VXLAN port.
    public init?(configuration: DatapathConfiguration, port: PortID) {
        guard Int(port) < configuration.ports.count, let tunnel = configuration.ports[Int(port)].tunnel else { return nil }
        self.port = port
        self.tunnel = tunnel
        var networks: [UInt32: NetworkID] = [:]
        for network in configuration.ports[Int(port)].networks { networks[configuration.networks[Int(network)].vni] = network }
        networkByVNI = networks
        var remotes: [UInt32: UInt16] = [:]
        for (index, address) in tunnel.remotes.enumerated() { remotes[address.rawValue] = UInt16(index) }
        remoteByAddress = remotes
    }

    /// A VXLAN payload (header and inner frame) a UDP socket received from `source`.
    public func admit(source: IPv4Address, payload: UnsafeRawBufferPointer) -> Result<Admission, Refusal> {
        guard let remote = remoteByAddress[source.rawValue] else { return .failure(.unlistedSource(source)) }
        let vni: UInt32
        switch VXLAN.decode(payload) {
        case .success(let value): vni = value
        case .failure(let problem): return .failure(.malformed(problem))
        }
        guard let network = networkByVNI[vni] else { return .failure(.unknownVNI(vni)) }
        return .success(Admission(inner: VXLAN.headerLength..<payload.count, network: network, remote: remote))
    }

    /// A whole outer IPv4 packet (replay's raw-IPv4 captures): it must be UDP to the tunnel's
    /// local address and port, from a listed remote.
    public func admitUnderlay(_ packet: UnsafeRawBufferPointer) -> Result<Admission, Refusal> {
        let underlay: VXLAN.Underlay
        switch VXLAN.decodeUnderlay(packet, port: tunnel.udpPort) {
        case .success(let value): underlay = value
        case .failure(let problem): return .failure(.malformed(problem))
        }
        guard underlay.destination == tunnel.local else { return .failure(.notOurs(underlay.destination)) }
        let payload = UnsafeRawBufferPointer(rebasing: packet[underlay.payload])
        return admit(source: underlay.source, payload: payload).map {
            var admission = $0
            admission.inner = (underlay.payload.lowerBound + $0.inner.lowerBound)..<underlay.payload.upperBound
            return admission
        }
    }

    /// The largest inner frame (Ethernet header included) whose outer IPv4 packet fits `mtu`.
    public var maxInnerFrame: Int { tunnel.mtu - VXLAN.underlayHeaderLength }

    /// Writes the VXLAN header in front of queued frame `index` and returns header and frame:
    /// what a UDP socket sends. Nil when the outer packet would exceed the MTU (an `oversize`
    /// drop; a TSO frame must be segmented first).
    @inline(__always)
    public func vxlanPayload(_ queues: TransmitQueues, _ index: Int) -> UnsafeRawBufferPointer? {
        let slot = queues.slotWithPrefix(port, index)
        let frameLength = slot.count - TransmitQueues.prefix
        guard frameLength <= maxInnerFrame else { return nil }
        let start = TransmitQueues.prefix - VXLAN.headerLength
        VXLAN.writeHeader(
            vni: queues.vni(port, index), at: UnsafeMutableRawBufferPointer(rebasing: slot[start..<TransmitQueues.prefix]))
        return UnsafeRawBufferPointer(rebasing: slot[start...])
    }

    /// The UDP source port of queued frame `index`: one per inner flow, in 49152-65535.
    @inline(__always)
    public func sourcePort(_ queues: TransmitQueues, _ index: Int) -> UInt16 {
        VXLAN.sourcePort(flowHash: UInt64(queues.flowHash(port, index)) << 32)
    }

    /// Writes the outer IPv4, UDP and VXLAN headers in front of queued frame `index`, addressed
    /// to remote number `remote`, and returns the whole outer packet (what the underlay carries,
    /// and a raw-IPv4 capture holds). Nil when it would exceed the MTU.
    public func underlayPacket(_ queues: TransmitQueues, _ index: Int, remote: Int) -> UnsafeRawBufferPointer? {
        let slot = queues.slotWithPrefix(port, index)
        let frameLength = slot.count - TransmitQueues.prefix
        guard frameLength <= maxInnerFrame, remote < tunnel.remotes.count else { return nil }
        let start = TransmitQueues.prefix - VXLAN.underlayHeaderLength
        guard
            VXLAN.writeUnderlay(
                at: UnsafeMutableRawBufferPointer(rebasing: slot[start..<TransmitQueues.prefix]), innerLength: frameLength,
                vni: queues.vni(port, index), source: tunnel.local, destination: tunnel.remotes[remote],
                sourcePort: sourcePort(queues, index), destinationPort: tunnel.udpPort) != nil
        else { return nil }
        return UnsafeRawBufferPointer(rebasing: slot[start...])
    }

    /// Hands `body` each outer packet queued frame `index` makes, one per remote it goes to (what
    /// replay writes and a test compares; their frames carry no offloads). False, with none made,
    /// when the frame is too long for the underlay's MTU: the caller counts the `oversize` drop,
    /// as the live port does.
    public func forEachUnderlayPacket(_ queues: TransmitQueues, _ index: Int, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard queues.frame(port, index).count <= maxInnerFrame else { return false }
        for remote in destinations(queues, index) {
            if let packet = underlayPacket(queues, index, remote: remote) { body(packet) }
        }
        return true
    }

    /// The remotes queued frame `index` goes to: one, or every remote for a flood.
    @inline(__always)
    public func destinations(_ queues: TransmitQueues, _ index: Int) -> Range<Int> {
        let remote = queues.remote(port, index)
        if remote == TransmitQueues.allRemotes { return 0..<tunnel.remotes.count }
        return Int(remote) < tunnel.remotes.count ? Int(remote)..<(Int(remote) + 1) : 0..<0
    }
}
