/// Counters of one datapath: per port frames and bytes in and out, drops by reason per ingress
/// port, and learning events. Fixed arrays allocated once; incremented with wrapping adds.
public struct DatapathCounters: Sendable, Equatable {
    public struct PortCounters: Sendable, Equatable {
        public var framesIn: UInt64 = 0
        public var bytesIn: UInt64 = 0
        public var framesOut: UInt64 = 0
        public var bytesOut: UInt64 = 0
        /// Drops of frames that arrived on this port, indexed by `DropReason.index`.
        public var drops = [UInt64](repeating: 0, count: DropReason.count)
    }

    public var ports: [PortCounters]
    public var macLearned: UInt64 = 0
    public var macMoved: UInt64 = 0
    /// MACs learned by evicting the least recently seen entry of the fullest port (a full table)
    /// or of the learning port (its `mac_limit`).
    public var macEvicted: UInt64 = 0
    /// Firewall: connections created, evicted unreplied to make room, ICMP errors passed as related,
    /// and connections in the table now (live or not yet swept).
    public var connectionsCreated: UInt64 = 0
    public var connectionsEvicted: UInt64 = 0
    public var relatedPassed: UInt64 = 0
    public var connections = 0
    /// New connections each firewall rule decided, in rule order, then `default`'s (empty
    /// without a firewall).
    public var ruleDecisions: [UInt64] = []
    /// Load balancers: connections given to each backend `[balancer][backend]`; frames that found
    /// their backend's MAC unknown (held, or dropped when its queue was full), of them the ones
    /// sent once it answered, those dropped after waiting, and those waiting now; ARP, neighbor
    /// solicitation and echo answers for VIPs.
    public var backendSelections: [[UInt64]] = []
    public var backendUnresolved: UInt64 = 0
    public var heldReleased: UInt64 = 0
    public var heldExpired: UInt64 = 0
    public var heldWaiting = 0
    /// Later fragments that came before their first fragment: held now, released after it, and
    /// dropped while held (first fragment refused, overlap, timed out, or the input ended).
    public var fragmentsHeld = 0
    public var fragmentsReleased: UInt64 = 0
    public var fragmentsHeldDropped: UInt64 = 0
    public var loadBalancerAnswers: UInt64 = 0
    /// New connections refused (RST or ICMP port unreachable from the VIP) because every backend
    /// was drained or down; also counted as `no-service` drops.
    public var refusedConnections: UInt64 = 0

    /// Drops by reason over all ports.
    public var drops: [DropReason: UInt64] {
        var result: [DropReason: UInt64] = [:]
        for reason in DropReason.allCases {
            let total = ports.reduce(0) { $0 + $1.drops[reason.index] }
            if total > 0 { result[reason] = total }
        }
        return result
    }

    public var totalDrops: UInt64 { ports.reduce(0) { $0 + $1.drops.reduce(0, +) } }
}
