import TapestryPorts

/// What a socket-port peer sends (QEMU's stream framing) through StreamReassembly, the stream
/// port's reassembler, cut into reads at places the input chooses.
///
/// Input: byte 0 picks the largest frame (64 to 64 * 256 + 63 bytes); then records of a read
/// size (1 byte, 0 meaning 256) and that many stream bytes.
///
/// Invariants: the frames that come out, and where a too-long length stops the stream, are
/// exactly what a plain reading of the concatenated bytes gives; while no whole frame is
/// buffered there is room to read (a peer cannot stall the port); nothing buffered exceeds the
/// buffer.
enum StreamTarget {
    static func run(_ data: UnsafeRawBufferPointer) throws(InvariantViolation) {
        var input = ByteReader(data)
        let maxFrameLength = 64 + Int(input.u8()) * 64
        let reassembly = StreamReassembly(maxFrameLength: maxFrameLength)
        var stream: [UInt8] = []
        var got: [[UInt8]] = []
        var refused: Int? = nil
        reading: while !input.isAtEnd {
            let wanted = Int(input.u8())
            let chunk = input.bytes(wanted == 0 ? 256 : wanted)
            let room = reassembly.room()
            try require(room.count > 0, "no room to read with \(reassembly.buffered) bytes buffered")
            let count = min(room.count, chunk.count)
            if count > 0 { room.baseAddress!.copyMemory(from: chunk.baseAddress!, byteCount: count) }
            reassembly.didFill(count)
            stream += chunk.prefix(count)
            try require(reassembly.buffered <= reassembly.capacity, "buffered \(reassembly.buffered) of \(reassembly.capacity)")
            while true {
                let whole = reassembly.hasWholeFrame
                switch reassembly.next() {
                case .frame(let frame):
                    try require(whole, "hasWholeFrame false before a frame")
                    got.append(Array(frame))
                case .needMore:
                    try require(!whole, "hasWholeFrame true but needMore")
                    continue reading
                case .tooLong(let length):
                    try require(whole, "hasWholeFrame false before a refusal")
                    refused = length
                    break reading
                }
            }
        }
        // The reference: read the concatenation front to back.
        var expected: [[UInt8]] = []
        var expectedRefusal: Int? = nil
        var offset = 0
        while stream.count - offset >= 4 {
            let length = Int(stream[offset]) << 24 | Int(stream[offset + 1]) << 16 | Int(stream[offset + 2]) << 8 | Int(stream[offset + 3])
            if length > maxFrameLength {
                expectedRefusal = length
                break
            }
            guard stream.count - offset - 4 >= length else { break }
            expected.append(Array(stream[(offset + 4)..<(offset + 4 + length)]))
            offset += 4 + length
        }
        try require(got == expected, "frames differ: got \(got.count), expected \(expected.count)")
        try require(refused == expectedRefusal, "refusal \(String(describing: refused)), expected \(String(describing: expectedRefusal))")
        if refused == nil {
            try require(reassembly.buffered == stream.count - offset, "buffered \(reassembly.buffered), expected \(stream.count - offset)")
        }
    }
}
