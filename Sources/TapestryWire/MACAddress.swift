/// A 48-bit IEEE 802 MAC address, stored in the low 48 bits of a `UInt64` so it hashes and compares
/// as one integer.
public struct MACAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) {
        self.rawValue = rawValue & 0xFFFF_FFFF_FFFF
    }

    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        var value: UInt64 = 0
        for byte in [b0, b1, b2, b3, b4, b5] { value = value << 8 | UInt64(byte) }
        self.rawValue = value
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (also with `-` separators); nil for anything else.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let groups = parts.count == 6 ? parts : text.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.count == 6 else { return nil }
        var value: UInt64 = 0
        for group in groups {
            guard group.count == 2, let byte = UInt8(group, radix: 16) else { return nil }
            value = value << 8 | UInt64(byte)
        }
        self.rawValue = value
    }

    public static let broadcast = MACAddress(rawValue: 0xFFFF_FFFF_FFFF)
    public static let zero = MACAddress(rawValue: 0)

    /// The I/G bit: set for group (multicast and broadcast) addresses.
    @inline(__always)
    public var isMulticast: Bool { rawValue & 0x0100_0000_0000 != 0 }

    @inline(__always)
    public var isBroadcast: Bool { rawValue == 0xFFFF_FFFF_FFFF }

    /// The U/L bit: set for locally administered addresses.
    public var isLocallyAdministered: Bool { rawValue & 0x0200_0000_0000 != 0 }

    public var bytes: [UInt8] {
        (0..<6).map { UInt8(truncatingIfNeeded: rawValue >> (40 - 8 * UInt64($0))) }
    }

    public var description: String {
        bytes.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }

    public static func < (lhs: MACAddress, rhs: MACAddress) -> Bool { lhs.rawValue < rhs.rawValue }
}
