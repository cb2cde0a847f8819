import TapestryWire

/// What a VXLAN port takes from its peers: byte 0's bit 0 picks a VXLAN payload as its UDP
/// socket reads it (`VXLAN.decode`) or a whole outer IPv4 packet as an underlay capture holds it
/// (`VXLAN.decodeUnderlay` for port 4789, then `decode`; bit 1 makes its IPv4 header checksum
/// valid and its UDP checksum 0 first); the rest is the packet.
///
/// Invariants: an accepted payload has room for an inner Ethernet header and its header is exactly
/// what `writeHeader` writes for its VNI; an accepted underlay's payload lies inside the packet,
/// after the outer headers, and the outer headers `writeUnderlay` writes for the same addresses,
/// ports and VNI decode to the same values.
enum VXLANTarget {
    static func run(_ data: UnsafeRawBufferPointer) throws(InvariantViolation) {
        guard let mode = data.first else { return }
        let packet = UnsafeRawBufferPointer(rebasing: data[1...])
        guard mode & 1 == 1 else {
            try checkPayload(packet)
            return
        }
        // Bit 1: the outer IPv4 header checksum is made right and the UDP checksum 0 first, so
        // that inputs get past the checksum checks to everything after them.
        var fixed = Array(packet)
        if mode & 2 != 0, fixed.count >= 20, fixed[0] >> 4 == 4 {
            let headerLength = min(Int(fixed[0] & 0x0F) * 4, fixed.count)
            fixed[10] = 0
            fixed[11] = 0
            let sum = fixed.withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: $0[0..<headerLength]))) }
            fixed[10] = UInt8(sum >> 8)
            fixed[11] = UInt8(sum & 0xFF)
            if headerLength + 8 <= fixed.count {
                fixed[headerLength + 6] = 0
                fixed[headerLength + 7] = 0
            }
        }
        var violation: InvariantViolation?
        fixed.withUnsafeBytes { buffer in
            do throws(InvariantViolation) { try checkUnderlay(buffer) } catch { violation = error }
        }
        if let violation { throw violation }
    }

    static func checkUnderlay(_ packet: UnsafeRawBufferPointer) throws(InvariantViolation) {
        guard case .success(let underlay) = VXLAN.decodeUnderlay(packet, port: VXLAN.defaultPort) else { return }
        try require(
            underlay.payload.lowerBound >= 28 && underlay.payload.upperBound <= packet.count,
            "payload \(underlay.payload) of a \(packet.count)-byte packet")
        let payload = UnsafeRawBufferPointer(rebasing: packet[underlay.payload])
        guard let vni = try checkPayload(payload) else { return }
        let innerLength = payload.count - VXLAN.headerLength
        var rebuilt = [UInt8](repeating: 0, count: VXLAN.underlayHeaderLength + innerLength)
        let total = rebuilt.withUnsafeMutableBytes { buffer in
            VXLAN.writeUnderlay(
                at: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<VXLAN.underlayHeaderLength]), innerLength: innerLength,
                vni: vni, source: underlay.source, destination: underlay.destination,
                sourcePort: underlay.sourcePort, destinationPort: underlay.destinationPort)
        }
        try require(total == rebuilt.count, "writeUnderlay gave \(String(describing: total)) for \(rebuilt.count) bytes")
        let again = rebuilt.withUnsafeBytes { VXLAN.decodeUnderlay($0, port: VXLAN.defaultPort) }
        guard case .success(let back) = again else { throw InvariantViolation("a rebuilt underlay does not decode: \(again)") }
        try require(
            back.source == underlay.source && back.destination == underlay.destination
                && back.sourcePort == underlay.sourcePort && back.payload == 28..<rebuilt.count,
            "rebuilt \(back) from \(underlay)")
    }

    /// The VNI when `payload` is accepted.
    @discardableResult
    static func checkPayload(_ payload: UnsafeRawBufferPointer) throws(InvariantViolation) -> UInt32? {
        guard case .success(let vni) = VXLAN.decode(payload) else { return nil }
        try require(vni <= VXLAN.maxVNI, "VNI \(vni)")
        try require(payload.count >= VXLAN.headerLength + EthernetView.length, "accepted \(payload.count) bytes")
        var header = [UInt8](repeating: 0xFF, count: VXLAN.headerLength)
        header.withUnsafeMutableBytes { VXLAN.writeHeader(vni: vni, at: $0) }
        try require(Array(payload[0..<VXLAN.headerLength]) == header, "header \(Array(payload[0..<8])) is not what VNI \(vni) writes")
        return vni
    }
}
