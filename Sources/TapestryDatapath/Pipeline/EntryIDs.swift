/// The ids of a table's entry slab, 0..<capacity: `take()` gives the last released id, else the
/// next one never handed out, the order a stack of every id would give, without writing every
/// id when the table is made (a table of millions costs nothing until it fills; each packet test
/// and each reload makes fresh tables). The MAC and connection tables share it.
///
/// Memory is allocated once; callers check there is room before `take()`. Not thread-safe.
struct EntryIDs {
    /// Released ids, a stack; its size and the first never-used id live in `counts`.
    private let released: UnsafeMutablePointer<UInt32>
    private let counts: UnsafeMutablePointer<(released: Int, neverUsed: Int)>

    init(capacity: Int) {
        // Not initialized: only ids pushed by `release` are read back.
        released = .allocate(capacity: max(1, capacity))
        counts = .allocate(capacity: 1)
        counts.initialize(to: (0, 0))
    }

    func deallocate() {
        released.deallocate()
        counts.deallocate()
    }

    @inline(__always)
    func take() -> Int {
        if counts.pointee.released > 0 {
            counts.pointee.released -= 1
            return Int(released[counts.pointee.released])
        }
        counts.pointee.neverUsed += 1
        return counts.pointee.neverUsed - 1
    }

    @inline(__always)
    func release(_ id: Int) {
        released[counts.pointee.released] = UInt32(truncatingIfNeeded: id)
        counts.pointee.released += 1
    }
}
