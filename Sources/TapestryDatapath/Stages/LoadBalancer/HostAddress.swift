import TapestryWire

/// An IPv4 or IPv6 address as the load balancer compares it per frame: two words and the family
/// (IPv4 held mapped, `::ffff:a.b.c.d`, as the connection table holds it), no enum to switch on.
struct HostAddress: Equatable {
    var high: UInt64
    var low: UInt64
    var isIPv6: Bool

    init(_ address: IPAddress) {
        high = address.high
        low = address.low
        isIPv6 = address.isIPv6
    }

    init(ipv4: UInt32) {
        high = 0
        low = FlowKey.mapped(ipv4)
        isIPv6 = false
    }

    init(ipv6High high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
        isIPv6 = true
    }

    /// A frame's source (`source`) or destination address; its layer 3 is IPv4 or IPv6.
    @inline(__always)
    init(_ frame: UnsafeRawBufferPointer, l3: Int, isIPv6: Bool, source: Bool) {
        if isIPv6 {
            let at = l3 + (source ? 8 : 24)
            self.init(ipv6High: frame.u64(at), low: frame.u64(at + 8))
        } else {
            self.init(ipv4: frame.u32(l3 + (source ? 12 : 16)))
        }
    }

    var ipv4: IPv4Address { IPv4Address(rawValue: UInt32(truncatingIfNeeded: low)) }
    var ipv6: IPv6Address { IPv6Address(high: high, low: low) }

    /// An address an answer may go to: IPv4 not 0.0.0.0, loopback, multicast, class E or
    /// broadcast; IPv6 not `::`, `::1`, IPv4-mapped or multicast.
    var isUnicast: Bool {
        if isIPv6 {
            let mapped = high == 0 && low >> 32 == 0xFFFF
            return (high | low) != 0 && !(high == 0 && low == 1) && !mapped && high >> 56 != 0xFF
        }
        let raw = UInt32(truncatingIfNeeded: low)
        return raw != 0 && raw >> 24 != 127 && raw >> 28 < 0xE
    }

    /// Branch-free: the per-frame scans (backends, VIPs) compare many addresses that differ in
    /// their low word, and IPv4 ones all share a high word of 0.
    @inline(__always)
    static func == (a: HostAddress, b: HostAddress) -> Bool {
        ((a.low ^ b.low) | (a.high ^ b.high)) == 0 && a.isIPv6 == b.isIPv6
    }

    /// Writes the address at `offset` (4 or 16 bytes).
    @inline(__always)
    func store(_ out: UnsafeMutableRawBufferPointer, at offset: Int) {
        if isIPv6 {
            out.setU64(offset, high)
            out.setU64(offset + 8, low)
        } else {
            out.setU32(offset, UInt32(truncatingIfNeeded: low))
        }
    }
}
