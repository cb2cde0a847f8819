#if canImport(Glibc)
import Glibc
#endif

/// One tracked connection. A trivial value stored in a preallocated slab.
public struct ConnectionEntry: Sendable {
    public enum Kind: UInt8, Sendable { case tcp, udp, icmp, other }

    public var key = FlowKey()
    public var kind = Kind.other
    /// True when endpoint A of the key opened the connection.
    public var originIsA = true
    /// A packet in the reply direction has been seen.
    public var replied = false
    public var tcpState = TCPConnectionState.synSent
    /// The sequence windows both sides have shown (TCP only), beside the state machine's state.
    public var window = TCPWindow()
    /// Which side sent the first FIN (TCP): 0 none, 1 original, 2 reply.
    public var closer: UInt8 = 0
    public var inUse = false
    public var generation: UInt32 = 0
    /// Index of the rule that allowed it, -1 for `default`.
    public var rule: Int32 = -1
    public var created: Int64 = 0
    public var lastSeen: Int64 = 0
    /// The timeout of the current state, cached so expiry is one subtraction.
    public var timeout: Int64 = 0
    public var packetsOriginal: UInt64 = 0
    public var packetsReply: UInt64 = 0
    public var bytesOriginal: UInt64 = 0
    public var bytesReply: UInt64 = 0
    /// Load balancing: the balancer and backend this connection was given (-1: none), and the
    /// key of its rewritten side (backend <-> client), which finds the same entry.
    public var balancer: Int16 = -1
    public var backend: Int16 = -1
    public var hasAlias = false
    /// True when the backend is endpoint A of `aliasKey`.
    public var aliasBackendIsA = false
    public var aliasKey = FlowKey()
    /// Set when the connection was carried across a reload: its next packet checks the (new)
    /// rules again, and a connection they no longer allow is dropped then.
    public var needsRecheck = false

    public init() {}

    @inline(__always)
    public func isExpired(now: Int64) -> Bool { now &- lastSeen >= timeout }

    /// Unreplied connections may be evicted to make room (Linux's early drop): a TCP connection
    /// still in SYN_SENT, or a flow that never saw a reply.
    public var isEvictable: Bool { kind == .tcp ? tcpState == .synSent : !replied }
}

/// The connection table: a bounded slab of entries plus an open-addressing index over it.
///
/// - One lookup finds a connection from either direction (`FlowKey` is canonical).
/// - The slab never moves entries (the index refers to them by id), so the unreplied-eviction
///   queue can name them by id and generation.
/// - Bounded: at `maxEntries` a new connection evicts the oldest unreplied (or expired) one, or is
///   refused; established connections are never evicted.
/// - Memory: the slab and index are allocated once, with `calloc`, and ids are handed out in
///   order before any is reused (`EntryIDs`), so pages are touched only as entries are used and a
///   new table costs nearly nothing (a test or a reload makes one); `bytesPerEntry` says what a
///   full table costs.
public final class ConnectionTable {
    public let maxEntries: Int
    private let entries: UnsafeMutablePointer<ConnectionEntry>
    /// Index cells: hash tag in the high 32 bits, entry id + 1 in the low 32 (0 = empty).
    private let index: UnsafeMutablePointer<UInt64>
    private let mask: Int
    private let ids: EntryIDs
    /// Ring of (generation << 32 | id) in creation order, for eviction.
    private let evictionRing: UnsafeMutablePointer<UInt64>
    private let ringCapacity: Int
    private let state: UnsafeMutablePointer<Bookkeeping>
    private let hashKey: HashKey

    private struct Bookkeeping {
        var count = 0
        var ringHead = 0
        var ringCount = 0
        var sweepCursor = 0
        var nextGeneration: UInt32 = 1
    }

    /// Bytes per connection a full table with aliases uses: the entry, at least four index cells,
    /// a free-list slot and two eviction-ring slots (the index rounds up to a power of two, up to
    /// 8 cells; without load balancers half as many cells).
    public static var bytesPerEntry: Int {
        MemoryLayout<ConnectionEntry>.stride + 4 * MemoryLayout<UInt64>.stride + MemoryLayout<UInt32>.stride
            + 2 * MemoryLayout<UInt64>.stride
    }

    /// Whether connections may have a second key (`addAlias`, for load balancers).
    public let allowsAliases: Bool

    /// - Parameter allowsAliases: true when load balancers need a second key per connection.
    ///   The index gets at least two cells per key a connection may hold (four with aliases, two
    ///   without), so at most half of it is ever in use: every probe meets an empty cell within
    ///   `slots` steps and terminates, and linear probing stays short (load at most 1/2).
    public init(maxEntries: Int, allowsAliases: Bool = true, hashKey: HashKey = .fixed) {
        precondition(maxEntries > 0 && maxEntries < Int(UInt32.max) / 8)
        self.maxEntries = maxEntries
        self.allowsAliases = allowsAliases
        self.hashKey = hashKey
        var slots = 16
        while slots < maxEntries * (allowsAliases ? 4 : 2) { slots <<= 1 }
        mask = slots - 1
        // calloc: zeroed, and untouched pages cost no resident memory.
        entries = calloc(maxEntries, MemoryLayout<ConnectionEntry>.stride)!.bindMemory(
            to: ConnectionEntry.self, capacity: maxEntries)
        index = calloc(slots, MemoryLayout<UInt64>.stride)!.bindMemory(to: UInt64.self, capacity: slots)
        ids = EntryIDs(capacity: maxEntries)
        ringCapacity = maxEntries * 2
        evictionRing = .allocate(capacity: ringCapacity)
        state = .allocate(capacity: 1)
        state.initialize(to: Bookkeeping())
    }

    deinit {
        free(entries)
        free(index)
        ids.deallocate()
        evictionRing.deallocate()
        state.deallocate()
    }

    public var count: Int { state.pointee.count }

    @inline(__always)
    private func home(_ tag: UInt32) -> Int { Int(tag) & mask }

    /// The live entry for `key`, or nil; an expired entry is removed on the way.
    @inline(__always)
    public func lookup(_ key: FlowKey, now: Int64) -> Int? {
        let hash = key.hash(hashKey)
        let tag = UInt32(truncatingIfNeeded: hash >> 32)
        var cell = home(tag)
        while true {
            let value = index[cell]
            if value == 0 { return nil }
            if UInt32(truncatingIfNeeded: value >> 32) == tag {
                let id = Int(UInt32(truncatingIfNeeded: value)) - 1
                if entries[id].key == key || (entries[id].hasAlias && entries[id].aliasKey == key) {
                    if entries[id].isExpired(now: now) {
                        remove(id: id)
                        // The backward shift may have moved the rest of the run: look again.
                        cell = home(tag)
                        continue
                    }
                    return id
                }
            }
            cell = (cell + 1) & mask
        }
    }

    @inline(__always)
    public func entry(_ id: Int) -> UnsafeMutablePointer<ConnectionEntry> { entries + id }

    public enum InsertResult: Equatable, Sendable {
        case inserted(Int)
        /// Inserted after evicting an unreplied or expired connection.
        case insertedAfterEviction(Int)
        case full
    }

    /// Adds a connection for `key`. The caller has just looked `key` up and found nothing live
    /// (that lookup also removed any expired entry for it). `configure` fills in the entry.
    @inline(__always)
    public func insert(_ key: FlowKey, now: Int64, configure: (inout ConnectionEntry) -> Void) -> InsertResult {
        var evicted = false
        if state.pointee.count >= maxEntries {
            // An unreplied or expired connection in creation order; failing that, a bounded sweep
            // for expired ones (bounded so a SYN flood against a full table stays cheap).
            if evictOne(now: now) {
                evicted = true
            } else if sweep(now: now, budget: 64) == 0 {
                return .full
            }
        }
        let id = ids.take()
        state.pointee.count += 1
        var entry = ConnectionEntry()
        entry.key = key
        entry.inUse = true
        entry.generation = state.pointee.nextGeneration
        state.pointee.nextGeneration &+= 1
        entry.created = now
        entry.lastSeen = now
        configure(&entry)
        entries[id] = entry
        let tag = UInt32(truncatingIfNeeded: key.hash(hashKey) >> 32)
        var cell = home(tag)
        while index[cell] != 0 { cell = (cell + 1) & mask }
        index[cell] = UInt64(tag) << 32 | UInt64(id + 1)
        pushEvictable(id: id, generation: entry.generation)
        return evicted ? .insertedAfterEviction(id) : .inserted(id)
    }

    /// Takes over a connection from another table (a reload): its keys, state and counters as they
    /// are. False when the table is full.
    @discardableResult
    public func adopt(_ connection: ConnectionEntry) -> Bool {
        guard state.pointee.count < maxEntries else { return false }
        let id = ids.take()
        state.pointee.count += 1
        var entry = connection
        entry.inUse = true
        entry.hasAlias = false
        entry.generation = state.pointee.nextGeneration
        state.pointee.nextGeneration &+= 1
        entries[id] = entry
        let tag = UInt32(truncatingIfNeeded: entry.key.hash(hashKey) >> 32)
        var cell = home(tag)
        while index[cell] != 0 { cell = (cell + 1) & mask }
        index[cell] = UInt64(tag) << 32 | UInt64(id + 1)
        if connection.hasAlias { addAlias(id: id, key: connection.aliasKey, backendIsA: connection.aliasBackendIsA) }
        if entry.isEvictable { pushEvictable(id: id, generation: entry.generation) }
        return true
    }

    /// Removes the connection with entry `id` (a reopened TCP 4-tuple, a flush), both its keys.
    public func remove(id: Int) {
        guard entries[id].inUse else { return }
        if let cell = cell(of: id, key: entries[id].key) { removeCell(cell) }
        if entries[id].hasAlias, let cell = cell(of: id, key: entries[id].aliasKey) { removeCell(cell) }
        release(id)
    }

    /// Makes `key` find connection `id` too (the load balancer's rewritten side). The index has
    /// room: it holds at least four cells per entry, and an entry uses at most two. A table
    /// built without aliases ignores the call (it has no room for them).
    public func addAlias(id: Int, key: FlowKey, backendIsA: Bool) {
        guard allowsAliases, entries[id].inUse, !entries[id].hasAlias else { return }
        entries[id].hasAlias = true
        entries[id].aliasKey = key
        entries[id].aliasBackendIsA = backendIsA
        let tag = UInt32(truncatingIfNeeded: key.hash(hashKey) >> 32)
        var cell = home(tag)
        while index[cell] != 0 { cell = (cell + 1) & mask }
        index[cell] = UInt64(tag) << 32 | UInt64(id + 1)
    }

    /// Removes expired connections, visiting at most `budget` entries from where the last sweep stopped.
    @discardableResult
    public func sweep(now: Int64, budget: Int) -> Int {
        var removed = 0
        for _ in 0..<min(budget, maxEntries) {
            let id = state.pointee.sweepCursor
            state.pointee.sweepCursor = id + 1 == maxEntries ? 0 : id + 1
            if entries[id].inUse && entries[id].isExpired(now: now) {
                remove(id: id)
                removed += 1
            }
        }
        return removed
    }

    /// Live connections with their ids (allocates; for `ctl conntrack`).
    public func liveEntriesWithIDs(now: Int64) -> [(Int, ConnectionEntry)] {
        (0..<maxEntries).compactMap { entries[$0].inUse && !entries[$0].isExpired(now: now) ? ($0, entries[$0]) : nil }
    }

    /// Live connections with their ids among `ids` (clamped), for listing a large table in
    /// pieces; entries never move in the slab, so the pieces neither miss nor repeat one that
    /// stays alive.
    public func liveEntriesWithIDs(now: Int64, ids: Range<Int>, into result: inout [(id: Int, entry: ConnectionEntry)]) {
        // A plain loop that reads `inUse` in place: an unused id costs one load, even unoptimized.
        for id in ids.clamped(to: 0..<maxEntries) where entries[id].inUse && !entries[id].isExpired(now: now) {
            result.append((id, entries[id]))
        }
    }

    /// Live connections (allocates; for display and tests).
    public func liveEntries(now: Int64) -> [ConnectionEntry] {
        (0..<maxEntries).compactMap { entries[$0].inUse && !entries[$0].isExpired(now: now) ? entries[$0] : nil }
    }

    // MARK: internals

    private func cell(of id: Int, key: FlowKey) -> Int? {
        let tag = UInt32(truncatingIfNeeded: key.hash(hashKey) >> 32)
        var cell = home(tag)
        while index[cell] != 0 {
            if Int(UInt32(truncatingIfNeeded: index[cell])) - 1 == id, UInt32(truncatingIfNeeded: index[cell] >> 32) == tag {
                return cell
            }
            cell = (cell + 1) & mask
        }
        return nil
    }

    private func release(_ id: Int) {
        entries[id].inUse = false
        ids.release(id)
        state.pointee.count -= 1
    }

    private func pushEvictable(id: Int, generation: UInt32) {
        if state.pointee.ringCount == ringCapacity {
            // Full of stale ids: forget the oldest. (A live unreplied entry forgotten here can no
            // longer be evicted early; it still expires on its timeout.)
            state.pointee.ringHead = (state.pointee.ringHead + 1) % ringCapacity
            state.pointee.ringCount -= 1
        }
        let tail = (state.pointee.ringHead + state.pointee.ringCount) % ringCapacity
        evictionRing[tail] = UInt64(generation) << 32 | UInt64(id)
        state.pointee.ringCount += 1
    }

    /// Evicts the oldest connection that is unreplied or expired. False when there is none.
    private func evictOne(now: Int64) -> Bool {
        while state.pointee.ringCount > 0 {
            let value = evictionRing[state.pointee.ringHead]
            state.pointee.ringHead = (state.pointee.ringHead + 1) % ringCapacity
            state.pointee.ringCount -= 1
            let id = Int(UInt32(truncatingIfNeeded: value))
            let generation = UInt32(truncatingIfNeeded: value >> 32)
            let entry = entries[id]
            guard entry.inUse, entry.generation == generation else { continue }
            if entry.isEvictable || entry.isExpired(now: now) {
                remove(id: id)
                return true
            }
            // Replied: it stays, and is no longer a candidate.
        }
        return false
    }

    /// Backward-shift deletion of index cell `removed` (as in `MACTable`).
    private func removeCell(_ removed: Int) {
        var hole = removed
        var next = (hole + 1) & mask
        while index[next] != 0 {
            let ideal = home(UInt32(truncatingIfNeeded: index[next] >> 32))
            if (hole - ideal) & mask < (next - ideal) & mask {
                index[hole] = index[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        index[hole] = 0
    }
}
