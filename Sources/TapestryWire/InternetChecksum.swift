/// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
public enum InternetChecksum {
    /// One's-complement sum of 16-bit big-endian words, not yet folded; an odd last byte is padded
    /// with zero.
    ///
    /// The result is the sum only modulo 0xFFFF (what `fold` keeps), zero exactly when every byte
    /// and `initial` are. Long regions are summed four 32-bit words at a time in the machine's
    /// byte order (RFC 1071: the one's-complement sum does not depend on the order the words are
    /// added in, and a byte swap of the folded sum gives the big-endian one): software
    /// segmentation sums every payload byte it sends, and two bytes at a time it was a fifth of
    /// the switch's time on a VXLAN port.
    public static func sum(_ bytes: UnsafeRawBufferPointer, initial: UInt64 = 0) -> UInt64 {
        var total = initial
        var index = 0
        let count = bytes.count
        if count >= 64, let base = bytes.baseAddress {
            // Four accumulators of 32-bit words: no carry is lost before 2^32 additions.
            var a: UInt64 = 0
            var b: UInt64 = 0
            var c: UInt64 = 0
            var d: UInt64 = 0
            while index + 16 <= count {
                a &+= UInt64(base.loadUnaligned(fromByteOffset: index, as: UInt32.self))
                b &+= UInt64(base.loadUnaligned(fromByteOffset: index + 4, as: UInt32.self))
                c &+= UInt64(base.loadUnaligned(fromByteOffset: index + 8, as: UInt32.self))
                d &+= UInt64(base.loadUnaligned(fromByteOffset: index + 12, as: UInt32.self))
                index += 16
            }
            var native = (a & 0xFFFF_FFFF) &+ (a >> 32) &+ (b & 0xFFFF_FFFF) &+ (b >> 32)
                &+ (c & 0xFFFF_FFFF) &+ (c >> 32) &+ (d & 0xFFFF_FFFF) &+ (d >> 32)
            while native >> 16 != 0 { native = (native & 0xFFFF) &+ (native >> 16) }
            total &+= UInt64(UInt16(truncatingIfNeeded: native).bigEndian)
        }
        // The rest (all of a short region), big-endian 16-bit words; `index` is even here.
        while index + 1 < count {
            total &+= UInt64(bytes.u16(index))
            index += 2
        }
        if index < count { total &+= UInt64(bytes[index]) << 8 }
        return total
    }

    /// Folds a sum to 16 bits and complements it: the value to store in a checksum field, and 0
    /// when summing a region that includes a correct checksum.
    public static func fold(_ sum: UInt64) -> UInt16 {
        var value = sum
        while value >> 16 != 0 { value = (value & 0xFFFF) + (value >> 16) }
        return ~UInt16(value)
    }

    /// RFC 1624 equation 3: HC' = ~(~HC + ~m + m'), for one 16-bit field changing from `old` to `new`.
    @inline(__always)
    public static func update(_ checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        var sum = UInt32(~checksum) + UInt32(~old) + UInt32(new)
        sum = (sum & 0xFFFF) + (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16)
        return ~UInt16(truncatingIfNeeded: sum)
    }

    /// The same for a 32-bit field (an IPv4 address), as two 16-bit halves.
    @inline(__always)
    public static func update(_ checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        let high = update(checksum, old: UInt16(old >> 16), new: UInt16(new >> 16))
        return update(high, old: UInt16(truncatingIfNeeded: old), new: UInt16(truncatingIfNeeded: new))
    }

    /// Sum of the IPv4 pseudo-header (RFC 793 / RFC 768) for an L4 checksum.
    public static func ipv4PseudoHeaderSum(source: IPv4Address, destination: IPv4Address, proto: UInt8, length: Int)
        -> UInt64
    {
        UInt64(source.rawValue >> 16) + UInt64(source.rawValue & 0xFFFF) + UInt64(destination.rawValue >> 16)
            + UInt64(destination.rawValue & 0xFFFF) + UInt64(proto) + UInt64(length)
    }

    /// Sum of the IPv6 pseudo-header (RFC 8200 section 8.1).
    /// The four 16-bit words of `word`, added (not folded).
    @inline(__always)
    public static func sum16(_ word: UInt64) -> UInt64 {
        (word >> 48) + (word >> 32 & 0xFFFF) + (word >> 16 & 0xFFFF) + (word & 0xFFFF)
    }

    public static func ipv6PseudoHeaderSum(source: IPv6Address, destination: IPv6Address, proto: UInt8, length: Int)
        -> UInt64
    {
        // No arrays: answers the switch writes per refused connection call this.
        UInt64(proto) + UInt64(length) + sum16(source.high) + sum16(source.low) + sum16(destination.high)
            + sum16(destination.low)
    }
}
