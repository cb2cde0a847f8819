#if canImport(Glibc)
import Glibc
#endif
import TapestryWire

/// The forwarding database: (network, MAC) -> port, with aging, moves and hard bounds that never
/// stop learning.
///
/// - An open-addressing index (keyed hash, linear probing, backward-shift deletion) holds what a
///   frame needs, key, port and times, in one 32-byte cell, so a lookup or a refresh touches one
///   cell and nothing else. The index has at least twice as many cells as the table has entries,
///   so a probe always meets an empty cell and terminates.
/// - Each entry also has a slot in a slab that never moves it (cells move when a neighbour is
///   deleted), and each port keeps its slots in a list from least to most recently seen. A full
///   table (or a port at its `mac_limit`) evicts the head of a list: the least recently seen
///   entry of the port that holds the most entries (or of the port at its limit), as Open vSwitch
///   does. One port flooding source MACs therefore evicts its own entries, never another port's.
/// - Refreshing an entry moves it to its list's tail at most once a second (`relistInterval`), so
///   a steady stream from one MAC costs a store per frame, not list surgery; the lists are ordered
///   to within that second, and so is "least recently seen". An entry was therefore last seen
///   at or after its listing (a clock that steps back relists it), which lets `sweep` judge list
///   heads from the slab.
/// - Expired entries count as absent on lookup; `sweep` removes them from the list heads.
/// - Nothing is allocated after `init`; the index and slab come from `calloc`, so untouched pages
///   cost no resident memory.
public final class MACTable {
    public struct Entry: Equatable, Sendable {
        public var network: NetworkID
        public var mac: MACAddress
        public var port: PortID
        /// On a VXLAN port: the index of the remote the MAC is behind (0 on other ports).
        public var remote: UInt16 = 0
        public var lastSeen: Timestamp
    }

    /// Where a MAC is: a port and, on a VXLAN port, the remote behind it.
    public struct Location: Equatable, Sendable {
        public var port: PortID
        public var remote: UInt16
    }

    public enum LearnResult: Equatable, Sendable {
        case learned, refreshed, moved(from: PortID)
        /// Learned after evicting another entry (the table or the port's `mac_limit` was full).
        case learnedAfterEviction
    }

    public let maxEntries: Int
    public let agingNanoseconds: Int64
    public static let relistInterval: Int64 = 1_000_000_000

    /// An index cell. `tagged` is the key with `occupied` set (keys use at most 60 bits), so the
    /// zeroed memory calloc returns is an empty index.
    private struct Cell {
        var tagged: UInt64 = 0
        var lastSeen: Int64 = 0
        /// When the entry last moved to its port list's tail.
        var listedAt: Int64 = 0
        var id: UInt32 = 0
        var port: PortID = 0
        var remote: UInt16 = 0
    }

    /// An entry's place in its port's list.
    private struct Slot {
        var key: UInt64 = 0
        /// As the cell's; a lower bound of its last sighting, within `relistInterval`.
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
        var sweepPort = 0
    }

    private static let none = UInt32.max
    private static let occupied: UInt64 = 1 << 63
    private let hashKey: HashKey
    private let state: UnsafeMutablePointer<Bookkeeping>
    private let cells: UnsafeMutablePointer<Cell>
    private let mask: Int
    /// The home cell is the top bits of the hash (multiply-shift: they depend on every key bit).
    private let homeShift: UInt64
    private let slots: UnsafeMutablePointer<Slot>
    private let ids: EntryIDs
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
        var cellCount = 16
        while cellCount < maxEntries * 2 { cellCount <<= 1 }
        mask = cellCount - 1
        homeShift = UInt64(64 - cellCount.trailingZeroBitCount)
        state = .allocate(capacity: 1)
        state.initialize(to: Bookkeeping())
        cells = calloc(cellCount, MemoryLayout<Cell>.stride)!.bindMemory(to: Cell.self, capacity: cellCount)
        slots = calloc(maxEntries, MemoryLayout<Slot>.stride)!.bindMemory(to: Slot.self, capacity: maxEntries)
        ids = EntryIDs(capacity: maxEntries)
        lists = .allocate(capacity: portCount)
        lists.initialize(repeating: PortList(), count: portCount)
        for port in 0..<portCount {
            let limit = port < portLimits.count ? portLimits[port] : 0
            lists[port].limit = limit > 0 ? min(limit, maxEntries) : maxEntries
        }
    }

    deinit {
        state.deallocate()
        free(cells)
        free(slots)
        ids.deallocate()
        lists.deallocate()
    }

    @inline(__always)
    static func key(_ network: NetworkID, _ mac: MACAddress) -> UInt64 { UInt64(network) << 48 | mac.rawValue }

    @inline(__always)
    private func home(_ key: UInt64) -> Int { Int(truncatingIfNeeded: hashKey.hash(key) >> homeShift) }

    /// The cell holding `key`, or nil. Terminates: at most half the cells are in use.
    @inline(__always)
    private func find(_ key: UInt64) -> Int? {
        let tagged = key | Self.occupied
        var cell = home(key)
        while true {
            let stored = cells[cell].tagged
            if stored == tagged { return cell }
            if stored == 0 { return nil }
            cell = (cell + 1) & mask
        }
    }

    /// The port `mac` was learned on in `network`, unless it has aged out.
    @inline(__always)
    public func lookup(_ network: NetworkID, _ mac: MACAddress, now: Timestamp) -> PortID? {
        locate(network, mac, now: now)?.port
    }

    /// The port and remote `mac` was learned on in `network`, unless it has aged out.
    @inline(__always)
    public func locate(_ network: NetworkID, _ mac: MACAddress, now: Timestamp) -> Location? {
        guard let cell = find(Self.key(network, mac)) else { return nil }
        if now.nanoseconds &- cells[cell].lastSeen >= agingNanoseconds {
            remove(cell: cell)
            return nil
        }
        return Location(port: cells[cell].port, remote: cells[cell].remote)
    }

    /// Records that `mac` was seen on `port` in `network` at `now`.
    @inline(__always)
    @discardableResult
    public func learn(
        _ network: NetworkID, _ mac: MACAddress, port: PortID, remote: UInt16 = 0, now: Timestamp
    ) -> LearnResult {
        let key = Self.key(network, mac)
        let now = now.nanoseconds
        if var cell = find(key) {
            let expired = now &- cells[cell].lastSeen >= agingNanoseconds
            cells[cell].lastSeen = now
            let previous = cells[cell].port
            if previous == port && cells[cell].remote != remote {
                // Moved between two remotes of one tunnel: the same port list, a new remote.
                cells[cell].remote = remote
                return expired ? .learned : .moved(from: port)
            }
            if previous == port {
                // Unsigned: a clock that stepped back (a negative difference) relists too, so
                // `listedAt` never passes `lastSeen`, which `sweep` relies on.
                if UInt64(bitPattern: now &- cells[cell].listedAt) >= UInt64(Self.relistInterval) {
                    relist(cell: cell, now: now)
                }
                return expired ? .learned : .refreshed
            }
            let id = Int(cells[cell].id)
            unlink(id)
            var evicted = false
            if lists[Int(port)].count >= lists[Int(port)].limit {
                evictHead(of: Int(port))
                evicted = true
                // Deleting a cell may have shifted this one up its probe run.
                cell = find(key)!
            }
            cells[cell].port = port
            cells[cell].remote = remote
            cells[cell].listedAt = now
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
        let id = ids.take()
        state.pointee.count += 1
        slots[id] = Slot(key: key, port: port, inUse: true)
        append(id, now: now)
        var cell = home(key)
        while cells[cell].tagged != 0 { cell = (cell + 1) & mask }
        cells[cell] = Cell(
            tagged: key | Self.occupied, lastSeen: now, listedAt: now, id: UInt32(truncatingIfNeeded: id), port: port,
            remote: remote)
        return evicted ? .learnedAfterEviction : .learned
    }

    /// Removes expired entries from the heads of the port lists: at most `budget` steps, and it
    /// stops once every port's head was found live. Returns how many entries it removed.
    @discardableResult
    public func sweep(now: Timestamp, budget: Int) -> Int {
        var removed = 0
        var live = 0
        var steps = 0
        while steps < budget && live < portCount {
            steps += 1
            let port = state.pointee.sweepPort
            let head = lists[port].head
            // A head listed less than the aging time ago is live (it was seen after it was
            // listed); only an older one needs its cell.
            if head != Self.none && now.nanoseconds &- slots[Int(head)].listedAt >= agingNanoseconds,
                let cell = find(slots[Int(head)].key), now.nanoseconds &- cells[cell].lastSeen >= agingNanoseconds
            {
                remove(cell: cell)
                removed += 1
                live = 0
            } else {
                state.pointee.sweepPort = port + 1 == portCount ? 0 : port + 1
                live += 1
            }
        }
        return removed
    }

    /// Removes every entry learned on `port` (the port went away).
    public func flush(port: PortID) {
        guard Int(port) < portCount else { return }
        while lists[Int(port)].head != Self.none { remove(id: Int(lists[Int(port)].head)) }
    }

    /// Removes the entries of `network` (every network when nil) with slab ids in `ids`
    /// (clamped); returns how many. `ctl fdb flush` walks the slab in pieces with it.
    @discardableResult
    public func flush(network: NetworkID?, ids: Range<Int>) -> Int {
        var removed = 0
        for id in ids.clamped(to: 0..<maxEntries) where slots[id].inUse {
            if let network, NetworkID(truncatingIfNeeded: slots[id].key >> 48) != network { continue }
            remove(id: id)
            removed += 1
        }
        return removed
    }

    /// Entries learned on `port`, live or not yet swept.
    public func count(port: PortID) -> Int { Int(port) < portCount ? lists[Int(port)].count : 0 }

    /// Live entries, for display and tests (allocates; not for the datapath).
    public func entries(now: Timestamp) -> [Entry] {
        entries(now: now, ids: 0..<maxEntries).sorted { ($0.network, $0.mac) < ($1.network, $1.mac) }
    }

    /// Live entries with ids in `ids` (clamped to the slab), unsorted: the control thread lists a
    /// large table in pieces, so each piece's copy stays short. Entries never move in the slab, so
    /// an entry alive during the whole listing is copied exactly once.
    public func entries(now: Timestamp, ids: Range<Int>) -> [Entry] {
        var result: [Entry] = []
        for id in ids.clamped(to: 0..<maxEntries) where slots[id].inUse {
            let key = slots[id].key
            guard let cell = find(key), now.nanoseconds &- cells[cell].lastSeen < agingNanoseconds else { continue }
            result.append(
                Entry(
                    network: NetworkID(truncatingIfNeeded: key >> 48), mac: MACAddress(rawValue: key & 0xFFFF_FFFF_FFFF),
                    port: cells[cell].port, remote: cells[cell].remote,
                    lastSeen: Timestamp(nanoseconds: cells[cell].lastSeen)))
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

    private func relist(cell: Int, now: Int64) {
        let id = Int(cells[cell].id)
        unlink(id)
        append(id, now: now)
        cells[cell].listedAt = now
    }

    private func remove(id: Int) {
        guard slots[id].inUse, let cell = find(slots[id].key) else { return }
        remove(cell: cell)
    }

    private func remove(cell: Int) {
        let id = Int(cells[cell].id)
        unlink(id)
        removeCell(cell)
        slots[id].inUse = false
        ids.release(id)
        state.pointee.count -= 1
    }

    /// Backward-shift deletion (Knuth 6.4, algorithm R): later cells of the probe run move up so
    /// every remaining key stays reachable from its home cell.
    private func removeCell(_ removed: Int) {
        var hole = removed
        var next = (hole + 1) & mask
        while cells[next].tagged != 0 {
            let ideal = home(cells[next].tagged & ~Self.occupied)
            if (hole - ideal) & mask < (next - ideal) & mask {
                cells[hole] = cells[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        cells[hole] = Cell()
    }
}
