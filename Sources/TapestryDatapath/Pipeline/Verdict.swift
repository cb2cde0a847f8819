/// What the pipeline decided for one frame. Batches keep one verdict slot per frame, parallel to
/// the frames (VPP's `nexts[]`): stages read and overwrite it, and skip frames already dropped.
public enum Verdict: Equatable, Sendable {
    /// Not decided yet: later stages go on with it.
    case pass
    case drop(DropReason)
    /// Send out of exactly this port.
    case forward(PortID)
    /// Send out of every other port of the frame's network.
    case flood
    /// Send out of every port of the frame's network, the ingress port included (frames the
    /// switch itself originates, such as a load balancer's ARP request for a backend).
    case floodAll
    /// The switch took the frame for itself (an ARP reply to a VIP): not forwarded, not a drop.
    case consume

    @inline(__always)
    public var isDrop: Bool {
        if case .drop = self { return true }
        return false
    }
}

/// Index of a port in the datapath's configuration (the order of the topology's `ports`).
public typealias PortID = UInt16

/// Index of a network in the datapath's configuration.
public typealias NetworkID = UInt16
