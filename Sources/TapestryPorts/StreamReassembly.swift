#if canImport(Glibc)
import Glibc
#endif

/// The receive side of QEMU's stream framing (each frame is a 4-byte big-endian length, then the
/// frame), over one reassembly buffer allocated once. No sockets: `StreamSocketPort` reads into
/// `room()` and takes frames with `next()`, and the fuzz target drives it with arbitrary bytes.
///
/// The buffer holds `4 + maxFrameLength` plus 256 KiB, so a read can take many small frames at
/// once. Whatever the peer sends, `room()` is never empty while `next()` says `.needMore`: the
/// port can always read on, so a peer cannot stall it with a frame that never fits.
public final class StreamReassembly {
    public enum Next: Equatable {
        /// A whole frame, valid until the next `room()`; it is consumed.
        case frame(UnsafeRawBufferPointer)
        /// No whole frame is buffered.
        case needMore
        /// The buffered length prefix announces more than `maxFrameLength`: the stream is not
        /// QEMU's framing and cannot be resynchronised.
        case tooLong(Int)

        public static func == (lhs: Next, rhs: Next) -> Bool {
            switch (lhs, rhs) {
            case (.frame(let a), .frame(let b)): return a.baseAddress == b.baseAddress && a.count == b.count
            case (.needMore, .needMore): return true
            case (.tooLong(let a), .tooLong(let b)): return a == b
            default: return false
            }
        }
    }

    public let maxFrameLength: Int
    public let capacity: Int
    private let storage: UnsafeMutableRawPointer
    private var start = 0
    private var end = 0

    public init(maxFrameLength: Int) {
        self.maxFrameLength = maxFrameLength
        capacity = 4 + maxFrameLength + (1 << 18)
        storage = .allocate(byteCount: capacity, alignment: 64)
    }

    deinit { storage.deallocate() }

    /// Bytes received and not yet taken as frames.
    public var buffered: Int { end - start }

    /// Forgets everything buffered (the connection ended: a partial frame cannot be finished).
    public func reset() {
        start = 0
        end = 0
    }

    /// The length the buffered prefix announces, when 4 bytes are buffered.
    public var announcedLength: Int? {
        guard end - start >= 4 else { return nil }
        return Int(UInt32(bigEndian: storage.loadUnaligned(fromByteOffset: start, as: UInt32.self)))
    }

    /// Whether `next()` would return a frame or a length to refuse rather than `.needMore`:
    /// work epoll cannot report, since it only watches the socket, not this buffer.
    public var hasWholeFrame: Bool {
        guard let length = announcedLength else { return false }
        return length > maxFrameLength || end - start >= 4 + length
    }

    /// The next buffered frame, if whole.
    public func next() -> Next {
        guard let length = announcedLength else {
            if start == end { reset() }
            return .needMore
        }
        guard length <= maxFrameLength else { return .tooLong(length) }
        guard end - start >= 4 + length else { return .needMore }
        let frame = UnsafeRawBufferPointer(start: storage + start + 4, count: length)
        start += 4 + length
        // Emptied: start over at the front (the frame's bytes stay until the next write).
        if start == end { reset() }
        return .frame(frame)
    }

    /// Where the next read goes. Moves the buffered bytes to the front first when less than a
    /// whole largest frame fits after them, so the room is never empty while no whole frame is
    /// buffered: then buffered < 4 + maxFrameLength, and capacity exceeds that.
    public func room() -> UnsafeMutableRawBufferPointer {
        if start > 0, capacity - start < 4 + maxFrameLength {
            let count = end - start
            memmove(storage, storage + start, count)  // the regions may overlap
            start = 0
            end = count
        }
        return UnsafeMutableRawBufferPointer(start: storage + end, count: capacity - end)
    }

    /// `count` bytes were written at the start of the last `room()`.
    public func didFill(_ count: Int) {
        precondition(count >= 0 && count <= capacity - end, "filled more than room() gave")
        end += count
    }
}
