/// Unaligned big-endian loads and stores over raw frame memory.
///
/// Frames sit at arbitrary offsets inside their slots (a VLAN tag may have been pushed into the
/// headroom), so every multi-byte field is read with `loadUnaligned`. Callers check bounds once,
/// when a view is validated; these helpers do not check again.
extension UnsafeRawBufferPointer {
    @inline(__always)
    public func u8(_ offset: Int) -> UInt8 {
        self[offset]
    }

    @inline(__always)
    public func u16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: baseAddress.unsafelyUnwrapped.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always)
    public func u32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: baseAddress.unsafelyUnwrapped.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always)
    public func u64(_ offset: Int) -> UInt64 {
        UInt64(bigEndian: baseAddress.unsafelyUnwrapped.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// Six bytes as a MAC address.
    @inline(__always)
    public func mac(_ offset: Int) -> MACAddress {
        let high = UInt64(u16(offset))
        let low = UInt64(u32(offset + 2))
        return MACAddress(rawValue: high << 32 | low)
    }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    public func u16(_ offset: Int) -> UInt16 {
        UnsafeRawBufferPointer(self).u16(offset)
    }

    @inline(__always)
    public func u32(_ offset: Int) -> UInt32 {
        UnsafeRawBufferPointer(self).u32(offset)
    }

    @inline(__always)
    public func u64(_ offset: Int) -> UInt64 {
        UnsafeRawBufferPointer(self).u64(offset)
    }

    @inline(__always)
    public func setU64(_ offset: Int, _ value: UInt64) {
        baseAddress.unsafelyUnwrapped.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt64.self)
    }

    @inline(__always)
    public func setU16(_ offset: Int, _ value: UInt16) {
        baseAddress.unsafelyUnwrapped.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inline(__always)
    public func setU32(_ offset: Int, _ value: UInt32) {
        baseAddress.unsafelyUnwrapped.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }

    @inline(__always)
    public func setMAC(_ offset: Int, _ mac: MACAddress) {
        setU16(offset, UInt16(truncatingIfNeeded: mac.rawValue >> 32))
        setU32(offset + 2, UInt32(truncatingIfNeeded: mac.rawValue))
    }
}
