import Testing
import TapestryDatapath
import TapestryTestSupport
import TapestryWire

/// The open-addressing table against a plain dictionary model, under random learning, aging and
/// sweeping (with a tiny table, so probe runs and backward-shift deletion are exercised).
@Suite struct MACTableTests {
    @Test(arguments: [1, 7, 64])
    func matchesADictionaryModel(maxEntries: Int) {
        let table = MACTable(maxEntries: maxEntries, agingSeconds: 10)
        var model: [UInt64: (port: PortID, seen: Int64)] = [:]
        var generator = SplitMix64(seed: UInt64(maxEntries))
        var now: Int64 = 1_000_000_000_000
        func key(_ network: NetworkID, _ mac: MACAddress) -> UInt64 { UInt64(network) << 48 | mac.rawValue }
        func live(_ entry: (port: PortID, seen: Int64)) -> Bool { now - entry.seen < 10_000_000_000 }
        for step in 0..<20_000 {
            now += Int64(generator.next() % 400_000_000)
            let network = NetworkID(generator.next() % 3)
            let mac = MACAddress(rawValue: 0x0200_0000_0000 | (generator.next() % 40))
            let port = PortID(generator.next() % 4)
            let k = key(network, mac)
            switch generator.next() % 3 {
            case 0:
                let result = table.learn(network, mac, port: port, now: Timestamp(nanoseconds: now))
                // Drop expired entries from the model the way the bound counts them.
                let liveCount = model.values.filter(live).count
                if let existing = model[k], live(existing) {
                    model[k] = (port, now)
                    #expect(result != .tableFull)
                } else if result == .tableFull {
                    #expect(liveCount >= maxEntries, "step \(step): refused with room left")
                } else {
                    model[k] = (port, now)
                }
            case 1:
                let expected = model[k].flatMap { live($0) ? $0.port : nil }
                #expect(table.lookup(network, mac, now: Timestamp(nanoseconds: now)) == expected, "step \(step)")
            default:
                table.sweep(now: Timestamp(nanoseconds: now), budget: Int(generator.next() % 32))
            }
            #expect(table.count <= maxEntries)
        }
        let entries = table.entries(now: Timestamp(nanoseconds: now))
        let modelLive = model.filter { live($0.value) }
        #expect(entries.count == modelLive.count)
        for entry in entries { #expect(modelLive[key(entry.network, entry.mac)]?.port == entry.port) }
    }

    @Test func flushRemovesAPortsEntries() {
        let table = MACTable(maxEntries: 100, agingSeconds: 300)
        let now = Timestamp(seconds: 5)
        for index in 0..<50 {
            table.learn(0, MACAddress(rawValue: 0x0200_0000_0000 | UInt64(index)), port: PortID(index % 2), now: now)
        }
        table.flush(port: 1)
        #expect(table.count == 25)
        #expect(table.entries(now: now).allSatisfy { $0.port == 0 })
    }
}
