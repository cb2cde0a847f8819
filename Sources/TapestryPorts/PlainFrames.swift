import TapestryDatapath
import TapestryWire

/// One transmit queue's frames made fit for a peer that takes no offloads (QEMU's socket
/// backends): partial checksums completed and TSO segments cut in software, each frame with `gap`
/// writable bytes just before it (4 for QEMU's stream length prefix, filled here).
///
/// Memory is allocated once: room for `capacity` frames and a scratch area for segments. When an
/// `add` reports `.full`, the caller sends what is gathered, calls `removeAll()` and adds again.
final class PlainFrames {
    enum Added {
        case added, full, unsupported
        /// A TSO frame whose segments would be longer than IP's 16-bit length field can say
        /// (a hostile or broken guest's gso_size): counted as `oversize`.
        case oversize
    }

    let gap: Int
    // 1024: a 64 KB TSO frame with an MSS down to 64 bytes, and writev's IOV_MAX.
    let capacity = 1024
    private(set) var count = 0
    /// Where each gathered frame starts (its gap is just before) and how long it is.
    let starts: UnsafeMutablePointer<UnsafeMutableRawPointer>
    let lengths: UnsafeMutablePointer<Int>
    /// Which queued frame each gathered frame came from (a segmented frame gives several).
    let sources: UnsafeMutablePointer<Int>
    /// Whether each gathered frame is a segment (in the scratch area, its gap writable before it).
    private let segmented: UnsafeMutablePointer<Bool>
    func isSegment(_ index: Int) -> Bool { segmented[index] }
    private let scratch: UnsafeMutableRawBufferPointer
    private var scratchUsed = 0

    /// The longest frame the peer takes (a VXLAN port's underlay MTU less the outer headers):
    /// TSO segments are cut to fit it, and a longer plain frame is `oversize`.
    var maxFrameLength: Int

    init(gap: Int, scratchBytes: Int = 1 << 18, maxFrameLength: Int = Int.max) {
        self.gap = gap
        self.maxFrameLength = maxFrameLength
        starts = .allocate(capacity: capacity)
        lengths = .allocate(capacity: capacity)
        sources = .allocate(capacity: capacity)
        segmented = .allocate(capacity: capacity)
        scratch = .allocate(byteCount: scratchBytes, alignment: 64)
    }

    deinit {
        starts.deallocate()
        lengths.deallocate()
        sources.deallocate()
        segmented.deallocate()
        scratch.deallocate()
    }

    func removeAll() {
        count = 0
        scratchUsed = 0
    }

    /// Gathers every queued frame of `port`, calling `send` whenever room runs out and once at the
    /// end (it sends what is gathered); stops early when `send` returns false. A frame that cannot
    /// be made plain is counted as `offload-unsupported`.
    func gather(_ queues: TransmitQueues, _ port: PortID, _ drops: PortDrops, send: () -> Bool) {
        removeAll()
        var index = 0
        let queued = queues.count(port)
        while index < queued {
            switch add(queues, port, index) {
            case .added:
                index += 1
            case .unsupported:
                drops.unsent(.offloadUnsupported, bytes: queues.frame(port, index).count)
                index += 1
            case .oversize:
                drops.unsent(.oversize, bytes: queues.frame(port, index).count)
                index += 1
            case .full:
                guard send() else {
                    // The connection broke: what was not gathered yet is lost with it.
                    for rest in index..<queued {
                        drops.unsent(.portDown, bytes: queues.frame(port, rest).count)
                    }
                    return
                }
                removeAll()
            }
        }
        _ = send()
    }

    /// Counts the queued frames behind gathered frames `first...` as dropped, once each (a
    /// segmented frame's pieces are contiguous).
    func countDropped(
        from first: Int, _ reason: DropReason, _ queues: TransmitQueues, _ port: PortID, _ drops: PortDrops
    ) {
        var last = -1
        for i in first..<count where sources[i] != last {
            last = sources[i]
            drops.unsent(reason, bytes: queues.frame(port, last).count)
        }
    }

    /// Gathers queued frame `index` of `port`.
    func add(_ queues: TransmitQueues, _ port: PortID, _ index: Int) -> Added {
        let offload = queues.offload(port, index)
        let frame = queues.mutableFrame(port, index)
        if offload.isGSO {
            guard offload.gsoType & ~VirtioNetHeader.gsoECN != VirtioNetHeader.gsoUDP,
                let headers = TCPSegmentation.headerLength(UnsafeRawBufferPointer(frame))
            else { return .unsupported }
            var mss = Int(offload.gsoSize)
            if mss > maxFrameLength - headers.end { mss = max(0, maxFrameLength - headers.end) }
            if mss > 0, !TCPSegmentation.segmentsFit(frameLength: frame.count, headers: headers, mss: mss) {
                return .oversize
            }
            let bound = TCPSegmentation.outputBound(frameLength: frame.count, headerLength: headers.end, mss: mss, gap: gap)
            let segments = max(1, (frame.count - headers.end + max(1, mss) - 1) / max(1, mss))
            if bound > scratch.count - scratchUsed || segments > capacity - count {
                return count == 0 ? .unsupported : .full
            }
            let area = UnsafeMutableRawBufferPointer(rebasing: scratch[scratchUsed...])
            let made = TCPSegmentation.segment(UnsafeRawBufferPointer(frame), mss: mss, gap: gap, into: area) {
                offset, length in
                guard count < capacity else { return }
                let start = area.baseAddress! + offset
                if gap == 4 { (start - 4).storeBytes(of: UInt32(length).bigEndian, as: UInt32.self) }
                starts[count] = start
                lengths[count] = length
                sources[count] = index
                segmented[count] = true
                count += 1
                scratchUsed = max(scratchUsed, scratch.count - area.count + offset + length)
            }
            return made == nil ? .unsupported : .added
        }
        guard count < capacity else { return .full }
        if frame.count > maxFrameLength { return .oversize }
        if offload.needsChecksum, !VirtioNetHeader.completeChecksum(frame, offload) { return .unsupported }
        // A frame that was not cut starts where it is queued (QEMU's length prefix goes in the
        // queue slot's prefix just before it); only segments have a gap of their own.
        let prefixed = gap == 4 ? queues.frameWithLengthPrefix(port, index) : UnsafeRawBufferPointer(frame)
        starts[count] = UnsafeMutableRawPointer(mutating: prefixed.baseAddress!) + (gap == 4 ? 4 : 0)
        segmented[count] = false
        lengths[count] = frame.count
        sources[count] = index
        count += 1
        return .added
    }
}
