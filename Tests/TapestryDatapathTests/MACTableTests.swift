import Testing
import TapestryDatapath
import TapestryTestSupport
import TapestryWire

/// The slab-and-index table against models: a plain dictionary where nothing is evicted, and the
/// eviction rule (least recently seen entry of the fullest port, or of a port at its limit) under
/// pressure, with tiny tables so probe runs, backward-shift deletion and list surgery are exercised.
@Suite struct MACTableTests {
    typealias Model = [UInt64: (port: PortID, seen: Int64)]
    static func key(_ network: NetworkID, _ mac: MACAddress) -> UInt64 { UInt64(network) << 48 | mac.rawValue }

    /// Room for every key: the table must behave exactly like a dictionary with aging.
    @Test(arguments: [HashKey.fixed, HashKey.random()])
    func matchesADictionaryModelWithRoomForAll(hashKey: HashKey) {
        let table = MACTable(maxEntries: 128, agingSeconds: 10, portCount: 4, hashKey: hashKey)
        var model: Model = [:]
        var generator = SplitMix64(seed: 7)
        var now: Int64 = 1_000_000_000_000
        func live(_ entry: (port: PortID, seen: Int64)) -> Bool { now - entry.seen < 10_000_000_000 }
        for step in 0..<20_000 {
            now += Int64(generator.next() % 400_000_000)
            let network = NetworkID(generator.next() % 3)
            let mac = MACAddress(rawValue: 0x0200_0000_0000 | (generator.next() % 40))
            let port = PortID(generator.next() % 4)
            let k = Self.key(network, mac)
            switch generator.next() % 3 {
            case 0:
                let result = table.learn(network, mac, port: port, now: Timestamp(nanoseconds: now))
                #expect(result != .learnedAfterEviction, "step \(step): evicted with room for every key")
                model[k] = (port, now)
            case 1:
                let expected = model[k].flatMap { live($0) ? $0.port : nil }
                #expect(table.lookup(network, mac, now: Timestamp(nanoseconds: now)) == expected, "step \(step)")
            default:
                table.sweep(now: Timestamp(nanoseconds: now), budget: Int(generator.next() % 32))
            }
        }
        let entries = table.entries(now: Timestamp(nanoseconds: now))
        let modelLive = model.filter { live($0.value) }
        #expect(entries.count == modelLive.count)
        for entry in entries { #expect(modelLive[Self.key(entry.network, entry.mac)]?.port == entry.port) }
    }

    /// Under pressure: every learn succeeds, bounds hold, a lookup never names a wrong port, and
    /// each eviction takes the least recently seen entry of the port that held the most entries
    /// (or of the learning port at its limit). Times step by at least a second, the lists'
    /// granularity, so "least recently seen" is exact here.
    @Test(arguments: [1, 2, 7, 64])
    func evictsTheFullestPortsLeastRecentlySeenEntry(maxEntries: Int) {
        let limits = [0, 3, 0, 0]
        let table = MACTable(maxEntries: maxEntries, agingSeconds: 1_000_000, portCount: 4, portLimits: limits)
        var model: Model = [:]
        var generator = SplitMix64(seed: UInt64(maxEntries))
        var now: Int64 = 1_000_000_000_000
        for step in 0..<5_000 {
            now += 1_000_000_000 + Int64(generator.next() % 1_000_000_000)
            let network = NetworkID(generator.next() % 2)
            let mac = MACAddress(rawValue: 0x0200_0000_0000 | (generator.next() % 100))
            let port = PortID(generator.next() % 4)
            let k = Self.key(network, mac)
            if generator.next() % 2 == 0 {
                // The model's choice of victim, before the table makes it.
                var victim: UInt64?
                var moving = model[k]
                if let existing = moving, existing.port == port { moving = nil } else if moving != nil { model[k] = nil }
                let portCount = model.values.filter { $0.port == port }.count
                let limit = limits[Int(port)] == 0 ? maxEntries : min(limits[Int(port)], maxEntries)
                if model[k] == nil || moving != nil {
                    if portCount >= limit {
                        victim = model.filter { $0.value.port == port }.min { $0.value.seen < $1.value.seen }?.key
                    } else if moving == nil && model.count >= maxEntries {
                        let counts = (0..<4).map { p in model.values.filter { $0.port == PortID(p) }.count }
                        let fullest = PortID(counts.firstIndex(of: counts.max()!)!)
                        victim = model.filter { $0.value.port == fullest }.min { $0.value.seen < $1.value.seen }?.key
                    }
                }
                let result = table.learn(network, mac, port: port, now: Timestamp(nanoseconds: now))
                #expect((result == .learnedAfterEviction) == (victim != nil), "step \(step)")
                if let victim { model[victim] = nil }
                model[k] = (port, now)
                #expect(table.lookup(network, mac, now: Timestamp(nanoseconds: now)) == port, "step \(step): learned")
            } else {
                #expect(table.lookup(network, mac, now: Timestamp(nanoseconds: now)) == model[k]?.port, "step \(step)")
            }
            #expect(table.count == model.count && table.count <= maxEntries, "step \(step)")
            #expect(table.count(port: 1) <= min(3, maxEntries))
        }
    }

    @Test func aFloodingPortEvictsOnlyItsOwnEntries() {
        let table = MACTable(maxEntries: 1024, agingSeconds: 300, portCount: 3)
        var now = Timestamp(seconds: 1)
        for index in 0..<100 {
            table.learn(0, MACAddress(rawValue: 0x0200_0000_1000 | UInt64(index)), port: 0, now: now)
            table.learn(0, MACAddress(rawValue: 0x0200_0000_2000 | UInt64(index)), port: 1, now: now)
        }
        for index in 0..<100_000 {
            now = Timestamp(nanoseconds: now.nanoseconds + 1_000)
            table.learn(0, MACAddress(rawValue: 0x0A00_0000_0000 | UInt64(index)), port: 2, now: now)
        }
        #expect(table.count == 1024)
        #expect(table.count(port: 2) == 1024 - 200)
        for index in 0..<100 {
            #expect(table.lookup(0, MACAddress(rawValue: 0x0200_0000_1000 | UInt64(index)), now: now) == 0)
            #expect(table.lookup(0, MACAddress(rawValue: 0x0200_0000_2000 | UInt64(index)), now: now) == 1)
        }
        // The flood's newest MACs are the ones kept.
        #expect(table.lookup(0, MACAddress(rawValue: 0x0A00_0000_0000 | 99_999), now: now) == 2)
        #expect(table.lookup(0, MACAddress(rawValue: 0x0A00_0000_0000), now: now) == nil)
    }

    @Test func aRefreshedEntrySurvivesEviction() {
        let table = MACTable(maxEntries: 3, agingSeconds: 300, portCount: 1)
        let macs = (1...4).map { MACAddress(rawValue: 0x0200_0000_0000 | UInt64($0)) }
        for (index, mac) in macs.prefix(3).enumerated() { table.learn(0, mac, port: 0, now: Timestamp(seconds: Int64(index))) }
        table.learn(0, macs[0], port: 0, now: Timestamp(seconds: 10))  // the oldest is seen again
        #expect(table.learn(0, macs[3], port: 0, now: Timestamp(seconds: 11)) == .learnedAfterEviction)
        #expect(table.lookup(0, macs[0], now: Timestamp(seconds: 11)) == 0)
        #expect(table.lookup(0, macs[1], now: Timestamp(seconds: 11)) == nil, "the least recently seen went")
    }

    @Test func agedOutEntriesMakeRoomWithoutEviction() {
        let table = MACTable(maxEntries: 2, agingSeconds: 10, portCount: 2)
        table.learn(0, MACAddress(rawValue: 1), port: 0, now: Timestamp(seconds: 0))
        table.learn(0, MACAddress(rawValue: 2), port: 1, now: Timestamp(seconds: 0))
        #expect(table.learn(0, MACAddress(rawValue: 3), port: 1, now: Timestamp(seconds: 20)) == .learned)
    }

    @Test func flushRemovesAPortsEntries() {
        let table = MACTable(maxEntries: 100, agingSeconds: 300, portCount: 2)
        let now = Timestamp(seconds: 5)
        for index in 0..<50 {
            table.learn(0, MACAddress(rawValue: 0x0200_0000_0000 | UInt64(index)), port: PortID(index % 2), now: now)
        }
        table.flush(port: 1)
        #expect(table.count == 25)
        #expect(table.count(port: 1) == 0)
        #expect(table.entries(now: now).allSatisfy { $0.port == 0 })
    }
}
