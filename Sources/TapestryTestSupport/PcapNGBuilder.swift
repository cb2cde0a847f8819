/// Builds pcapng files byte by byte (little-endian), for captures `PcapWriter` cannot make: a
/// nanosecond interface with an `if_tsoffset`, 64-bit timestamps past 2262, several interfaces.
/// Tests and fuzz seeds use it to reach the reader's edge cases.
public struct PcapNGBuilder {
    public private(set) var bytes: [UInt8] = []

    /// Starts a file with a section header block.
    public init() {
        var body: [UInt8] = []
        body += Self.le(UInt32(0x1A2B_3C4D))  // byte-order magic
        body += Self.le(UInt16(1)) + Self.le(UInt16(0))  // version 1.0
        body += Self.le(UInt64.max)  // section length: unknown
        block(type: 0x0A0D_0D0A, body)
    }

    /// An Ethernet interface; `nanoseconds` sets if_tsresol 9, `offsetSeconds` adds if_tsoffset.
    public mutating func interface(nanoseconds: Bool = true, offsetSeconds: Int64? = nil, snapLength: UInt32 = 262_144) {
        var body: [UInt8] = []
        body += Self.le(UInt16(1)) + Self.le(UInt16(0))  // LINKTYPE_ETHERNET, reserved
        body += Self.le(snapLength)
        if nanoseconds { body += Self.option(9, [9]) }
        if let offsetSeconds { body += Self.option(14, Self.le(UInt64(bitPattern: offsetSeconds))) }
        body += Self.option(0, [])
        block(type: 1, body)
    }

    /// An enhanced packet block with a raw 64-bit timestamp in the interface's units.
    public mutating func packet(interface: UInt32 = 0, timestamp: UInt64, _ frame: [UInt8], originalLength: UInt32? = nil) {
        var body: [UInt8] = []
        body += Self.le(interface)
        body += Self.le(UInt32(truncatingIfNeeded: timestamp >> 32)) + Self.le(UInt32(truncatingIfNeeded: timestamp))
        body += Self.le(UInt32(frame.count)) + Self.le(originalLength ?? UInt32(frame.count))
        body += frame
        body += [UInt8](repeating: 0, count: (4 - frame.count % 4) % 4)
        block(type: 6, body)
    }

    mutating func block(type: UInt32, _ body: [UInt8]) {
        let length = UInt32(12 + body.count)
        bytes += Self.le(type) + Self.le(length) + body + Self.le(length)
    }

    static func option(_ code: UInt16, _ value: [UInt8]) -> [UInt8] {
        Self.le(code) + Self.le(UInt16(value.count)) + value + [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
    }

    static func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }
}
