import TapestryWire

/// Per-port output of one batch: the frames the pipeline decided to send, already tagged or
/// untagged for their port.
///
/// Each port has `batchCapacity` preallocated slots: a frame goes at most once to a port, so one
/// batch never overflows them. The driver drains every queue after each batch (writes to a TAP,
/// to a pcap, or into a test's memory port) and calls `removeAll()`.
public final class TransmitQueues {
    public let portCount: Int
    public let batchCapacity: Int
    public let slotSize: Int
    /// Room before each frame: the virtio-net header (its last 12 bytes), QEMU's 4-byte length,
    /// or a VXLAN port's outer IPv4, UDP and VXLAN headers (36 bytes), written in place.
    public static let prefix = 48
    /// A queued frame's `remote` when it goes to every remote of its VXLAN port (a flood).
    public static let allRemotes = UInt16.max
    @usableFromInline let storage: UnsafeMutableRawPointer
    @usableFromInline let lengths: UnsafeMutablePointer<Int32>
    /// Per slot, for VXLAN ports: the remote (index) or `allRemotes`, a hash of the inner flow
    /// (the outer UDP source port) and the VNI of the frame's network.
    @usableFromInline let remotes: UnsafeMutablePointer<UInt16>
    @usableFromInline let flowHashes: UnsafeMutablePointer<UInt32>
    @usableFromInline let vnis: UnsafeMutablePointer<UInt32>
    @usableFromInline let counts: UnsafeMutablePointer<Int32>
    /// Ports with at least one frame, in the order they got their first, so draining and clearing
    /// cost nothing for idle ports.
    @usableFromInline let active: UnsafeMutablePointer<PortID>
    /// Bytes queued per port in this batch, summed as frames are queued so counters need no pass.
    @usableFromInline let byteCounts: UnsafeMutablePointer<Int>
    /// In allocated memory, not a stored `var`, to avoid a dynamic exclusivity check per frame.
    private let activeCountStorage: UnsafeMutablePointer<Int>
    public var activeCount: Int {
        @inline(__always) get { activeCountStorage.pointee }
    }

    public init(portCount: Int, batchCapacity: Int, maxFrameLength: Int) {
        self.portCount = portCount
        self.batchCapacity = batchCapacity
        // The prefix, the frame, room for one pushed tag.
        self.slotSize = (Self.prefix + maxFrameLength + 4 + 63) & ~63
        storage = .allocate(byteCount: max(1, portCount * batchCapacity) * slotSize, alignment: 64)
        lengths = .allocate(capacity: max(1, portCount * batchCapacity))
        remotes = .allocate(capacity: max(1, portCount * batchCapacity))
        remotes.initialize(repeating: 0, count: max(1, portCount * batchCapacity))
        flowHashes = .allocate(capacity: max(1, portCount * batchCapacity))
        flowHashes.initialize(repeating: 0, count: max(1, portCount * batchCapacity))
        vnis = .allocate(capacity: max(1, portCount * batchCapacity))
        vnis.initialize(repeating: 0, count: max(1, portCount * batchCapacity))
        counts = .allocate(capacity: max(1, portCount))
        counts.initialize(repeating: 0, count: max(1, portCount))
        active = .allocate(capacity: max(1, portCount))
        activeCountStorage = .allocate(capacity: 1)
        activeCountStorage.initialize(to: 0)
        byteCounts = .allocate(capacity: max(1, portCount))
        byteCounts.initialize(repeating: 0, count: max(1, portCount))
    }

    deinit {
        storage.deallocate()
        lengths.deallocate()
        remotes.deallocate()
        flowHashes.deallocate()
        vnis.deallocate()
        counts.deallocate()
        active.deallocate()
        byteCounts.deallocate()
        activeCountStorage.deallocate()
    }

    /// Number of frames queued on `port`.
    @inline(__always)
    public func count(_ port: PortID) -> Int { Int(counts[Int(port)]) }

    /// The ports that have frames queued, in first-use order.
    @inline(__always)
    public func activePort(_ index: Int) -> PortID { active[index] }

    /// Bytes queued on `port`.
    @inline(__always)
    public func byteCount(_ port: PortID) -> Int { byteCounts[Int(port)] }

    @inline(__always)
    public func frame(_ port: PortID, _ index: Int) -> UnsafeRawBufferPointer {
        let slot = Int(port) * batchCapacity + index
        return UnsafeRawBufferPointer(start: storage + slot * slotSize + Self.prefix, count: Int(lengths[slot]))
    }

    /// The frame preceded by its 12-byte virtio-net header, as a TAP device with IFF_VNET_HDR
    /// takes it in one write.
    @inline(__always)
    public func frameWithVirtioHeader(_ port: PortID, _ index: Int) -> UnsafeRawBufferPointer {
        let slot = Int(port) * batchCapacity + index
        return UnsafeRawBufferPointer(
            start: storage + slot * slotSize + Self.prefix - VirtioNetHeader.length,
            count: VirtioNetHeader.length + Int(lengths[slot]))
    }

    /// The offloads of a queued frame (all zero when it has none).
    @inline(__always)
    public func offload(_ port: PortID, _ index: Int) -> VirtioNetHeader {
        let slot = Int(port) * batchCapacity + index
        return VirtioNetHeader(loading: storage + slot * slotSize + Self.prefix - VirtioNetHeader.length)
    }

    /// A VXLAN port's queued frame: the remote it goes to (`allRemotes`: each of them).
    @inline(__always)
    public func remote(_ port: PortID, _ index: Int) -> UInt16 { remotes[Int(port) * batchCapacity + index] }

    /// A hash of a VXLAN port's queued frame's inner flow (equal for the frames of one flow).
    @inline(__always)
    public func flowHash(_ port: PortID, _ index: Int) -> UInt32 { flowHashes[Int(port) * batchCapacity + index] }

    /// The VNI a VXLAN port's queued frame is sent with.
    @inline(__always)
    public func vni(_ port: PortID, _ index: Int) -> UInt32 { vnis[Int(port) * batchCapacity + index] }

    /// The prefix and frame of a queued frame: `TransmitQueues.prefix` bytes of room, then the frame.
    @inline(__always)
    public func slotWithPrefix(_ port: PortID, _ index: Int) -> UnsafeMutableRawBufferPointer {
        let slot = Int(port) * batchCapacity + index
        return UnsafeMutableRawBufferPointer(start: storage + slot * slotSize, count: Self.prefix + Int(lengths[slot]))
    }

    /// Mutable bytes of a queued frame, for a driver that must finish an offload in software.
    @inline(__always)
    public func mutableFrame(_ port: PortID, _ index: Int) -> UnsafeMutableRawBufferPointer {
        let slot = Int(port) * batchCapacity + index
        return UnsafeMutableRawBufferPointer(start: storage + slot * slotSize + Self.prefix, count: Int(lengths[slot]))
    }

    /// Writes the frame's length as 4 big-endian bytes just before it (over the end of its virtio-net
    /// header, so read `offload` first) and returns the prefixed frame: QEMU's stream framing.
    @inline(__always)
    public func frameWithLengthPrefix(_ port: PortID, _ index: Int) -> UnsafeRawBufferPointer {
        let slot = Int(port) * batchCapacity + index
        let start = storage + slot * slotSize + Self.prefix
        let length = Int(lengths[slot])
        (start - 4).storeBytes(of: UInt32(length).bigEndian, as: UInt32.self)
        return UnsafeRawBufferPointer(start: start - 4, count: length + 4)
    }

    /// Reserves the next slot of `port` and returns its memory; `finish(port:length:)` commits it.
    @inline(__always)
    func reserve(_ port: PortID) -> UnsafeMutableRawPointer {
        let slot = Int(port) * batchCapacity + Int(counts[Int(port)])
        return storage + slot * slotSize + Self.prefix
    }

    /// Commits a frame of a port that is not a tunnel (its remote, hash and VNI are not read).
    @inline(__always)
    func finish(_ port: PortID, length: Int) {
        let index = Int(port)
        let queued = Int(counts[index])
        precondition(queued < batchCapacity, "transmit queue overflow: a batch sent a port two copies of one frame")
        lengths[index * batchCapacity + queued] = Int32(length)
        activate(port, queued: queued, length: length)
    }

    /// Commits a frame of a VXLAN port, with where it goes and how it is encapsulated.
    @inline(__always)
    func finish(_ port: PortID, length: Int, remote: UInt16, flowHash: UInt32, vni: UInt32) {
        let index = Int(port)
        let queued = Int(counts[index])
        precondition(queued < batchCapacity, "transmit queue overflow: a batch sent a port two copies of one frame")
        lengths[index * batchCapacity + queued] = Int32(length)
        remotes[index * batchCapacity + queued] = remote
        flowHashes[index * batchCapacity + queued] = flowHash
        vnis[index * batchCapacity + queued] = vni
        activate(port, queued: queued, length: length)
    }

    @inline(__always)
    private func activate(_ port: PortID, queued: Int, length: Int) {
        let index = Int(port)
        if queued == 0 {
            active[activeCountStorage.pointee] = port
            activeCountStorage.pointee += 1
            byteCounts[index] = length
        } else {
            byteCounts[index] &+= length
        }
        counts[index] = Int32(queued + 1)
    }

    public func removeAll() {
        for index in 0..<activeCount { counts[Int(active[index])] = 0 }
        activeCountStorage.pointee = 0
    }
}
