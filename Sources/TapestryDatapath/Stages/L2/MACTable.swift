import TapestryWire

/// The forwarding database: (network, MAC) -> port, with aging, moves and a hard bound.
///
/// Open addressing with linear probing over preallocated arrays sized to a power of two at least
/// twice the bound, so a lookup is a multiply, a shift and a few adjacent loads, and nothing is
/// allocated after `init`. Deletion shifts later entries back (no tombstones), so the table never
/// degrades. Expired entries are treated as absent on lookup and removed by `sweep`.
public final class MACTable {
    public struct Entry: Equatable, Sendable {
        public var network: NetworkID
        public var mac: MACAddress
        public var port: PortID
        public var lastSeen: Timestamp
    }

    public enum LearnResult: Equatable, Sendable {
        case learned, refreshed, moved(from: PortID), tableFull
    }

    public let maxEntries: Int
    public let agingNanoseconds: Int64
    /// Mutable bookkeeping in allocated memory rather than stored `var`s: each stored property of
    /// a class costs a dynamic exclusivity check per access, measured at a fifth of the frame time.
    private struct Bookkeeping {
        var count = 0
        var sweepCursor = 0
        /// No live entry was last seen before this (exact after `reclaimExpired`, a lower bound after).
        var oldestSeenBound: Int64 = .max
    }
    private let state: UnsafeMutablePointer<Bookkeeping>
    public var count: Int { state.pointee.count }

    private static let emptyKey = UInt64.max
    private let mask: Int
    private let shift: UInt64
    private let keys: UnsafeMutablePointer<UInt64>
    private let ports: UnsafeMutablePointer<PortID>
    private let lastSeen: UnsafeMutablePointer<Int64>

    public init(maxEntries: Int, agingSeconds: Int) {
        precondition(maxEntries > 0)
        self.maxEntries = maxEntries
        self.agingNanoseconds = Int64(agingSeconds) * 1_000_000_000
        var slots = 16
        while slots < maxEntries * 2 { slots <<= 1 }
        mask = slots - 1
        shift = UInt64(64 - slots.trailingZeroBitCount)
        state = .allocate(capacity: 1)
        state.initialize(to: Bookkeeping())
        keys = .allocate(capacity: slots)
        keys.initialize(repeating: Self.emptyKey, count: slots)
        ports = .allocate(capacity: slots)
        ports.initialize(repeating: 0, count: slots)
        lastSeen = .allocate(capacity: slots)
        lastSeen.initialize(repeating: 0, count: slots)
    }

    deinit {
        state.deallocate()
        keys.deallocate()
        ports.deallocate()
        lastSeen.deallocate()
    }

    public var slotCount: Int { mask + 1 }

    @inline(__always)
    static func key(_ network: NetworkID, _ mac: MACAddress) -> UInt64 { UInt64(network) << 48 | mac.rawValue }

    @inline(__always)
    private func home(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    @inline(__always)
    private func isExpired(_ slot: Int, now: Int64) -> Bool { now &- lastSeen[slot] >= agingNanoseconds }

    /// Slot holding `key`, or nil.
    @inline(__always)
    private func find(_ key: UInt64) -> Int? {
        var slot = home(key)
        while true {
            let stored = keys[slot]
            if stored == key { return slot }
            if stored == Self.emptyKey { return nil }
            slot = (slot + 1) & mask
        }
    }

    /// The port `mac` was learned on in `network`, unless it has aged out.
    @inline(__always)
    public func lookup(_ network: NetworkID, _ mac: MACAddress, now: Timestamp) -> PortID? {
        guard let slot = find(Self.key(network, mac)) else { return nil }
        if isExpired(slot, now: now.nanoseconds) {
            remove(slot: slot)
            return nil
        }
        return ports[slot]
    }

    /// Records that `mac` was seen on `port` in `network` at `now`.
    @inline(__always)
    @discardableResult
    public func learn(_ network: NetworkID, _ mac: MACAddress, port: PortID, now: Timestamp) -> LearnResult {
        let key = Self.key(network, mac)
        if let slot = find(key) {
            let expired = isExpired(slot, now: now.nanoseconds)
            lastSeen[slot] = now.nanoseconds
            let previous = ports[slot]
            if previous == port { return expired ? .learned : .refreshed }
            ports[slot] = port
            return expired ? .learned : .moved(from: previous)
        }
        if state.pointee.count >= maxEntries {
            // Expired entries do not count against the bound. Scanning for them costs a pass over the
            // table, so it happens only when the oldest entry may really have expired: a flood of new
            // MACs into a full table of live entries costs one comparison per frame, not a scan.
            if now.nanoseconds &- state.pointee.oldestSeenBound >= agingNanoseconds { reclaimExpired(now: now) }
            if state.pointee.count >= maxEntries { return .tableFull }
        }
        var slot = home(key)
        while keys[slot] != Self.emptyKey { slot = (slot + 1) & mask }
        keys[slot] = key
        ports[slot] = port
        lastSeen[slot] = now.nanoseconds
        state.pointee.count += 1
        state.pointee.oldestSeenBound = min(state.pointee.oldestSeenBound, now.nanoseconds)
        return .learned
    }

    /// Removes expired entries, scanning at most `budget` slots from where the last sweep stopped.
    /// Returns how many entries it removed.
    @discardableResult
    public func sweep(now: Timestamp, budget: Int) -> Int {
        var removed = 0
        var scanned = 0
        while scanned < min(budget, slotCount) {
            let slot = state.pointee.sweepCursor
            if keys[slot] != Self.emptyKey && isExpired(slot, now: now.nanoseconds) {
                remove(slot: slot)
                removed += 1
                // The backward shift may have moved an unvisited entry into this slot: look again.
                if keys[slot] != Self.emptyKey { scanned += 1; continue }
            }
            state.pointee.sweepCursor = (slot + 1) & mask
            scanned += 1
        }
        return removed
    }

    /// Removes every expired entry and recomputes `oldestSeenBound` exactly.
    private func reclaimExpired(now: Timestamp) {
        var oldest = Int64.max
        var slot = 0
        while slot <= mask {
            if keys[slot] != Self.emptyKey {
                if isExpired(slot, now: now.nanoseconds) {
                    remove(slot: slot)
                    continue  // the backward shift may have moved another entry here
                }
                oldest = min(oldest, lastSeen[slot])
            }
            slot += 1
        }
        // A backward shift only moves entries into slots at or after the current one (or into
        // already-visited low slots when a probe run wraps), so this one pass sees every survivor.
        state.pointee.oldestSeenBound = oldest
    }

    /// Removes every entry learned on `port` (the port went away).
    public func flush(port: PortID) {
        var slot = 0
        while slot <= mask {
            if keys[slot] != Self.emptyKey && ports[slot] == port {
                remove(slot: slot)
                if keys[slot] != Self.emptyKey { continue }
            }
            slot += 1
        }
    }

    /// Live entries, for display and tests (allocates; not for the datapath).
    public func entries(now: Timestamp) -> [Entry] {
        var result: [Entry] = []
        for slot in 0...mask where keys[slot] != Self.emptyKey && !isExpired(slot, now: now.nanoseconds) {
            let key = keys[slot]
            result.append(
                Entry(
                    network: NetworkID(key >> 48), mac: MACAddress(rawValue: key), port: ports[slot],
                    lastSeen: Timestamp(nanoseconds: lastSeen[slot])))
        }
        return result.sorted { ($0.network, $0.mac) < ($1.network, $1.mac) }
    }

    /// Live entries of slots `range` (clamped to the table), unsorted: the control thread lists a
    /// large table in pieces, so each piece's copy stays short. An entry that moves between two
    /// pieces (a removal shifts its run back) may be missed or seen twice.
    public func entries(now: Timestamp, slots range: Range<Int>) -> [Entry] {
        var result: [Entry] = []
        for slot in range.clamped(to: 0..<(mask + 1)) where keys[slot] != Self.emptyKey && !isExpired(slot, now: now.nanoseconds) {
            let key = keys[slot]
            result.append(
                Entry(
                    network: NetworkID(key >> 48), mac: MACAddress(rawValue: key), port: ports[slot],
                    lastSeen: Timestamp(nanoseconds: lastSeen[slot])))
        }
        return result
    }

    /// Backward-shift deletion (Knuth 6.4, algorithm R): later entries of the probe run move up so
    /// every remaining key stays reachable from its home slot.
    private func remove(slot removedSlot: Int) {
        var hole = removedSlot
        var next = (hole + 1) & mask
        while keys[next] != Self.emptyKey {
            let ideal = home(keys[next])
            // Move `next` into the hole unless its home lies cyclically in (hole, next].
            let distanceToNext = (next - ideal) & mask
            let distanceToHole = (hole - ideal) & mask
            if distanceToHole < distanceToNext {
                keys[hole] = keys[next]
                ports[hole] = ports[next]
                lastSeen[hole] = lastSeen[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        keys[hole] = Self.emptyKey
        state.pointee.count -= 1
    }
}
