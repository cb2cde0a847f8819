import TapestryDatapath

/// What a port dropped while receiving or sending, by reason. Ports report here; the driver
/// moves the figures into the datapath's counters (`settle`) after each receive or transmit, so
/// no port reaches into the datapath. Memory is allocated once; a report is two adds.
final class PortDrops {
    /// `[reason]`: frames and bytes dropped before the pipeline (received) and after it (unsent).
    private let received: UnsafeMutablePointer<(frames: UInt64, bytes: UInt64)>
    private let unsent: UnsafeMutablePointer<(frames: UInt64, bytes: UInt64)>
    /// Kept in allocated memory, not a stored `var`: read once per batch without an exclusivity check.
    private let pending: UnsafeMutablePointer<Bool>

    init() {
        received = .allocate(capacity: DropReason.count)
        received.initialize(repeating: (0, 0), count: DropReason.count)
        unsent = .allocate(capacity: DropReason.count)
        unsent.initialize(repeating: (0, 0), count: DropReason.count)
        pending = .allocate(capacity: 1)
        pending.initialize(to: false)
    }

    deinit {
        received.deallocate()
        unsent.deallocate()
        pending.deallocate()
    }

    /// A frame the port took in but could not hand to the pipeline (too long, broken framing).
    func received(_ reason: DropReason, bytes: Int) {
        received[reason.index].frames &+= 1
        received[reason.index].bytes &+= UInt64(max(0, bytes))
        pending.pointee = true
    }

    /// A frame the pipeline queued that the port could not send (queue full, peer gone).
    func unsent(_ reason: DropReason, bytes: Int) {
        unsent[reason.index].frames &+= 1
        unsent[reason.index].bytes &+= UInt64(max(0, bytes))
        pending.pointee = true
    }

    var isEmpty: Bool { !pending.pointee }

    /// What was reported (for tests), without settling it.
    func reported(_ reason: DropReason) -> (received: UInt64, unsent: UInt64) {
        (received[reason.index].frames, unsent[reason.index].frames)
    }

    /// Counts everything reported against `port` in `datapath` and starts again from zero.
    func settle(on port: PortID, into datapath: Datapath) {
        guard pending.pointee else { return }
        pending.pointee = false
        for reason in DropReason.allCases {
            let index = reason.index
            if received[index].frames > 0 {
                datapath.countDrops(on: port, reason, frames: received[index].frames, bytes: received[index].bytes)
                received[index] = (0, 0)
            }
            if unsent[index].frames > 0 {
                datapath.countTransmitDrops(on: port, reason, frames: unsent[index].frames, bytes: unsent[index].bytes)
                unsent[index] = (0, 0)
            }
        }
    }
}
