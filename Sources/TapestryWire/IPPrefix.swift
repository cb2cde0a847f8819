/// An IPv4 or IPv6 address with a prefix length, as written in firewall rules (`10.0.0.0/8`,
/// `2001:db8::/32`, or a bare address meaning a host prefix).
public enum IPPrefix: Hashable, Sendable, CustomStringConvertible {
    case v4(IPv4Address, length: Int)
    case v6(IPv6Address, length: Int)

    public enum ParseError: Error, Equatable, Sendable {
        case badAddress
        case badLength
        /// Bits are set past the prefix length (`10.0.0.1/8`); nftables accepts and masks these, we refuse
        /// them because they are almost always a typo.
        case hostBitsSet
    }

    public static func parse(_ text: String) -> Result<IPPrefix, ParseError> {
        let pieces = text.split(separator: "/", omittingEmptySubsequences: false)
        guard pieces.count <= 2 else { return .failure(.badAddress) }
        let addressText = pieces[0]
        var length: Int? = nil
        if pieces.count == 2 {
            guard let parsed = Int(pieces[1]), pieces[1].allSatisfy({ $0.isNumber }) else {
                return .failure(.badLength)
            }
            length = parsed
        }
        if let v4 = IPv4Address(addressText) {
            let bits = length ?? 32
            guard (0...32).contains(bits) else { return .failure(.badLength) }
            let mask: UInt32 = bits == 0 ? 0 : ~UInt32(0) << (32 - bits)
            guard v4.rawValue & ~mask == 0 else { return .failure(.hostBitsSet) }
            return .success(.v4(v4, length: bits))
        }
        if let v6 = IPv6Address(addressText) {
            let bits = length ?? 128
            guard (0...128).contains(bits) else { return .failure(.badLength) }
            let (highMask, lowMask) = Self.v6Mask(bits)
            guard v6.high & ~highMask == 0, v6.low & ~lowMask == 0 else { return .failure(.hostBitsSet) }
            return .success(.v6(v6, length: bits))
        }
        return .failure(.badAddress)
    }

    public static func v6Mask(_ bits: Int) -> (UInt64, UInt64) {
        let high: UInt64 = bits >= 64 ? ~0 : (bits == 0 ? 0 : ~UInt64(0) << (64 - bits))
        let low: UInt64 = bits <= 64 ? 0 : (bits >= 128 ? ~0 : ~UInt64(0) << (128 - bits))
        return (high, low)
    }

    public func contains(_ address: IPv4Address) -> Bool {
        guard case .v4(let network, let bits) = self else { return false }
        let mask: UInt32 = bits == 0 ? 0 : ~UInt32(0) << (32 - bits)
        return address.rawValue & mask == network.rawValue
    }

    public func contains(_ address: IPv6Address) -> Bool {
        guard case .v6(let network, let bits) = self else { return false }
        let (highMask, lowMask) = Self.v6Mask(bits)
        return address.high & highMask == network.high && address.low & lowMask == network.low
    }

    public var description: String {
        switch self {
        case .v4(let address, let length): return length == 32 ? "\(address)" : "\(address)/\(length)"
        case .v6(let address, let length): return length == 128 ? "\(address)" : "\(address)/\(length)"
        }
    }
}
