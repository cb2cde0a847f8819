/// Why a frame was dropped. `name` is what users see (summaries, `--json`, `ctl stats`, metrics);
/// counters are fixed arrays indexed by `index` (the raw value).
public enum DropReason: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// Tagged frame on an access port, VID not on a trunk, untagged frame on a trunk without native, 802.1ad S-tag.
    case vlan
    /// Malformed or truncated headers (`Malformation` says which).
    case invalid
    /// The destination MAC was learned on the ingress port itself.
    case hairpin
    /// The source MAC is a group address; such frames are never forwarded or learned.
    case multicastSource
    /// Flooding found no port to send to (the network has only the ingress port).
    case noDestination
    /// The frame is larger than the switch's frame buffers.
    case oversize
    /// Replay only: the capture holds fewer bytes of the frame than went over the wire (snap length).
    case captureTruncated
    /// Live: the output device's queue was full (the write would block); counted on the output port.
    case txFull
    /// Live: the output port is down (its device went away); counted on the output port.
    case portDown
    /// Live: an offloaded segment (GSO) had to leave a port without offloads (not segmented in
    /// software yet); counted on the output port.
    case offloadUnsupported
    /// Addressed to a load balancer's VIP on a port or protocol it does not serve.
    case noService
    /// Refused by the firewall's rules.
    case firewall
    /// The connection table is full of connections that may not be evicted.
    case tableFull
    /// A VXLAN port's packet from an unlisted source, without the I flag, with an unknown VNI or
    /// malformed outer headers.
    case tunnel

    public var name: String {
        switch self {
        case .vlan: return "vlan"
        case .invalid: return "invalid"
        case .hairpin: return "hairpin"
        case .multicastSource: return "multicast-source"
        case .noDestination: return "no-destination"
        case .oversize: return "oversize"
        case .captureTruncated: return "capture-truncated"
        case .txFull: return "tx-full"
        case .portDown: return "port-down"
        case .offloadUnsupported: return "offload-unsupported"
        case .noService: return "no-service"
        case .firewall: return "firewall"
        case .tableFull: return "table-full"
        case .tunnel: return "tunnel"
        }
    }

    public var description: String { name }

    @inline(__always)
    public var index: Int { Int(rawValue) }

    public static let count = allCases.count
}
