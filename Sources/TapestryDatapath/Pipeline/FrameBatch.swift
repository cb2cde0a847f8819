import TapestryWire

/// A batch of frames received on one port, in preallocated slots.
///
/// Memory is allocated once, in `init`: `capacity` slots of `headroom + maxFrameLength` bytes, plus
/// parallel arrays for frame start, length, metadata and verdict. A frame starts `headroom` bytes
/// into its slot so a tag can be pushed in place. `removeAll()` keeps everything for the next batch,
/// so steady-state forwarding allocates nothing (Open vSwitch's `dp_packet_batch`, VPP's frames).
public final class FrameBatch {
    public static let headroom = 64

    public let capacity: Int
    public let maxFrameLength: Int
    public let slotSize: Int
    /// The port every frame of this batch arrived on.
    public var ingressPort: PortID = 0
    /// The frame count lives in allocated memory rather than a stored `var`: a class's stored
    /// property would cost a dynamic exclusivity check on every access, which measured as a fifth
    /// of the per-frame time.
    private let countStorage: UnsafeMutablePointer<Int>
    public var count: Int {
        @inline(__always) get { countStorage.pointee }
    }

    @usableFromInline let storage: UnsafeMutableRawPointer
    @usableFromInline let starts: UnsafeMutablePointer<Int32>
    @usableFromInline let lengths: UnsafeMutablePointer<Int32>
    public let metadata: UnsafeMutablePointer<FrameMetadata>
    public let verdicts: UnsafeMutablePointer<Verdict>

    public init(capacity: Int = 32, maxFrameLength: Int = 9216 + 18) {
        precondition(capacity > 0 && maxFrameLength >= 64)
        self.capacity = capacity
        self.maxFrameLength = maxFrameLength
        self.slotSize = (Self.headroom + maxFrameLength + 63) & ~63
        storage = UnsafeMutableRawPointer.allocate(byteCount: slotSize * capacity, alignment: 64)
        countStorage = .allocate(capacity: 1)
        countStorage.initialize(to: 0)
        starts = .allocate(capacity: capacity)
        lengths = .allocate(capacity: capacity)
        metadata = .allocate(capacity: capacity)
        metadata.initialize(repeating: FrameMetadata(), count: capacity)
        verdicts = .allocate(capacity: capacity)
        verdicts.initialize(repeating: .pass, count: capacity)
    }

    deinit {
        storage.deallocate()
        countStorage.deallocate()
        starts.deallocate()
        lengths.deallocate()
        metadata.deallocate()
        verdicts.deallocate()
    }

    public var isFull: Bool { count == capacity }
    public var isEmpty: Bool { count == 0 }

    public func removeAll() { countStorage.pointee = 0 }

    /// Copies a frame into the next slot. Returns false when the batch is full or the frame is
    /// longer than `maxFrameLength` (the caller counts that drop).
    @discardableResult
    public func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard count < capacity, bytes.count <= maxFrameLength else { return false }
        let slot = storage + count * slotSize + Self.headroom
        if let source = bytes.baseAddress { slot.copyMemory(from: source, byteCount: bytes.count) }
        commit(length: bytes.count)
        return true
    }

    /// The next free slot's frame area (`maxFrameLength` bytes), for a driver that reads straight
    /// into it; follow with `commit(length:)`. Nil when the batch is full.
    public func nextFreeFrameArea() -> UnsafeMutableRawBufferPointer? {
        guard count < capacity else { return nil }
        return UnsafeMutableRawBufferPointer(
            start: storage + count * slotSize + Self.headroom, count: maxFrameLength)
    }

    /// Adds the frame written into `nextFreeFrameArea()`.
    public func commit(length: Int) {
        commit(length: length, offload: VirtioNetHeader())
    }

    @inline(__always)
    func commit(length: Int, offload: VirtioNetHeader) {
        let index = countStorage.pointee
        precondition(index < capacity && length <= maxFrameLength)
        starts[index] = Int32(Self.headroom)
        lengths[index] = Int32(length)
        verdicts[index] = .pass
        metadata[index].offload = offload
        // Only a tunnel's decapsulation names the network before classification; a frame
        // committed any other way on a VXLAN port is dropped rather than take a stale network.
        metadata[index].network = VLANIngressStage.unclassified
        metadata[index].remote = 0
        countStorage.pointee = index + 1
    }

    /// Adds an inner frame a VXLAN port decapsulated (`VXLANEndpoint.admit`) into
    /// `nextFreeFrameArea()`: it enters `network`, from the port's remote number `remote`.
    public func commitTunnelFrame(length: Int, network: NetworkID, remote: UInt16) {
        let index = countStorage.pointee
        commit(length: length, offload: VirtioNetHeader())
        metadata[index].network = network
        metadata[index].remote = remote
    }

    /// Copies a decapsulated inner frame into the next slot (`commitTunnelFrame`); false when the
    /// batch is full or the frame too long.
    @discardableResult
    public func appendTunnelFrame(_ bytes: UnsafeRawBufferPointer, network: NetworkID, remote: UInt16) -> Bool {
        guard let area = nextFreeFrameArea(), bytes.count <= maxFrameLength else { return false }
        if let source = bytes.baseAddress { area.baseAddress!.copyMemory(from: source, byteCount: bytes.count) }
        commitTunnelFrame(length: bytes.count, network: network, remote: remote)
        return true
    }

    /// The next free slot as a TAP device with IFF_VNET_HDR reads it: the 12-byte virtio-net
    /// header lands in the headroom, the frame where frames start. Follow with
    /// `commitWithVirtioHeader(readLength:)`. Nil when the batch is full.
    public func nextFreeAreaWithVirtioHeader() -> UnsafeMutableRawBufferPointer? {
        guard count < capacity else { return nil }
        return UnsafeMutableRawBufferPointer(
            start: storage + count * slotSize + Self.headroom - VirtioNetHeader.length,
            count: VirtioNetHeader.length + maxFrameLength)
    }

    /// Adds the frame read into `nextFreeAreaWithVirtioHeader()`; `readLength` counts the header.
    /// Returns false (adding nothing) when the read was too short to hold a header and an
    /// Ethernet header's worth of frame.
    public func commitWithVirtioHeader(readLength: Int) -> Bool {
        guard readLength >= VirtioNetHeader.length else { return false }
        let header = VirtioNetHeader(loading: storage + count * slotSize + Self.headroom - VirtioNetHeader.length)
        commit(length: readLength - VirtioNetHeader.length, offload: header)
        return true
    }

    /// The frame area of the free slot `ahead` places after the next one (0: the next), for a
    /// driver that receives several frames in one call; commit them in order. Nil past capacity.
    public func freeFrameArea(ahead: Int) -> UnsafeMutableRawBufferPointer? {
        guard count + ahead < capacity else { return nil }
        return UnsafeMutableRawBufferPointer(
            start: storage + (count + ahead) * slotSize + Self.headroom, count: maxFrameLength)
    }

    /// The virtio-net header of frame `index` as received (its offsets count from the frame's start).
    public func setOffload(_ index: Int, _ header: VirtioNetHeader) { metadata[index].offload = header }

    /// The bytes of frame `index`.
    @inline(__always)
    public func frame(_ index: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage + index * slotSize + Int(starts[index]), count: Int(lengths[index]))
    }

    @inline(__always)
    public func length(_ index: Int) -> Int { Int(lengths[index]) }

    /// The whole slot of frame `index`, headroom included, and where the frame starts in it; for
    /// rewrites that change the frame's length (`FrameRewriter.pushTag`).
    public func slot(_ index: Int) -> (region: UnsafeMutableRawBufferPointer, start: Int) {
        (UnsafeMutableRawBufferPointer(start: storage + index * slotSize, count: slotSize), Int(starts[index]))
    }

    /// Records a new start and length after a length-changing rewrite of frame `index`.
    public func setBounds(_ index: Int, start: Int, length: Int) {
        precondition(start >= 0 && start + length <= slotSize)
        starts[index] = Int32(start)
        lengths[index] = Int32(length)
    }
}
