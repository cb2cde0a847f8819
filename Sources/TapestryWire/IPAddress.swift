/// An IPv4 or an IPv6 address: a load balancer's VIP or backend.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// Dotted IPv4, or RFC 4291 IPv6 text. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is
    /// refused: it names an IPv4 host, which the IPv4 form says without ambiguity.
    public init?(_ text: some StringProtocol) {
        if let v4 = IPv4Address(text) {
            self = .v4(v4)
        } else if let v6 = IPv6Address(text), !Self.isMapped(v6) {
            self = .v6(v6)
        } else {
            return nil
        }
    }

    public static func isMapped(_ address: IPv6Address) -> Bool {
        address.high == 0 && address.low >> 32 == 0xFFFF
    }

    /// An address one host can own: not unspecified, multicast, limited broadcast, class E or
    /// loopback (127/8, ::1).
    public var isUnicastHost: Bool {
        switch self {
        case .v4(let address):
            let raw = address.rawValue
            return raw != 0 && raw >> 28 < 0xE && raw >> 24 != 127
        case .v6(let address):
            return (address.high | address.low) != 0 && address.high >> 56 != 0xFF
                && !(address.high == 0 && address.low == 1)
        }
    }

    public var isIPv6: Bool {
        if case .v6 = self { return true }
        return false
    }

    /// The address as the connection table holds it: IPv6 as it is, IPv4 mapped (`::ffff:a.b.c.d`).
    public var high: UInt64 {
        switch self {
        case .v4: 0
        case .v6(let address): address.high
        }
    }
    public var low: UInt64 {
        switch self {
        case .v4(let address): 0xFFFF_0000_0000 | UInt64(address.rawValue)
        case .v6(let address): address.low
        }
    }

    public var description: String {
        switch self {
        case .v4(let address): address.description
        case .v6(let address): address.description
        }
    }

    /// `10.0.10.11:8080`, `[fd00:10::11]:8080`: how backends are written and shown.
    public func withPort(_ port: UInt16) -> String {
        switch self {
        case .v4(let address): "\(address):\(port)"
        case .v6(let address): "[\(address)]:\(port)"
        }
    }

    /// Parses `IP:PORT` (IPv6 in brackets); nil when the text is neither.
    public static func parseEndpoint(_ text: some StringProtocol) -> (address: IPAddress, port: Substring)? {
        let text = Substring(text)
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":"),
                let v6 = IPv6Address(text[text.index(after: text.startIndex)..<close]), !isMapped(v6)
            else { return nil }
            return (.v6(v6), text[text.index(close, offsetBy: 2)...])
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let v4 = IPv4Address(parts[0]) else { return nil }
        return (.v4(v4), parts[1])
    }
}

extension IPPrefix {
    public func contains(_ address: IPAddress) -> Bool {
        switch address {
        case .v4(let v4): contains(v4)
        case .v6(let v6): contains(v6)
        }
    }
}
