/// Remembers which fragmented datagrams the firewall let through, so their later fragments (which
/// carry no ports) can follow. Direct-mapped and bounded: a collision replaces the older datagram,
/// whose remaining fragments are then dropped as `invalid` (the sender's retransmission recovers).
final class FragmentTable {
    struct Slot {
        var key = FlowKey()
        var identification: UInt32 = 0
        var expires: Int64 = 0
    }

    private let slots: UnsafeMutablePointer<Slot>
    private let mask: Int
    private let hashKey: HashKey

    init(capacity: Int = 4096, hashKey: HashKey = .fixed) {
        self.hashKey = hashKey
        var size = 16
        while size < capacity { size <<= 1 }
        mask = size - 1
        slots = .allocate(capacity: size)
        slots.initialize(repeating: Slot(), count: size)
    }

    deinit { slots.deallocate() }

    /// `key` holds the addresses and protocol with both ports zero.
    @inline(__always)
    private func slot(_ key: FlowKey, _ identification: UInt32) -> Int {
        // The identification is mixed into the keyed hash, not xored after it, so which datagrams
        // share a slot stays unpredictable without the key.
        var keyed = key
        keyed.meta ^= UInt64(identification)
        return Int(truncatingIfNeeded: keyed.hash(hashKey) >> 32) & mask
    }

    func remember(_ key: FlowKey, identification: UInt32, until expires: Int64) {
        slots[slot(key, identification)] = Slot(key: key, identification: identification, expires: expires)
    }

    func contains(_ key: FlowKey, identification: UInt32, now: Int64) -> Bool {
        let entry = slots[slot(key, identification)]
        return entry.key == key && entry.identification == identification && now < entry.expires
    }
}
