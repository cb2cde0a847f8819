/// The virtio-net header (virtio spec 5.1.6; `struct virtio_net_hdr_mrg_rxbuf`, 12 bytes) that a
/// TAP device opened with IFF_VNET_HDR puts before every frame. It carries the offloads that make
/// TCP between namespaces fast: a partial checksum to complete (`needsChecksum`) and, for a large
/// segment, how to cut it into MSS-sized packets (`gsoType`, `gsoSize`). Fields are little-endian
/// (the legacy layout, native on x86 and arm64 Linux).
public struct VirtioNetHeader: Equatable, Sendable {
    public static let length = 12

    public var flags: UInt8 = 0
    public var gsoType: UInt8 = 0
    /// Length of the headers of a GSO segment (Ethernet through L4).
    public var headerLength: UInt16 = 0
    /// Payload bytes per segment for GSO.
    public var gsoSize: UInt16 = 0
    /// Where checksumming starts, from the start of the frame, when `needsChecksum`.
    public var checksumStart: UInt16 = 0
    /// Where the checksum is stored, from `checksumStart`.
    public var checksumOffset: UInt16 = 0

    public static let flagNeedsChecksum: UInt8 = 1
    public static let flagDataValid: UInt8 = 2
    public static let gsoNone: UInt8 = 0
    public static let gsoTCPv4: UInt8 = 1
    public static let gsoUDP: UInt8 = 3
    public static let gsoTCPv6: UInt8 = 4
    public static let gsoECN: UInt8 = 0x80

    public init() {}

    public var needsChecksum: Bool { flags & Self.flagNeedsChecksum != 0 }
    public var isGSO: Bool { gsoType & ~Self.gsoECN != Self.gsoNone }
    /// True when the frame needs nothing from the receiver: no partial checksum, no segmentation.
    public var isPlain: Bool { !needsChecksum && !isGSO }

    @inline(__always)
    public init(loading pointer: UnsafeRawPointer) {
        flags = pointer.load(fromByteOffset: 0, as: UInt8.self)
        gsoType = pointer.load(fromByteOffset: 1, as: UInt8.self)
        headerLength = UInt16(littleEndian: pointer.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        gsoSize = UInt16(littleEndian: pointer.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        checksumStart = UInt16(littleEndian: pointer.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        checksumOffset = UInt16(littleEndian: pointer.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
    }

    /// Stores the header (with `num_buffers` 0) at `pointer`.
    @inline(__always)
    public func store(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: flags, toByteOffset: 0, as: UInt8.self)
        pointer.storeBytes(of: gsoType, toByteOffset: 1, as: UInt8.self)
        pointer.storeBytes(of: headerLength.littleEndian, toByteOffset: 2, as: UInt16.self)
        pointer.storeBytes(of: gsoSize.littleEndian, toByteOffset: 4, as: UInt16.self)
        pointer.storeBytes(of: checksumStart.littleEndian, toByteOffset: 6, as: UInt16.self)
        pointer.storeBytes(of: checksumOffset.littleEndian, toByteOffset: 8, as: UInt16.self)
        pointer.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
    }

    /// Whether the offloads this header asks for fit the parsed frame: a partial checksum must be
    /// the TCP or UDP checksum field of the frame's own L4 header, and a GSO type must name the
    /// frame's own protocols. The sender chooses these offsets, and they are acted on after the
    /// firewall and NAT decided (by software checksumming here, or by the kernel or NIC), so an
    /// unchecked `checksumStart` would let a guest rewrite any two bytes of a frame already
    /// allowed: its destination port or address.
    public func fits(_ parsed: ParsedFrame) -> Bool {
        if isPlain { return true }
        guard parsed.hasL4, parsed.fragment == .none else { return false }
        let isTCP = parsed.ipProtocol == IPProtocol.tcp
        let isUDP = parsed.ipProtocol == IPProtocol.udp
        if needsChecksum {
            guard checksumStart == parsed.l4Offset, (isTCP && checksumOffset == 16) || (isUDP && checksumOffset == 6)
            else { return false }
        }
        switch gsoType & ~Self.gsoECN {
        case Self.gsoNone: return true
        case Self.gsoTCPv4: return isTCP && parsed.layer3 == .ipv4 && gsoSize > 0
        case Self.gsoTCPv6: return isTCP && parsed.layer3 == .ipv6 && gsoSize > 0
        case Self.gsoUDP: return isUDP && gsoSize > 0
        default: return false
        }
    }

    /// The same header for a frame whose tag bytes changed by `delta` (+4 for a pushed tag, -4 for
    /// a removed one): offsets counted from the frame's start move with the L3 header.
    @inline(__always)
    public func shifted(by delta: Int) -> VirtioNetHeader {
        guard delta != 0 else { return self }
        var copy = self
        if needsChecksum { copy.checksumStart = UInt16(truncatingIfNeeded: Int(checksumStart) + delta) }
        if headerLength != 0 { copy.headerLength = UInt16(truncatingIfNeeded: Int(headerLength) + delta) }
        return copy
    }

    /// Completes a partial checksum in software, for a port that cannot take it partial: sums the
    /// frame from `checksumStart` (the stored partial value already holds the pseudo-header sum)
    /// and stores the result at `checksumStart + checksumOffset`. Returns false when the offsets do
    /// not fit the frame.
    public static func completeChecksum(_ frame: UnsafeMutableRawBufferPointer, _ header: VirtioNetHeader) -> Bool {
        let start = Int(header.checksumStart)
        let field = start + Int(header.checksumOffset)
        guard header.needsChecksum, start < frame.count, field + 2 <= frame.count else { return false }
        let sum = InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: frame[start...]))
        var value = InternetChecksum.fold(sum)
        if value == 0, field - start == 6 { value = 0xFFFF }  // UDP: 0 means "no checksum"
        frame.setU16(field, value)
        return true
    }
}
