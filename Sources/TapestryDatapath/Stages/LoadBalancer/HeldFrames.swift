import TapestryWire

/// The first packets of connections to a backend whose MAC the switch has not heard yet, kept
/// until the backend answers the switch's ARP request (then sent, in arrival order) or until
/// `timeout` passes (then dropped and counted). Without them the first connection to each backend
/// after a start waited for the client's retransmission, a second for TCP.
///
/// Bounded: `perBackend` frames per backend, each at most `slotBytes`, and at most
/// `maxHoldingBackends` backends with memory for them (148 KB each: 9.5 MB at most, whatever the
/// number of backends). A backend's memory is allocated the first time it holds a frame and
/// kept: that happens once per backend in the usual life of a switch (its MAC then stays known),
/// never per frame in steady state. Past the cap a new backend's frames are not held (dropped
/// `no-service`; the ARP request still goes out).
final class HeldFrames {
    static let perBackend = 16
    /// A jumbo frame with one tag; a connection's first packet is rarely larger (a TSO burst
    /// never is: it follows the handshake).
    static let slotBytes = 9216 + 22
    /// How long a frame waits, like Linux's unresolved-neighbour queue (3 requests a second apart).
    static let timeout: Int64 = 3_000_000_000
    /// While frames wait, the switch asks again at most this often.
    static let askInterval: Int64 = 1_000_000_000
    static let maxHoldingBackends = 64

    struct Held {
        var length = 0
        var ingress: PortID = 0
        var heldAt: Int64 = 0
        var metadata = FrameMetadata()
    }

    struct Queue {
        var memory: UnsafeMutableRawPointer?
        var entries: UnsafeMutablePointer<Held>?
        var first = 0
        var count = 0
        var lastAsked: Int64 = 0
        var asked = false
    }

    struct Counts {
        /// Frames waiting now, in every queue (checked once per batch, not per frame).
        var waiting = 0
        var released: UInt64 = 0
        var expired: UInt64 = 0
    }

    let backendCount: Int
    private let queues: UnsafeMutablePointer<Queue>
    let counts: UnsafeMutablePointer<Counts>
    /// The backends that have frame memory, in backend order (at most `maxHoldingBackends`):
    /// expiry and release visit these, not every backend.
    private let holding: UnsafeMutablePointer<Int>
    private(set) var holdingCount = 0

    init(backendCount: Int) {
        self.backendCount = backendCount
        queues = .allocate(capacity: max(1, backendCount))
        queues.initialize(repeating: Queue(), count: max(1, backendCount))
        counts = .allocate(capacity: 1)
        counts.initialize(to: Counts())
        holding = .allocate(capacity: Self.maxHoldingBackends)
    }

    deinit {
        for index in 0..<max(1, backendCount) {
            queues[index].memory?.deallocate()
            queues[index].entries?.deallocate()
        }
        queues.deallocate()
        counts.deallocate()
        holding.deallocate()
    }

    /// The `index`-th backend with frame memory (`0..<holdingCount`).
    func holdingBackend(_ index: Int) -> Int { holding[index] }

    func waiting(_ backend: Int) -> Int { queues[backend].count }

    /// Keeps a copy of `frame` for `backend`. False when its queue is full or the frame too large.
    func hold(
        _ frame: UnsafeRawBufferPointer, backend: Int, ingress: PortID, metadata: FrameMetadata, now: Int64
    ) -> Bool {
        let queue = queues + backend
        guard queue.pointee.count < Self.perBackend, frame.count <= Self.slotBytes else { return false }
        if queue.pointee.memory == nil {
            guard holdingCount < Self.maxHoldingBackends else { return false }
            queue.pointee.memory = .allocate(byteCount: Self.perBackend * Self.slotBytes, alignment: 64)
            queue.pointee.entries = .allocate(capacity: Self.perBackend)
            queue.pointee.entries!.initialize(repeating: Held(), count: Self.perBackend)
            // Kept in backend order, so frames of several backends leave in balancer order.
            var position = holdingCount
            while position > 0 && holding[position - 1] > backend {
                holding[position] = holding[position - 1]
                position -= 1
            }
            holding[position] = backend
            holdingCount += 1
        }
        let slot = (queue.pointee.first + queue.pointee.count) % Self.perBackend
        if let source = frame.baseAddress {
            (queue.pointee.memory! + slot * Self.slotBytes).copyMemory(from: source, byteCount: frame.count)
        }
        queue.pointee.entries![slot] = Held(
            length: frame.count, ingress: ingress, heldAt: now, metadata: metadata)
        queue.pointee.count += 1
        counts.pointee.waiting += 1
        return true
    }

    /// True when the switch should send an ARP request for `backend` now (never asked, or not for
    /// `askInterval`); records the request.
    func shouldAsk(_ backend: Int, now: Int64) -> Bool {
        let queue = queues + backend
        if queue.pointee.asked && now &- queue.pointee.lastAsked < Self.askInterval && now >= queue.pointee.lastAsked {
            return false
        }
        queue.pointee.asked = true
        queue.pointee.lastAsked = now
        return true
    }

    /// Drops frames that waited `timeout` or longer, from the front of each queue (arrival
    /// order), calling `dropped` with each one's ingress port.
    func expire(now: Int64, _ dropped: (PortID) -> Void) {
        guard counts.pointee.waiting > 0 else { return }
        for position in 0..<holdingCount {
            let queue = queues + holding[position]
            while queue.pointee.count > 0 {
                let held = queue.pointee.entries![queue.pointee.first]
                // A capture's time may go backwards: a frame "held in the future" waits on.
                guard now &- held.heldAt >= Self.timeout, now >= held.heldAt else { break }
                removeFirst(queue)
                counts.pointee.expired &+= 1
                dropped(held.ingress)
            }
        }
    }

    /// Moves `backend`'s waiting frames into `batch` (empty, or holding frames of the same
    /// ingress port), front first, with `mac` as their destination: as many as fit and came
    /// in on the same port as the first. False when it moved none.
    func release(_ backend: Int, mac: MACAddress, into batch: FrameBatch) -> Bool {
        let queue = queues + backend
        var moved = false
        while queue.pointee.count > 0, !batch.isFull {
            let held = queue.pointee.entries![queue.pointee.first]
            if batch.isEmpty {
                batch.ingressPort = held.ingress
            } else if batch.ingressPort != held.ingress {
                break
            }
            let bytes = UnsafeRawBufferPointer(
                start: queue.pointee.memory! + queue.pointee.first * Self.slotBytes, count: held.length)
            guard batch.append(bytes) else { break }
            let index = batch.count - 1
            batch.metadata[index] = held.metadata
            batch.metadata[index].skipLearning = true  // learned when it arrived
            batch.frame(index).setMAC(0, mac)
            removeFirst(queue)
            counts.pointee.released &+= 1
            moved = true
        }
        return moved
    }

    private func removeFirst(_ queue: UnsafeMutablePointer<Queue>) {
        queue.pointee.first = (queue.pointee.first + 1) % Self.perBackend
        queue.pointee.count -= 1
        counts.pointee.waiting -= 1
    }
}
