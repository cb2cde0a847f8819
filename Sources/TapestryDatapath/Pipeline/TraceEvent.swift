import TapestryWire

/// One thing a stage decided about one frame of a traced batch, recorded by the stage where it
/// decided it (VPP's `vlib_add_trace`): `trace` and `ctl trace` render these events and infer
/// nothing afterwards. A trivial value: recording is a store into preallocated memory.
///
/// `a`, `b` and `c` carry what the kind names (see each case).
public struct TraceEvent: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        // VLAN ingress
        /// Malformed: `a` the offset of the bad header, `b` the bytes it had, `c` `Malformation`.
        case malformed
        /// Entered network `a`; `b` the VID it arrived with (0 untagged), `c` 1 tagged, 2 priority-tagged;
        /// `c` 3: decapsulated on a VXLAN port from remote number `b`.
        case classified
        /// An 802.1ad (S-tag) outer tag: `a` its TPID.
        case serviceTagRefused
        /// A second tag on an access port.
        case doubleTagOnAccess
        /// A tag with VID `a` on an access port.
        case tagOnAccess
        /// VID `a` is not one of the trunk's networks (0: untagged without a native network).
        case vidNotOnTrunk
        /// A frame on a VXLAN port that no decapsulation named a network for (a driver's mistake).
        case notDecapsulated

        // Firewall
        /// Not IP: passes untracked.
        case notIP
        /// ICMPv6 neighbour discovery or MLD: passes untracked.
        case neighbourDiscovery
        /// An ICMP error (type `a`) about a tracked connection: passes as related.
        case relatedError
        /// Tracking only (no firewall section), not to a VIP service: passes untracked.
        case notService
        /// A later fragment of a datagram whose first fragment passed (identification `a`).
        case fragmentPassed
        /// A later fragment that came before its datagram's first fragment (identification `a`):
        /// held, `b` fragments of the datagram held now.
        case fragmentHeld
        /// The first fragment passed: `a` held fragments of its datagram leave right after it.
        case heldFragmentsReleased
        /// The first fragment was dropped: so are the `a` held fragments of its datagram.
        case heldFragmentsDropped
        /// A TCP packet of connection `a` let through unchecked, its state unchanged
        /// (`TCPConnectionState.Transition.ignore`); `b` 1 for the reply direction.
        case tcpIgnored
        /// A TCP segment outside its connection's window: `a` the sequence (or ACK) number, `b`
        /// and `c` the window's low and high ends (bit patterns of UInt32). A `dropped` follows.
        case outsideWindow
        /// A new connection `a` allowed by rule `b` (-1 `default`); `c`: its TCP state in the low
        /// byte, its `ConnectionEntry.Kind` in the top byte.
        case connectionOpened
        /// An existing connection `a`. `b`: its TCP state before in the low byte, bit 8 set when
        /// it had been replied to. `c`: the same after, bit 16 set for the reply direction, its
        /// `ConnectionEntry.Kind` in the top byte.
        case connectionUpdated
        /// Dropped with `DropCause` `c`: `a` its detail, `b` the rule (-1 `default`; meaningful for
        /// `refusedByRule` and `refusedAfterReload`).
        case dropped
        /// Tracking only (no firewall section): `DropCause` `c` (detail `a`) is not enforced and
        /// the frame goes on.
        case invalidIgnored

        // Load balancer
        /// An ARP request or ping to VIP of balancer `a`, answered by the switch.
        case vipAnswered
        /// An ARP reply to balancer `a`'s VIP: taken by the switch.
        case vipARPReplyTaken
        /// A reply from backend `b` of balancer `a`: source rewritten to the VIP.
        case replyRewritten
        /// Balancer `a` sent connection to backend `b`; `c`: 0 the connection's backend, -1 the
        /// client's last backend (affinity),
        /// else 1 + the drained or down backends round robin skipped (a new connection).
        case backendChosen
        /// Backend `b` of balancer `a` has no known MAC: the frame became an ARP request for it.
        case backendUnresolved
        /// Every backend of balancer `a` is drained or down: the new connection was refused with
        /// a TCP RST (`b` 0) or an ICMP port unreachable (`b` 1) from the VIP, counted no-service.
        case refused

        // L2
        /// Source MAC learned: `a` 0 refreshed, 1 learned, 2 moved from port `b`, 3 after eviction.
        case learned
        /// The source was not learned: the switch's own answer.
        case learningSkipped
        /// Destination found on port `a` (behind remote number `b` on a VXLAN port).
        case fdbHit
        /// Destination `a`: 0 unknown, 1 broadcast, 2 multicast: flooded.
        case flooded
        /// Destination learned on the ingress port.
        case hairpin
        /// A group address as source.
        case multicastSource
        /// An earlier stage decided where the frame goes: no lookup.
        case alreadyDecided

        // Egress
        /// Queued on port `a`, tagged with VID `b` (0 untagged); on a VXLAN port `c` is the remote
        /// number + 1 (65536: every remote).
        case sent
        /// A flood with no other port in the network.
        case noDestination
    }

    /// The frame's index in its batch.
    public var frame: UInt16
    public var kind: Kind
    public var a: Int32
    public var b: Int32
    public var c: Int32

    public init(frame: Int, _ kind: Kind, a: Int32 = 0, b: Int32 = 0, c: Int32 = 0) {
        self.frame = UInt16(truncatingIfNeeded: frame)
        self.kind = kind
        self.a = a
        self.b = b
        self.c = c
    }

    /// The stage a kind belongs to.
    public var step: Datapath.Step {
        switch kind {
        case .malformed, .classified, .serviceTagRefused, .doubleTagOnAccess, .tagOnAccess, .vidNotOnTrunk,
            .notDecapsulated:
            return .vlan
        case .notIP, .neighbourDiscovery, .relatedError, .notService, .fragmentPassed, .fragmentHeld, .heldFragmentsReleased,
            .heldFragmentsDropped, .connectionOpened,
            .connectionUpdated, .invalidIgnored, .tcpIgnored, .outsideWindow:
            return .firewall
        case .dropped:
            return DropCause(rawValue: UInt8(truncatingIfNeeded: c))?.isLoadBalancer == true ? .loadBalancer : .firewall
        case .vipAnswered, .vipARPReplyTaken, .replyRewritten, .backendChosen, .backendUnresolved, .refused: return .loadBalancer
        case .learned, .learningSkipped, .fdbHit, .flooded, .hairpin, .multicastSource, .alreadyDecided: return .l2
        case .sent, .noDestination: return .egress
        }
    }
}

/// Where stages put their trace events. The datapath runs its stages specialized for
/// `NoTrace` (recording compiles away: no check or store per frame) or `TraceRecorder`, chosen
/// once per batch.
protocol TraceSink {
    static var isRecording: Bool { get }
    mutating func record(_ event: TraceEvent)
}

struct NoTrace: TraceSink {
    static var isRecording: Bool { false }
    @inline(__always) mutating func record(_ event: TraceEvent) {}
}

/// Appends to the datapath's preallocated event buffer; events past its end are counted, not kept.
struct TraceRecorder: TraceSink {
    static var isRecording: Bool { true }
    let events: UnsafeMutablePointer<TraceEvent>
    let capacity: Int
    var count = 0
    var lost = 0

    mutating func record(_ event: TraceEvent) {
        guard count < capacity else {
            lost += 1
            return
        }
        events[count] = event
        count += 1
    }
}

extension DropCause {
    /// Causes the load-balancer stage records (the rest are the firewall's).
    public var isLoadBalancer: Bool {
        self == .notServed || self == .allBackendsDrained || self == .untrackedServiceTraffic
    }
}
