import TapestryWire

/// Per-frame facts filled in once at ingress and read by later stages.
public struct FrameMetadata: Sendable {
    public var parsed = ParsedFrame()
    /// The network the frame belongs to (valid once VLAN classification passed it).
    public var network: NetworkID = 0
    /// True when classification consumed the outer 802.1Q tag (trunk VID or priority tag): egress
    /// removes it and, when tagging, keeps its PCP and DEI.
    public var consumedTag = false
    /// PCP and DEI bits (the top 4 bits of the TCI) of the consumed tag, else 0.
    public var priorityBits: UInt16 = 0
    /// Offloads the frame arrived with (a TAP device's virtio-net header); all zero when none.
    public var offload = VirtioNetHeader()

    public init() {}
}
