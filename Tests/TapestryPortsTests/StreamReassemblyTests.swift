import Testing
import TapestryPorts

/// The stream ports' framing without sockets: frames split anywhere come out whole, a length
/// over the limit is refused, and there is always room to read on.
@Suite struct StreamReassemblyTests {
    static func framed(_ frames: [[UInt8]]) -> [UInt8] {
        frames.flatMap { frame in withUnsafeBytes(of: UInt32(frame.count).bigEndian, Array.init) + frame }
    }

    /// Feeds `stream` in pieces of `piece` bytes, taking every whole frame after each.
    static func run(_ stream: [UInt8], piece: Int, max: Int = 100) -> (frames: [[UInt8]], last: StreamReassembly.Next) {
        let input = StreamReassembly(maxFrameLength: max)
        var frames: [[UInt8]] = []
        var offset = 0
        var last = StreamReassembly.Next.needMore
        while true {
            loop: while true {
                last = input.next()
                switch last {
                case .frame(let frame): frames.append(Array(frame))
                case .needMore: break loop
                case .tooLong: return (frames, last)
                }
            }
            guard offset < stream.count else { return (frames, last) }
            let room = input.room()
            #expect(room.count > 0)
            let count = min(piece, room.count, stream.count - offset)
            stream.withUnsafeBytes { bytes in
                room.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)]))
            }
            input.didFill(count)
            offset += count
        }
    }

    @Test(arguments: [1, 3, 4, 7, 1000]) func framesSplitAnywhereComeOutWhole(piece: Int) {
        let frames: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 9, count: 100), [4]]
        let result = Self.run(Self.framed(frames), piece: piece)
        #expect(result.frames == frames)
        #expect(result.last == .needMore)
    }

    @Test func aLengthOverTheLimitIsRefused() {
        let result = Self.run(Self.framed([[1], Array(repeating: 0, count: 101)]), piece: 5)
        #expect(result.frames == [[1]])
        #expect(result.last == .tooLong(101))
    }

    /// A peer trickling many largest frames never fills the buffer so that nothing can be read.
    @Test func thereIsAlwaysRoomToReadOn() {
        let frames = (0..<20_000).map { [UInt8](repeating: UInt8(truncatingIfNeeded: $0), count: 100) }
        let result = Self.run(Self.framed(frames), piece: 4093)
        #expect(result.frames.count == frames.count)
    }
}
