import Testing
import TapestryWire
@testable import TapestryDatapath

/// The affinity table's bound: it never holds more than its capacity, a new client always gets
/// a slot (the least recently used of its window when all are live), and entries carry their
/// own balancer's time.
@Suite struct AffinityTableTests {
    @Test func aFloodOfClientsStaysWithinTheBoundAndTheNewestIsKept() {
        let table = AffinityTable(key: .fixed)
        let minute: Int64 = 60_000_000_000
        for client in UInt32(0)..<100_000 {
            table.record(balancer: 0, client: HostAddress(ipv4: 0x0A00_0000 | client), backend: Int(client % 3), now: Int64(client), within: minute)
        }
        #expect(table.count(now: 100_000) <= AffinityTable.capacity)
        #expect(table.count(now: 100_000) > AffinityTable.capacity / 2, "most slots are used before clients are forgotten")
        for client in UInt32(99_990)..<100_000 {
            #expect(table.backend(balancer: 0, client: HostAddress(ipv4: 0x0A00_0000 | client), now: 100_000) == Int(client % 3))
        }
        #expect(table.backend(balancer: 0, client: HostAddress(ipv4: 0x0A00_0005), now: minute + 10) == nil, "expired")
    }

    @Test func balancersAndTimesAreApart() {
        let table = AffinityTable(key: .fixed)
        let client = HostAddress(ipv4: 0x0A00_0001)
        table.record(balancer: 0, client: client, backend: 1, now: 1_000, within: 10)
        table.record(balancer: 1, client: client, backend: 2, now: 1_000, within: 1_000)
        #expect(table.backend(balancer: 0, client: client, now: 1_005) == 1)
        #expect(table.backend(balancer: 1, client: client, now: 1_005) == 2)
        #expect(table.backend(balancer: 0, client: client, now: 1_010) == nil, "balancer 0's 10 ns ran out")
        #expect(table.backend(balancer: 1, client: client, now: 1_500) == 2)
        #expect(table.backend(balancer: 1, client: client, now: 500) == nil, "a clock that went backwards finds nothing")
    }

    @Test func anIPv6ClientIsNotTheIPv4ClientOfTheSameLowWord() {
        let table = AffinityTable(key: .fixed)
        let v4 = HostAddress(ipv4: 0x0A00_0001)
        let v6 = HostAddress(ipv6High: 0xFD00_0010_0000_0000, low: v4.low)
        table.record(balancer: 0, client: v6, backend: 2, now: 1_000, within: 1_000)
        #expect(table.backend(balancer: 0, client: v6, now: 1_001) == 2)
        #expect(table.backend(balancer: 0, client: v4, now: 1_001) == nil)
    }
}
