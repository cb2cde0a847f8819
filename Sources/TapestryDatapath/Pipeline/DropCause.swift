/// Why the firewall or a load balancer dropped a frame, finer than its `DropReason`: the stage
/// writes it beside the verdict where it decides (a store on the drop path, nothing on the
/// forwarding path), so `trace` and `ctl trace` say what happened instead of guessing it again.
/// `FrameMetadata.causeDetail` carries the value the cause names.
public enum DropCause: UInt8, Sendable {
    case none
    /// `invalid`: a TCP packet without SYN (or with SYN and ACK) for no tracked connection;
    /// detail: its TCP flags.
    case tcpWithoutConnection
    /// `invalid`: TCP flags that do not fit the connection's state; detail: flags in the low
    /// byte, `TCPConnectionState.rawValue` in the high byte.
    case tcpOutOfState
    /// `invalid`: an echo reply to no tracked echo request.
    case unsolicitedEchoReply
    /// `invalid`: an ICMP error quoting no tracked connection, or not addressed to the quoted
    /// packet's sender; detail: the ICMP type.
    case unrelatedICMPError
    /// `invalid`: a later fragment whose first fragment was refused; detail: the datagram's
    /// identification (16 bits for IPv4, 32 for IPv6).
    case strayFragment
    /// `firewall`: the rules refuse a new connection (`FrameMetadata.rule` says which).
    case refusedByRule
    /// `firewall`: a connection from before a reload that the new rules refuse (`rule` says which).
    case refusedAfterReload
    /// `firewall`: three VLAN tags or more; the rules cannot see the payload.
    case tooManyTags
    /// `table-full`: no room for a new connection, nothing may be evicted.
    case tableFull
    /// `no-service`: to a VIP on a port or protocol it does not serve.
    case notServed
    /// `no-service`: every backend of the service is drained or down, and the packet could not
    /// be refused with a RST or an ICMP port unreachable (those count `no-service` too).
    case allBackendsDrained
    /// `invalid`: to a VIP service, but no connection was tracked for it.
    case untrackedServiceTraffic
    /// `no-service`: the backend's MAC is unknown and its queue of held frames is full (or the
    /// frame is larger than a held frame may be).
    case heldFramesFull
    /// `invalid`: an IP packet whose source is a load balancer's VIP (only the switch sends
    /// from a VIP), dropped with or without a firewall.
    case spoofedVIP
    /// `invalid`: an ARP packet whose sender is a VIP, or a neighbor advertisement whose target
    /// is one: a host speaking for a VIP, which only the switch answers for.
    case claimedVIP
    /// `invalid`: a TCP segment outside its connection's sequence window (`TCPWindow`); the
    /// connection is unchanged. Detail: flags in the low byte, `TCPWindow.Check` in the second,
    /// `TCPConnectionState.rawValue` in the third. A traced frame also has an `outsideWindow`
    /// event with the numbers.
    case tcpOutOfWindow
    /// `invalid`: a fragment that repeats one already seen (same offset and length); the
    /// datagram goes on. Detail: the identification.
    case duplicateFragment
    /// `invalid`: a fragment that overlaps another of its datagram (RFC 5722), or lies past its
    /// last fragment's end; the datagram is dropped (its held fragments and the ones still to
    /// come). Detail: the identification.
    case overlappingFragment
    /// `invalid`: a fragment with an impossible offset or length (a datagram past 65,535 bytes,
    /// a fragment other than the last whose length is not a multiple of 8, no payload). Detail:
    /// the identification.
    case malformedFragment
    /// `invalid`: a datagram of more fragments than the firewall tracks; it is dropped. Detail:
    /// the identification.
    case tooManyFragments
    /// `invalid`: a later fragment that came before its first fragment and could not be held
    /// (every slot taken, its port's share taken, or larger than a slot); its datagram is
    /// dropped. Detail: the identification.
    case fragmentNotHeld
}

extension DropCause {
    /// The drop reason (the counter) a frame dropped for this cause is counted under.
    public var reason: DropReason {
        switch self {
        case .none, .tcpWithoutConnection, .tcpOutOfState, .unsolicitedEchoReply, .unrelatedICMPError, .strayFragment,
            .untrackedServiceTraffic, .spoofedVIP, .claimedVIP, .tcpOutOfWindow, .duplicateFragment, .overlappingFragment,
            .malformedFragment, .tooManyFragments, .fragmentNotHeld:
            return .invalid
        case .refusedByRule, .refusedAfterReload, .tooManyTags: return .firewall
        case .tableFull: return .tableFull
        case .notServed, .allBackendsDrained, .heldFramesFull: return .noService
        }
    }
}
