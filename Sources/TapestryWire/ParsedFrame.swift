/// What the parser learned about a frame, as offsets into it (Open vSwitch's `l3_ofs`/`l4_ofs`).
///
/// A trivial value type: it lives in the per-frame metadata array of a batch and is filled once at
/// ingress. `absent` marks a missing layer.
public struct ParsedFrame: Equatable, Sendable {
    public static let absent: UInt16 = .max

    public enum Layer3: UInt8, Sendable { case none, arp, ipv4, ipv6 }
    public enum Fragment: UInt8, Sendable {
        /// Not a fragment.
        case none
        /// The first fragment: it carries the L4 header.
        case first
        /// A later fragment: no L4 header, so no ports.
        case later
    }

    /// Number of leading VLAN tags (0x8100 or 0x88a8) counted, at most 2.
    public var tagCount: UInt8 = 0
    /// TPID and TCI of the outermost tag; 0 when untagged.
    public var outerTPID: UInt16 = 0
    public var outerTCI: UInt16 = 0
    /// TPID of the second tag when `tagCount == 2`.
    public var innerTPID: UInt16 = 0
    /// EtherType after the tags the parser walked (0 if a third tag stopped it).
    public var etherType: UInt16 = 0
    public var layer3: Layer3 = .none
    public var l3Offset: UInt16 = absent
    public var l4Offset: UInt16 = absent
    /// IPv4 protocol, or the IPv6 upper-layer header after extension headers; 0 when absent.
    public var ipProtocol: UInt8 = 0
    public var fragment: Fragment = .none
    /// Why the frame is malformed, when it is.
    public var malformation: Malformation? = nil

    public init() {}

    public var isValid: Bool { malformation == nil }

    public var hasL4: Bool { l4Offset != Self.absent }
}

/// Why a frame failed to parse. Every case ends as a drop with reason `invalid`; the case says where.
public enum Malformation: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case runt  // shorter than an Ethernet header
    case truncatedTag
    case truncatedARP
    case badIPv4Header
    case badIPv6Header
    case truncatedIPv6ExtensionHeader
    case badTCPHeader
    case badUDPHeader
    case truncatedICMP
    case headerBeyondOffsetLimit
    case offloadMismatch

    public var description: String {
        switch self {
        case .runt: return "frame shorter than an Ethernet header"
        case .truncatedTag: return "truncated VLAN tag"
        case .truncatedARP: return "truncated ARP"
        case .badIPv4Header: return "bad IPv4 header (version, IHL or total length)"
        case .badIPv6Header: return "bad IPv6 header (version or payload length)"
        case .truncatedIPv6ExtensionHeader: return "truncated IPv6 extension header"
        case .badTCPHeader: return "bad TCP header (truncated or data offset)"
        case .badUDPHeader: return "bad UDP header (truncated or length)"
        case .truncatedICMP: return "truncated ICMP header"
        case .headerBeyondOffsetLimit: return "upper-layer header starts beyond byte 65,534 of the frame"
        case .offloadMismatch:
            return "virtio-net header does not match the frame (checksum start/offset or GSO type)"
        }
    }
}

/// Where a malformed frame's bad header starts and how many bytes it had to live in, for `trace`
/// to name the field and value (`Malformation.explain`). `FrameParser.parseLocatingProblem` fills
/// it; the per-frame `parse` does not (the datapath asks again only for a traced frame).
public struct ProblemLocation: Equatable, Sendable {
    public var offset = 0
    public var length = 0
    public init() {}
}

/// What the parser does with a problem's location: nothing on the per-frame path, keep it for `trace`.
protocol ProblemRecorder {
    mutating func record(offset: Int, length: Int)
}

struct IgnoredProblem: ProblemRecorder {
    @inline(__always) mutating func record(offset: Int, length: Int) {}
}

extension ProblemLocation: ProblemRecorder {
    mutating func record(offset: Int, length: Int) {
        self.offset = max(0, offset)
        self.length = max(0, length)
    }
}
