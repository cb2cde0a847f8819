import TapestryWire

/// Per-frame facts filled in once at ingress and read by later stages.
public struct FrameMetadata: Sendable {
    public var parsed = ParsedFrame()
    /// The network the frame belongs to (valid once VLAN classification passed it).
    public var network: NetworkID = 0
    /// On a VXLAN port: the index (in the port's `remotes`) of the remote the frame came from;
    /// once L2 found its destination behind a VXLAN port, the remote it goes to.
    public var remote: UInt16 = 0
    /// True when classification consumed the outer 802.1Q tag (trunk VID or priority tag): egress
    /// removes it and, when tagging, keeps its PCP and DEI.
    public var consumedTag = false
    /// PCP and DEI bits (the top 4 bits of the TCI) of the consumed tag, else 0.
    public var priorityBits: UInt16 = 0
    /// The connection-table entry of the frame's connection (-1: none), whether the frame travels
    /// in its reply direction, and whether the entry was created by this frame.
    public var connection: Int32 = -1
    public var isReply = false
    public var isNewConnection = false
    /// The switch rewrote the source MAC to one of its own (a load balancer's): L2 must not learn it.
    public var skipLearning = false
    /// With `skipLearning`: L2 learns `arrivingSource` instead, the source MAC the frame came with
    /// before the switch answered or replaced it (the host did send from that port).
    public var learnArrivingSource = false
    public var arrivingSource = MACAddress.zero
    /// Set by the firewall and load-balancer stages when they drop the frame (`DropCause`): valid
    /// only for a frame those stages dropped.
    public var cause: DropCause = .none
    public var causeDetail: UInt32 = 0
    /// The rule that decided the frame's new connection (-1: `default`), set with
    /// `isNewConnection` and with `cause` `refusedByRule`/`refusedAfterReload`.
    public var rule: Int32 = -1
    /// Offloads the frame arrived with (a TAP device's virtio-net header); all zero when none.
    public var offload = VirtioNetHeader()

    public init() {}
}
