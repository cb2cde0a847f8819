import Testing
import TapestryDatapath
import TapestryTestSupport

/// The TCP state machine without packets: flags in, transition out.
@Suite struct TCPConnectionStateTests {
    typealias S = TCPConnectionState
    static let syn: UInt8 = 0x02, synAck: UInt8 = 0x12, ack: UInt8 = 0x10, fin: UInt8 = 0x01, finAck: UInt8 = 0x11
    static let rst: UInt8 = 0x04, psh: UInt8 = 0x18

    @Test func handshakeDataAndTeardown() {
        var state = S.synSent
        var closer: S.Direction? = nil
        let steps: [(UInt8, S.Direction, S)] = [
            (Self.syn, .original, .synSent),  // retransmitted SYN
            (Self.synAck, .reply, .synReceived),
            (Self.ack, .original, .established),
            (Self.psh, .original, .established),
            (Self.psh, .reply, .established),
            (Self.finAck, .original, .finWait),  // the client closes first
            (Self.ack, .reply, .closeWait),
            (Self.finAck, .reply, .lastAck),
            (Self.ack, .original, .timeWait),
        ]
        for (flags, direction, expected) in steps {
            guard case .move(let next, let newCloser) = state.on(flags: flags, from: direction, closer: closer) else {
                Issue.record("\(state) + \(flags) from \(direction) should move")
                return
            }
            #expect(next == expected, "\(state) + flags \(flags) from \(direction)")
            state = next
            closer = newCloser
        }
        #expect(closer == .original)
    }

    @Test func simultaneousFinAndAckCloses() {
        // The server answers the client's FIN with FIN+ACK at once.
        #expect(S.finWait.on(flags: Self.finAck, from: .reply, closer: .original) == .move(.lastAck, closer: .original))
        #expect(S.lastAck.on(flags: Self.ack, from: .original, closer: .original) == .move(.timeWait, closer: .original))
        // The closer's own packets do not advance FIN_WAIT or LAST_ACK.
        #expect(S.finWait.on(flags: Self.ack, from: .original, closer: .original) == .move(.finWait, closer: .original))
        #expect(S.lastAck.on(flags: Self.ack, from: .reply, closer: .original) == .move(.lastAck, closer: .original))
    }

    @Test func rstClosesFromAnyState() {
        for state in S.allCases {
            for direction in [S.Direction.original, .reply] {
                guard case .move(.close, _) = state.on(flags: Self.rst, from: direction, closer: nil) else {
                    Issue.record("RST in \(state) from \(direction)")
                    continue
                }
            }
        }
    }

    @Test func synSentAcceptsOnlyTheHandshake() {
        // A bare ACK answering the SYN is a challenge ACK (RFC 5961 4.2) from a server that still
        // holds an older connection: it passes unchecked, so the client can answer with a RST.
        #expect(S.synSent.on(flags: Self.ack, from: .reply, closer: nil) == .ignore, "a bare ACK as the answer")
        #expect(S.synSent.on(flags: Self.ack | Self.fin, from: .reply, closer: nil) == .invalid, "a FIN before any SYN-ACK")
        #expect(S.synSent.on(flags: Self.syn, from: .reply, closer: nil) == .invalid, "a SYN from the server")
        #expect(S.synSent.on(flags: Self.psh, from: .original, closer: nil) == .invalid, "data before the handshake")
        #expect(S.synSent.on(flags: Self.synAck, from: .original, closer: nil) == .invalid)
    }

    @Test func timeWaitAndCloseReopenOnSYN() {
        #expect(S.timeWait.on(flags: Self.syn, from: .original, closer: .original) == .reopen)
        #expect(S.close.on(flags: Self.syn, from: .reply, closer: nil) == .reopen)
        #expect(S.timeWait.on(flags: Self.ack, from: .reply, closer: .original) == .move(.timeWait, closer: .original))
        #expect(S.close.on(flags: Self.ack, from: .original, closer: nil) == .invalid)
        // A new SYN from the client of a live connection: passed unchecked (the server answers
        // with a challenge ACK), the connection unchanged.
        for state in [S.synReceived, .established, .finWait, .closeWait, .lastAck] {
            #expect(state.on(flags: Self.syn, from: .original, closer: nil) == .ignore, "\(state)")
        }
        #expect(S.established.on(flags: Self.syn, from: .reply, closer: nil) == .move(.established, closer: nil))
    }

    /// Linux's tcp_valid_flags: a combination no TCP sends is invalid in every state, before any
    /// transition (a forged SYN+RST must not close a connection waiting for its SYN-ACK).
    @Test func impossibleFlagCombinationsAreInvalidEverywhere() {
        let impossible: [UInt8] = [0x06, 0x03, 0x07, 0x01, 0x00, 0x29, 0x16, 0x13, 0x05, 0x20, 0x08]
        for state in S.allCases {
            for flags in impossible {
                for direction in [S.Direction.original, .reply] {
                    #expect(state.on(flags: flags, from: direction, closer: nil) == .invalid, "\(state) flags \(flags)")
                }
            }
        }
        for flags: UInt8 in [0x02, 0x22, 0x12, 0x04, 0x14, 0x11, 0x31, 0x10, 0x30, 0x18, 0xD2, 0x1C] {
            #expect(S.hasValidFlags(flags), "\(flags)")
        }
    }

    @Test func openingPacketsArePureSYNs() {
        #expect(S.isOpening(Self.syn))
        for flags: UInt8 in [Self.synAck, Self.ack, 0x03, 0x06, 0x00, Self.fin] { #expect(!S.isOpening(flags), "\(flags)") }
    }
}

/// The bounded connection table.
@Suite struct ConnectionTableTests {
    func key(_ n: UInt32, port: UInt16 = 80) -> (FlowKey, Bool) {
        var sourceIsA = true
        let key = FlowKey(
            network: 0, proto: 6, isIPv6: false, sourceHigh: 0, sourceLow: FlowKey.mapped(0x0A00_0000 | n),
            sourcePort: 40000, destinationHigh: 0, destinationLow: FlowKey.mapped(0x0A00_00FE), destinationPort: port,
            sourceIsA: &sourceIsA)
        return (key, sourceIsA)
    }

    @Test func bothDirectionsFindOneEntry() {
        var forwardIsA = true
        var backwardIsA = true
        let forward = FlowKey(
            network: 1, proto: 17, isIPv6: false, sourceHigh: 0, sourceLow: FlowKey.mapped(0x0A00_0001), sourcePort: 5000,
            destinationHigh: 0, destinationLow: FlowKey.mapped(0x0A00_0002), destinationPort: 53, sourceIsA: &forwardIsA)
        let backward = FlowKey(
            network: 1, proto: 17, isIPv6: false, sourceHigh: 0, sourceLow: FlowKey.mapped(0x0A00_0002), sourcePort: 53,
            destinationHigh: 0, destinationLow: FlowKey.mapped(0x0A00_0001), destinationPort: 5000, sourceIsA: &backwardIsA)
        #expect(forward == backward)
        #expect(forwardIsA != backwardIsA)
        let table = ConnectionTable(maxEntries: 8)
        guard case .inserted(let id) = table.insert(forward, now: 0, configure: { $0.timeout = 10 }) else {
            Issue.record("insert")
            return
        }
        #expect(table.lookup(backward, now: 5) == id)
        #expect(table.lookup(backward, now: 10) == nil, "expired at its timeout")
        #expect(table.count == 0)
    }

    @Test func fullTableEvictsOldestUnrepliedNeverEstablished() {
        let table = ConnectionTable(maxEntries: 3)
        var ids: [Int] = []
        for n in 1...3 {
            guard case .inserted(let id) = table.insert(key(UInt32(n)).0, now: Int64(n), configure: { $0.timeout = 1_000; $0.kind = .tcp }) else {
                Issue.record("insert \(n)")
                return
            }
            ids.append(id)
        }
        table.entry(ids[0]).pointee.tcpState = .established
        table.entry(ids[0]).pointee.replied = true
        // The oldest unreplied is #2 (#1 is established): it goes.
        let fourth = table.insert(key(4).0, now: 10) { $0.timeout = 1_000; $0.kind = .tcp }
        guard case .insertedAfterEviction = fourth else {
            Issue.record("expected an eviction, got \(fourth)")
            return
        }
        #expect(table.lookup(key(1).0, now: 11) != nil, "established survives")
        #expect(table.lookup(key(2).0, now: 11) == nil, "oldest unreplied evicted")
        #expect(table.lookup(key(3).0, now: 11) != nil)
        for id in 0..<3 { table.entry(id).pointee.tcpState = .established }
        #expect(table.insert(key(5).0, now: 12) { $0.timeout = 1_000; $0.kind = .tcp } == .full, "nothing evictable")
        #expect(table.count == 3)
    }

    /// Many inserts, lookups, removals and expiries against a dictionary model.
    @Test func matchesADictionaryModel() {
        let table = ConnectionTable(maxEntries: 64)
        var model: [UInt32: (id: Int, expires: Int64)] = [:]
        var generator = SplitMix64(seed: 99)
        var now: Int64 = 0
        for step in 0..<20_000 {
            now += Int64(generator.next() % 3)
            let n = UInt32(generator.next() % 100)
            let (k, _) = key(n)
            model = model.filter { $0.value.expires > now }
            switch generator.next() % 3 {
            case 0 where model[n] == nil && model.count < 64:
                let timeout = Int64(1 + generator.next() % 50)
                #expect(table.lookup(k, now: now) == nil)
                let result = table.insert(k, now: now) { $0.timeout = timeout; $0.kind = .tcp; $0.tcpState = .established }
                switch result {
                case .inserted(let id), .insertedAfterEviction(let id): model[n] = (id, now + timeout)
                case .full: Issue.record("step \(step): insert refused with \(model.count) live")
                }
            case 1:
                #expect(table.lookup(k, now: now) == model[n]?.id, "step \(step)")
            case 2:
                if let entry = model[n] {
                    table.remove(id: entry.id)
                    model[n] = nil
                }
            default:
                table.sweep(now: now, budget: 8)
            }
        }
        #expect(table.liveEntries(now: now).count == model.count)
    }
}
