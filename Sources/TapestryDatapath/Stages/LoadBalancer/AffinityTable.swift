import TapestryWire

/// Client affinity: for (balancer, client IPv4 or IPv6 address), the backend its last new connection
/// got and when. Looked up and written once per new connection to a balancer with `affinity`,
/// never per packet.
///
/// Bounded: `capacity` entries allocated once (40 bytes each: 2.5 MiB, only for a datapath with a
/// balancer that has `affinity`), open addressing with a probe
/// window of `window` slots from the keyed hash's home. A new client takes an empty or expired
/// slot of its window, else the least recently used one: the table never grows, and a flood of
/// clients only makes other clients' affinity forgotten sooner (they fall back to round robin).
/// The hash is keyed with the switch's secret, so colliding addresses cannot be computed offline
/// to evict a chosen client.
final class AffinityTable {
    struct Entry {
        /// The client's address as `HostAddress` holds it (a balancer's clients are of one family).
        var clientHigh: UInt64 = 0
        var clientLow: UInt64 = 0
        var balancer: Int16 = -1  // -1: empty
        var backend: Int16 = 0
        var lastUsed: Int64 = 0
        /// `lastUsed` + the balancer's affinity: each entry carries its own balancer's time.
        var expires: Int64 = 0

        @inline(__always)
        func isLive(_ now: Int64) -> Bool {
            // A capture's clock may go backwards: an entry "used in the future" is stale.
            balancer >= 0 && now < expires && now >= lastUsed
        }
    }

    static let capacity = 65_536
    static let window = 8
    private let entries: UnsafeMutablePointer<Entry>
    private let key: HashKey

    init(key: HashKey) {
        self.key = key
        entries = .allocate(capacity: Self.capacity)
        entries.initialize(repeating: Entry(), count: Self.capacity)
    }

    deinit { entries.deallocate() }

    @inline(__always)
    private func home(_ balancer: Int, _ client: HostAddress) -> Int {
        Int(truncatingIfNeeded: key.hash(client.high, client.low, UInt64(balancer), 0, 0) >> 48 & UInt64(Self.capacity - 1))
    }

    @inline(__always)
    private func matches(_ entry: Entry, _ balancer: Int, _ client: HostAddress) -> Bool {
        entry.balancer >= 0 && Int(entry.balancer) == balancer && entry.clientLow == client.low
            && entry.clientHigh == client.high
    }

    /// The backend `client`'s last connection to `balancer` got, if its affinity has not run out.
    func backend(balancer: Int, client: HostAddress, now: Int64) -> Int? {
        let start = home(balancer, client)
        for step in 0..<Self.window {
            let entry = entries[(start + step) & (Self.capacity - 1)]
            if matches(entry, balancer, client) { return entry.isLive(now) ? Int(entry.backend) : nil }
        }
        return nil
    }

    /// Records that `client`'s new connection to `balancer` went to `backend` at `now`, for
    /// `within` nanoseconds: its own slot, else a free one of its window, else the window's
    /// least recently used.
    func record(balancer: Int, client: HostAddress, backend: Int, now: Int64, within: Int64) {
        let start = home(balancer, client)
        var chosen = -1
        var free = -1
        var oldest = start
        for step in 0..<Self.window {
            let slot = (start + step) & (Self.capacity - 1)
            let entry = entries[slot]
            if matches(entry, balancer, client) {
                chosen = slot
                break
            }
            if free < 0 && !entry.isLive(now) { free = slot }
            if entry.lastUsed < entries[oldest].lastUsed { oldest = slot }
        }
        let slot = chosen >= 0 ? chosen : free >= 0 ? free : oldest
        entries[slot] = Entry(
            clientHigh: client.high, clientLow: client.low, balancer: Int16(truncatingIfNeeded: balancer), backend: Int16(truncatingIfNeeded: backend),
            lastUsed: now, expires: now &+ within)
    }

    /// Entries whose affinity has not run out (for tests of the bound).
    func count(now: Int64) -> Int {
        (0..<Self.capacity).reduce(0) { $0 + (entries[$1].isLive(now) ? 1 : 0) }
    }
}
