/// Zero-copy views over header bytes.
///
/// Each view is validated once by `init?(validating:)` (length and, where the header carries one,
/// its own length field); after that no accessor can read out of bounds. Views borrow the memory of
/// the frame slot: use them inside the scope that handed out the buffer pointer and never store them.
/// Field offsets are named after the RFC figures they come from.

/// Ethernet II header (IEEE 802.3 clause 3): destination, source, EtherType.
public struct EthernetView {
    public static let length = 14
    enum Field { static let destination = 0, source = 6, etherType = 12 }
    public let bytes: UnsafeRawBufferPointer

    public init?(validating bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.length else { return nil }
        self.bytes = bytes
    }

    public var destination: MACAddress { bytes.mac(Field.destination) }
    public var source: MACAddress { bytes.mac(Field.source) }
    /// The EtherType right after the source MAC: a TPID when the frame is tagged.
    public var etherType: UInt16 { bytes.u16(Field.etherType) }
}

/// One 802.1Q / 802.1ad tag: TPID then TCI (PCP 3 bits, DEI 1 bit, VID 12 bits).
public struct VLANTagView {
    public static let length = 4
    public let bytes: UnsafeRawBufferPointer

    /// `bytes` starts at the TPID.
    public init?(validating bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.length, EtherType.isTag(bytes.u16(0)) else { return nil }
        self.bytes = bytes
    }

    public var tpid: UInt16 { bytes.u16(0) }
    public var tci: UInt16 { bytes.u16(2) }
    public var pcp: UInt8 { UInt8(tci >> 13) }
    public var dei: Bool { tci & 0x1000 != 0 }
    public var vid: UInt16 { tci & 0x0FFF }
}

/// ARP (RFC 826). Validated for its variable address lengths; the convenience accessors assume
/// Ethernet/IPv4 (`isEthernetIPv4`).
public struct ARPView {
    public static let fixedLength = 8
    public let bytes: UnsafeRawBufferPointer

    public init?(validating bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.fixedLength else { return nil }
        let addresses = 2 * (Int(bytes[4]) + Int(bytes[5]))
        guard bytes.count >= Self.fixedLength + addresses else { return nil }
        self.bytes = bytes
    }

    public var hardwareType: UInt16 { bytes.u16(0) }
    public var protocolType: UInt16 { bytes.u16(2) }
    public var operation: UInt16 { bytes.u16(6) }
    public var isEthernetIPv4: Bool {
        hardwareType == 1 && protocolType == EtherType.ipv4 && bytes[4] == 6 && bytes[5] == 4
    }
    public var senderMAC: MACAddress { bytes.mac(8) }
    public var senderIP: IPv4Address { IPv4Address(rawValue: bytes.u32(14)) }
    public var targetMAC: MACAddress { bytes.mac(18) }
    public var targetIP: IPv4Address { IPv4Address(rawValue: bytes.u32(24)) }
}

/// IPv4 header (RFC 791, figure 4), options included.
public struct IPv4View {
    public static let minimumLength = 20
    enum Field {
        static let versionIHL = 0, totalLength = 2, identification = 4, flagsFragment = 6
        static let ttl = 8, proto = 9, checksum = 10, source = 12, destination = 16
    }
    public let bytes: UnsafeRawBufferPointer

    /// Valid when the version is 4, IHL >= 5, and the header and the whole datagram (per total
    /// length) fit in `bytes`. Bytes past total length are link padding.
    public init?(validating bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.minimumLength else { return nil }
        let first = bytes[0]
        let headerLength = Int(first & 0x0F) * 4
        guard first >> 4 == 4, headerLength >= Self.minimumLength, headerLength <= bytes.count else { return nil }
        let total = Int(bytes.u16(Field.totalLength))
        guard total >= headerLength, total <= bytes.count else { return nil }
        self.bytes = bytes
    }

    public var headerLength: Int { Int(bytes[0] & 0x0F) * 4 }
    public var totalLength: Int { Int(bytes.u16(Field.totalLength)) }
    public var identification: UInt16 { bytes.u16(Field.identification) }
    public var dontFragment: Bool { bytes.u16(Field.flagsFragment) & 0x4000 != 0 }
    public var moreFragments: Bool { bytes.u16(Field.flagsFragment) & 0x2000 != 0 }
    /// In 8-byte units.
    public var fragmentOffset: UInt16 { bytes.u16(Field.flagsFragment) & 0x1FFF }
    public var ttl: UInt8 { bytes[Field.ttl] }
    public var proto: UInt8 { bytes[Field.proto] }
    public var checksum: UInt16 { bytes.u16(Field.checksum) }
    public var source: IPv4Address { IPv4Address(rawValue: bytes.u32(Field.source)) }
    public var destination: IPv4Address { IPv4Address(rawValue: bytes.u32(Field.destination)) }
    /// The datagram's payload (without link padding).
    public var payload: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[headerLength..<totalLength]) }
    /// True when the header checksum verifies.
    public var checksumIsValid: Bool {
        InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: bytes[0..<headerLength]))) == 0
    }
}

/// IPv6 fixed header (RFC 8200 section 3).
public struct IPv6View {
    public static let length = 40
    public let bytes: UnsafeRawBufferPointer

    /// Valid when the version is 6 and the payload (per payload length) fits in `bytes`.
    public init?(validating bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.length, bytes[0] >> 4 == 6 else { return nil }
        guard Self.length + Int(bytes.u16(4)) <= bytes.count else { return nil }
        self.bytes = bytes
    }

    public var payloadLength: Int { Int(bytes.u16(4)) }
    public var nextHeader: UInt8 { bytes[6] }
    public var hopLimit: UInt8 { bytes[7] }
    public var source: IPv6Address { IPv6Address(high: load64(8), low: load64(16)) }
    public var destination: IPv6Address { IPv6Address(high: load64(24), low: load64(32)) }

    private func load64(_ offset: Int) -> UInt64 { UInt64(bytes.u32(offset)) << 32 | UInt64(bytes.u32(offset + 4)) }
}

/// TCP header (RFC 9293 section 3.1), options included.
public struct TCPView {
    public static let minimumLength = 20
    public let bytes: UnsafeRawBufferPointer

    public init?(validating bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.minimumLength else { return nil }
        let dataOffset = Int(bytes[12] >> 4) * 4
        guard dataOffset >= Self.minimumLength, dataOffset <= bytes.count else { return nil }
        self.bytes = bytes
    }

    public var sourcePort: UInt16 { bytes.u16(0) }
    public var destinationPort: UInt16 { bytes.u16(2) }
    public var sequenceNumber: UInt32 { bytes.u32(4) }
    public var acknowledgmentNumber: UInt32 { bytes.u32(8) }
    public var headerLength: Int { Int(bytes[12] >> 4) * 4 }
    public var flags: TCPFlags { TCPFlags(rawValue: bytes[13]) }
    public var window: UInt16 { bytes.u16(14) }
    public var checksum: UInt16 { bytes.u16(16) }
}

public struct TCPFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
    public static let ece = TCPFlags(rawValue: 0x40)
    public static let cwr = TCPFlags(rawValue: 0x80)

    /// The flags as letters in FSRPAUEC order, as test files and `trace` write them ("SA");
    /// "" for none.
    public var letters: String {
        String(Self.letterOrder.enumerated().filter { rawValue & (1 << $0.offset) != 0 }.map(\.element))
    }

    /// Flags from such letters, in any order and either case; nil for any other character.
    public init?(letters: some StringProtocol) {
        var value: UInt8 = 0
        for letter in letters {
            guard let bit = Self.letterOrder.firstIndex(of: letter) ?? Self.lowercaseOrder.firstIndex(of: letter) else {
                return nil
            }
            value |= 1 << UInt8(bit)
        }
        self.init(rawValue: value)
    }

    /// Bit i is letter i.
    private static let letterOrder = Array("FSRPAUEC")
    private static let lowercaseOrder = Array("fsrpauec")
}

/// UDP header (RFC 768). Valid when its length field is at least 8 and fits in `bytes`.
public struct UDPView {
    public static let length = 8
    public let bytes: UnsafeRawBufferPointer

    public init?(validating bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.length else { return nil }
        let length = Int(bytes.u16(4))
        guard length >= Self.length, length <= bytes.count else { return nil }
        self.bytes = bytes
    }

    public var sourcePort: UInt16 { bytes.u16(0) }
    public var destinationPort: UInt16 { bytes.u16(2) }
    public var length: Int { Int(bytes.u16(4)) }
    public var checksum: UInt16 { bytes.u16(6) }
}

/// ICMP (RFC 792) and ICMPv6 (RFC 4443) share this first 8-byte layout: type, code, checksum and
/// four bytes whose meaning depends on the type (identifier and sequence for echo).
public struct ICMPView {
    public static let length = 8
    public let bytes: UnsafeRawBufferPointer

    public init?(validating bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.length else { return nil }
        self.bytes = bytes
    }

    public var type: UInt8 { bytes[0] }
    public var code: UInt8 { bytes[1] }
    public var checksum: UInt16 { bytes.u16(2) }
    public var identifier: UInt16 { bytes.u16(4) }
    public var sequence: UInt16 { bytes.u16(6) }
    /// What follows the 8-byte header (for errors: the offending packet's header).
    public var body: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[8...]) }
}
