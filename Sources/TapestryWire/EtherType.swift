/// EtherType and IP protocol numbers Tapestry looks at.
public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
    public static let vlan: UInt16 = 0x8100  // IEEE 802.1Q C-tag
    public static let qinq: UInt16 = 0x88A8  // IEEE 802.1ad S-tag
    public static let ipv6: UInt16 = 0x86DD

    @inline(__always)
    public static func isTag(_ type: UInt16) -> Bool { type == vlan || type == qinq }
}

public enum IPProtocol {
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let icmpv6: UInt8 = 58
}
