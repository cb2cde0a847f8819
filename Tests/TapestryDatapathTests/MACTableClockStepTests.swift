import Testing
@testable import TapestryDatapath
import TapestryWire

/// A refresh at a time earlier than the entry's listing (the wall clock stepped back) leaves the
/// slab's `listedAt` after `lastSeen`, so `sweep`, which trusts `listedAt` as a lower bound of the
/// last sighting, keeps an entry that `lookup` already treats as aged out.
@Suite struct MACTableClockStepTests {
    static let second: Int64 = 1_000_000_000
    static func at(_ seconds: Int64) -> Timestamp { Timestamp(nanoseconds: seconds * second) }
    let a = MACAddress(rawValue: 0x0200_0000_000A)

    @Test func sweepRemovesAnEntryRefreshedAfterTheClockSteppedBack() {
        let table = MACTable(maxEntries: 3, agingSeconds: 10, portCount: 3)
        table.learn(0, a, port: 0, now: Self.at(100))
        table.learn(0, a, port: 0, now: Self.at(0))  // clock stepped back; last seen at 0 s
        #expect(table.entries(now: Self.at(50)).isEmpty)  // aged out at 50 s
        #expect(table.sweep(now: Self.at(50), budget: 16) == 1)
        #expect(table.count == 0)
    }

    @Test func anAgedOutEntryGoesBeforeALiveOneIsEvicted() {
        let table = MACTable(maxEntries: 3, agingSeconds: 10, portCount: 3)
        let c = MACAddress(rawValue: 0x0200_0000_000C), d = MACAddress(rawValue: 0x0200_0000_000D)
        table.learn(0, a, port: 0, now: Self.at(100))
        table.learn(0, a, port: 0, now: Self.at(0))
        table.learn(0, c, port: 1, now: Self.at(45))
        table.learn(0, d, port: 1, now: Self.at(45))
        #expect(table.learn(0, MACAddress(rawValue: 0x0200_0000_000B), port: 2, now: Self.at(50)) == .learned)
        #expect(table.lookup(0, c, now: Self.at(50)) == 1)
    }
}
