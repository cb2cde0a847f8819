#if canImport(Glibc)
import Glibc
#endif
import TapestryWire

/// The forwarding database: (network, MAC) -> port, with aging, moves and hard bounds that never
/// stop learning.
///
/// - Entries live in a slab that never moves them; an open-addressing index (keyed hash, linear
///   probing, backward-shift deletion) finds them. The index has at least twice as many cells as
///   the table has entries, so a probe always meets an empty cell and terminates.
/// - Each port keeps its entries in a list from least to most recently seen. A full table (or a
///   port at its `mac_limit`) evicts the head of a list: the least recently seen entry of the port
///   that holds the most entries (or of the port at its limit), as Open vSwitch does. One port
///   flooding source MACs therefore evicts its own entries, never another port's.
/// - Refreshing an entry moves it to its list's tail at most once a second (`relistInterval`), so
///   a steady stream from one MAC costs a store per frame, not list surgery; the lists are ordered
///   to within that second, and so is "least recently seen".
/// - Expired entries count as absent on lookup; `sweep` removes them from the list heads.
/// - Nothing is allocated after `init`; the slab and index come from `calloc`, so untouched pages
///   cost no resident memory.
public final class MACTable {
    public struct Entry: Equatable, Sendable {
        public var network: NetworkID
        public var mac: MACAddress
        public var port: PortID
        public var lastSeen: Timestamp
    }

    public enum LearnResult: Equatable, Sendable {
        case learned, refreshed, moved(from: PortID)
        /// Learned after evicting another entry (the table or the port's `mac_limit` was full).
        case learnedAfterEviction
    }

    public let maxEntries: Int
    public let agingNanoseconds: Int64
    public static let relistInterval: Int64 = 1_000_000_000

    private struct Slot {
        var key: UInt64 = 0
        var lastSeen: Int64 = 0
        /// When the slot last moved to its port list's tail.
        var listedAt: Int64 = 0
        var previous: UInt32 = 0
        var next: UInt32 = 0
        var port: PortID = 0
        var inUse = false
    }

    private struct PortList {
        var head = MACTable.none
        var tail = MACTable.none
        var count = 0
        var limit = 0
    }

    /// Mutable bookkeeping in allocated memory rather than stored `var`s: each stored property of
    /// a class costs a dynamic exclusivity check per access, measured at a fifth of the frame time.
    private struct Bookkeeping {
        var count = 0
        var freeCount = 0
        var sweepPort = 0
    }

    private static let none = UInt32.max
    private let hashKey: HashKey
    private let state: UnsafeMutablePointer<Bookkeeping>
    private let slots: UnsafeMutablePointer<Slot>
    /// Index cells: the hash's high 32 bits (whose top bits also choose the home cell), slot id + 1
    /// in the low 32 (0 = empty).
    private let index: UnsafeMutablePointer<UInt64>
    private let mask: Int
    /// The home cell is the top bits of the hash (multiply-shift: they depend on every key bit).
    private let homeShift: UInt64
    private let freeIDs: UnsafeMutablePointer<UInt32>
    private let lists: UnsafeMutablePointer<PortList>
    private let portCount: Int

    public var count: Int { state.pointee.count }
    public var slotCount: Int { mask + 1 }

    /// - Parameters:
    ///   - portLimits: per port, at most this many entries (0: only the table's bound).
    public init(
        maxEntries: Int, agingSeconds: Int, portCount: Int = 256, portLimits: [Int] = [], hashKey: HashKey = .fixed
    ) {
        precondition(maxEntries > 0 && maxEntries < Int(UInt32.max) / 4 && portCount > 0)
        self.maxEntries = maxEntries
        self.agingNanoseconds = Int64(agingSeconds) * 1_000_000_000
        self.hashKey = hashKey
        self.portCount = portCount
        var cells = 16
        while cells < maxEntries * 2 { cells <<= 1 }
        mask = cells - 1
        homeShift = UInt64(64 - cells.trailingZeroBitCount)
        state = .allocate(capacity: 1)
        state.initialize(to: Bookkeeping(freeCount: maxEntries))
        slots = calloc(maxEntries, MemoryLayout<Slot>.stride)!.bindMemory(to: Slot.self, capacity: maxEntries)
        index = calloc(cells, MemoryLayout<UInt64>.stride)!.bindMemory(to: UInt64.self, capacity: cells)
        freeIDs = .allocate(capacity: maxEntries)
        for id in 0..<maxEntries { freeIDs[id] = UInt32(truncatingIfNeeded: maxEntries - 1 - id) }
        lists = .allocate(capacity: portCount)
        lists.initialize(repeating: PortList(), count: portCount)
        for port in 0..<portCount {
            let limit = port < portLimits.count ? portLimits[port] : 0
            lists[port].limit = limit > 0 ? min(limit, maxEntries) : maxEntries
        }
    }

    deinit {
        state.deallocate()
        free(slots)
        free(index)
        freeIDs.deallocate()
        lists.deallocate()
    }

    @inline(__always)
    static func key(_ network: NetworkID, _ mac: MACAddress) -> UInt64 { UInt64(network) << 48 | mac.rawValue }

    @inline(__always)
    private func isExpired(_ id: Int, now: Int64) -> Bool { now &- slots[id].lastSeen >= agingNanoseconds }

    /// The slot id holding `key`, or nil. Terminates: at most half the index cells are in use.
    @inline(__always)
    private func find(_ key: UInt64, hash: UInt64) -> Int? {
        // No tag comparison before the slot's key: at a load of at most 1/2 most probes end at
        // the first cell, where the tag would only add work.
        var cell = Int(truncatingIfNeeded: hash >> homeShift)
        while true {
            let value = index[cell]
            if value == 0 { return nil }
            let id = Int(UInt32(truncatingIfNeeded: value)) &- 1
            if slots[id].key == key { return id }
            cell = (cell + 1) & mask
        }
    }

    /// The port `mac` was learned on in `network`, unless it has aged out.
    @inline(__always)
    public func lookup(_ network: NetworkID, _ mac: MACAddress, now: Timestamp) -> PortID? {
        let key = Self.key(network, mac)
        guard let id = find(key, hash: hashKey.hash(key)) else { return nil }
        if isExpired(id, now: now.nanoseconds) {
            remove(id: id)
            return nil
        }
        return slots[id].port
    }

    /// Records that `mac` was seen on `port` in `network` at `now`.
    @inline(__always)
    @discardableResult
    public func learn(_ network: NetworkID, _ mac: MACAddress, port: PortID, now: Timestamp) -> LearnResult {
        let key = Self.key(network, mac)
        let hash = hashKey.hash(key)
        let now = now.nanoseconds
        if let id = find(key, hash: hash) {
            let expired = isExpired(id, now: now)
            slots[id].lastSeen = now
            let previous = slots[id].port
            if previous == port {
                if now &- slots[id].listedAt >= Self.relistInterval { relist(id, now: now) }
                return expired ? .learned : .refreshed
            }
            unlink(id)
            var evicted = false
            if lists[Int(port)].count >= lists[Int(port)].limit {
                evictHead(of: Int(port))
                evicted = true
            }
            slots[id].port = port
            append(id, now: now)
            if evicted { return .learnedAfterEviction }
            return expired ? .learned : .moved(from: previous)
        }
        var evicted = false
        if lists[Int(port)].count >= lists[Int(port)].limit {
            evictHead(of: Int(port))
            evicted = true
        } else if state.pointee.count >= maxEntries {
            // Entries that have aged out go first, and do not count as evictions.
            sweep(now: Timestamp(nanoseconds: now), budget: 8)
            if state.pointee.count >= maxEntries {
                evictHead(of: fullestPort())
                evicted = true
            }
        }
        let id = Int(freeIDs[state.pointee.freeCount - 1])
        state.pointee.freeCount -= 1
        state.pointee.count += 1
        slots[id] = Slot(key: key, lastSeen: now, listedAt: now, port: port, inUse: true)
        append(id, now: now)
        var cell = Int(truncatingIfNeeded: hash >> homeShift)
        while index[cell] != 0 { cell = (cell + 1) & mask }
        index[cell] = hash & 0xFFFF_FFFF_0000_0000 | UInt64(id + 1)
        return evicted ? .learnedAfterEviction : .learned
    }

    /// Removes expired entries from the heads of the port lists, at most `budget` steps.
    /// Returns how many entries it removed.
    @discardableResult
    public func sweep(now: Timestamp, budget: Int) -> Int {
        var removed = 0
        for _ in 0..<budget {
            let port = state.pointee.sweepPort
            let head = lists[port].head
            if head != Self.none && isExpired(Int(head), now: now.nanoseconds) {
                remove(id: Int(head))
                removed += 1
            } else {
                state.pointee.sweepPort = port + 1 == portCount ? 0 : port + 1
            }
        }
        return removed
    }

    /// Removes every entry learned on `port` (the port went away).
    public func flush(port: PortID) {
        guard Int(port) < portCount else { return }
        while lists[Int(port)].head != Self.none { remove(id: Int(lists[Int(port)].head)) }
    }

    /// Entries learned on `port`, live or not yet swept.
    public func count(port: PortID) -> Int { Int(port) < portCount ? lists[Int(port)].count : 0 }

    /// Live entries, for display and tests (allocates; not for the datapath).
    public func entries(now: Timestamp) -> [Entry] {
        var result: [Entry] = []
        for id in 0..<maxEntries where slots[id].inUse && !isExpired(id, now: now.nanoseconds) {
            let key = slots[id].key
            result.append(
                Entry(
                    network: NetworkID(truncatingIfNeeded: key >> 48), mac: MACAddress(rawValue: key & 0xFFFF_FFFF_FFFF),
                    port: slots[id].port, lastSeen: Timestamp(nanoseconds: slots[id].lastSeen)))
        }
        return result.sorted { ($0.network, $0.mac) < ($1.network, $1.mac) }
    }

    /// Live entries with ids in `ids` (clamped to the slab), unsorted: the control thread lists a
    /// large table in pieces, so each piece's copy stays short. Entries never move in the slab, so
    /// an entry alive during the whole listing is copied exactly once.
    public func entries(now: Timestamp, ids: Range<Int>) -> [Entry] {
        var result: [Entry] = []
        for id in ids.clamped(to: 0..<maxEntries) where slots[id].inUse && !isExpired(id, now: now.nanoseconds) {
            let key = slots[id].key
            result.append(
                Entry(
                    network: NetworkID(truncatingIfNeeded: key >> 48), mac: MACAddress(rawValue: key & 0xFFFF_FFFF_FFFF),
                    port: slots[id].port, lastSeen: Timestamp(nanoseconds: slots[id].lastSeen)))
        }
        return result
    }

    // MARK: internals

    /// The port with the most entries (ties: the lowest index). Linear in the ports of the
    /// topology, and only when a full table takes a new MAC.
    private func fullestPort() -> Int {
        var best = 0
        for port in 1..<portCount where lists[port].count > lists[best].count { best = port }
        return best
    }

    private func evictHead(of port: Int) {
        let head = lists[port].head
        if head != Self.none { remove(id: Int(head)) }
    }

    private func append(_ id: Int, now: Int64) {
        let port = Int(slots[id].port)
        let tail = lists[port].tail
        slots[id].previous = tail
        slots[id].next = Self.none
        slots[id].listedAt = now
        if tail == Self.none { lists[port].head = UInt32(truncatingIfNeeded: id) } else { slots[Int(tail)].next = UInt32(truncatingIfNeeded: id) }
        lists[port].tail = UInt32(truncatingIfNeeded: id)
        lists[port].count += 1
    }

    private func unlink(_ id: Int) {
        let port = Int(slots[id].port)
        let previous = slots[id].previous
        let next = slots[id].next
        if previous == Self.none { lists[port].head = next } else { slots[Int(previous)].next = next }
        if next == Self.none { lists[port].tail = previous } else { slots[Int(next)].previous = previous }
        lists[port].count -= 1
    }

    private func relist(_ id: Int, now: Int64) {
        unlink(id)
        append(id, now: now)
    }

    private func remove(id: Int) {
        guard slots[id].inUse else { return }
        unlink(id)
        let hash = hashKey.hash(slots[id].key)
        let tag = hash & 0xFFFF_FFFF_0000_0000
        var cell = Int(truncatingIfNeeded: hash >> homeShift)
        while index[cell] != tag | UInt64(id + 1) { cell = (cell + 1) & mask }
        removeCell(cell)
        slots[id].inUse = false
        freeIDs[state.pointee.freeCount] = UInt32(truncatingIfNeeded: id)
        state.pointee.freeCount += 1
        state.pointee.count -= 1
    }

    /// Backward-shift deletion (Knuth 6.4, algorithm R): later cells of the probe run move up so
    /// every remaining key stays reachable from its home cell.
    private func removeCell(_ removed: Int) {
        var hole = removed
        var next = (hole + 1) & mask
        while index[next] != 0 {
            let ideal = Int(truncatingIfNeeded: index[next] >> homeShift)
            if (hole - ideal) & mask < (next - ideal) & mask {
                index[hole] = index[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        index[hole] = 0
    }
}
