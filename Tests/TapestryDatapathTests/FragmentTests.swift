import Testing
import TapestryDatapath
import TapestryTestSupport
import TapestryWire

/// Fragments in any order: later fragments that come first are held until their first fragment's
/// verdict; overlaps drop the datagram, exact duplicates only themselves; impossible fragments and
/// floods of first-less fragments are counted drops within fixed bounds.
@Suite struct FragmentTests {
    static let c = FirewallTests.c
    static let s = FirewallTests.s
    static let ipC = FirewallTests.ipC
    static let ipS = FirewallTests.ipS
    static let c6 = IPv6Address("fd00::1")!
    static let s6 = IPv6Address("fd00::2")!

    /// A UDP datagram (header and `size` bytes of data, no checksum) to `dport`.
    static func datagram(dport: UInt16 = 53, size: Int = 40) -> [UInt8] {
        let length = UInt16(8 + size)
        return [0x0B, 0xB8, UInt8(dport >> 8), UInt8(dport & 0xFF), UInt8(length >> 8), UInt8(length & 0xFF), 0, 0]
            + (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
    }

    /// The IPv4 fragment carrying `bytes[offset..<offset + count]` of a datagram.
    static func fragment4(_ id: UInt16, _ bytes: [UInt8], offset: Int, count: Int, more: Bool) -> [UInt8] {
        FrameBuilder.frame(
            dst: s, src: c,
            FrameBuilder.ipv4(
                src: ipC, dst: ipS, identification: id, dontFragment: false, moreFragments: more, fragmentOffset: offset,
                proto: IPProtocol.udp),
            payload: Array(bytes[offset..<min(bytes.count, offset + count)]))
    }

    /// The IPv6 fragment (a fragment header, then the slice) of a datagram.
    static func fragment6(_ id: UInt32, _ bytes: [UInt8], offset: Int, count: Int, more: Bool) -> [UInt8] {
        let field = UInt16(offset / 8) << 3 | (more ? 1 : 0)
        let header: [UInt8] = [
            IPProtocol.udp, 0, UInt8(field >> 8), UInt8(field & 0xFF),
            UInt8(id >> 24), UInt8((id >> 16) & 0xFF), UInt8((id >> 8) & 0xFF), UInt8(id & 0xFF),
        ]
        return FrameBuilder.frame(
            dst: s, src: c, FrameBuilder.ipv6(src: c6, dst: s6, nextHeader: 44),
            payload: header + Array(bytes[offset..<min(bytes.count, offset + count)]), pad: false)
    }

    static let rules = """
              - { action: allow, proto: udp, dport: 53 }
              - { action: allow, proto: udp, src: "fd00::/8", dport: 53 }
        """

    func makeSwitch() -> EmbeddedSwitch {
        let sw = EmbeddedSwitch(yaml: FirewallTests.topology(rules: Self.rules))
        for (mac, port) in [(Self.c, "c"), (Self.s, "s")] {
            sw.send(FrameBuilder.arpRequest(src: mac, senderIP: Self.ipC, targetIP: Self.ipS), on: port)
        }
        return sw
    }

    @Test func aLastFragmentBeforeItsFirstIsHeldThenFollowsIt() {
        let sw = makeSwitch()
        let bytes = Self.datagram()
        let first = Self.fragment4(1, bytes, offset: 0, count: 24, more: true)
        let last = Self.fragment4(1, bytes, offset: 24, count: 100, more: false)
        #expect(sw.send(last, on: "c").isEmpty, "held: its first fragment has not come")
        #expect(sw.counters.fragmentsHeld == 1)
        let out = sw.send(first, on: "c")
        #expect(out["s"] == [first, last], "the first fragment, then the held one, in the same run")
        #expect(out["x"] == nil)
        #expect(sw.counters.fragmentsHeld == 0 && sw.counters.fragmentsReleased == 1)
        #expect(sw.drops == [:])
    }

    @Test func heldFragmentsLeaveInArrivalOrder() {
        let sw = makeSwitch()
        let bytes = Self.datagram(size: 56)
        let parts = [0, 16, 32, 48].map { Self.fragment4(2, bytes, offset: $0, count: 16, more: $0 < 48) }
        #expect(sw.send(parts[3], on: "c").isEmpty)
        #expect(sw.send(parts[1], on: "c").isEmpty)
        #expect(sw.send(parts[0], on: "c")["s"] == [parts[0], parts[3], parts[1]])
        #expect(sw.send(parts[2], on: "c")["s"] == [parts[2]], "the datagram passes: later fragments go straight on")
        #expect(sw.drops == [:])
    }

    @Test func ipv6FragmentsInAnyOrder() {
        let sw = makeSwitch()
        let bytes = Self.datagram(size: 40)
        let first = Self.fragment6(0xDEAD_BEEF, bytes, offset: 0, count: 24, more: true)
        let last = Self.fragment6(0xDEAD_BEEF, bytes, offset: 24, count: 100, more: false)
        #expect(sw.send(last, on: "c").isEmpty)
        #expect(sw.send(first, on: "c")["s"] == [first, last])
        #expect(sw.drops == [:])
    }

    @Test func aRefusedFirstFragmentTakesItsHeldFragmentsAndLaterOnesWithIt() {
        let sw = makeSwitch()
        let bytes = Self.datagram(dport: 99)  // no rule allows 99
        let parts = [0, 16, 32].map { Self.fragment4(3, bytes, offset: $0, count: 16, more: $0 < 32) }
        #expect(sw.send(parts[2], on: "c").isEmpty)
        #expect(sw.send(parts[0], on: "c").isEmpty)
        #expect(sw.drops == ["firewall": 1, "invalid": 1], "the held fragment is dropped with its first")
        #expect(sw.send(parts[1], on: "c").isEmpty)
        #expect(sw.drops == ["firewall": 1, "invalid": 2])
        #expect(sw.counters.fragmentsHeld == 0 && sw.counters.fragmentsHeldDropped == 1)
    }

    @Test func aFirstFragmentThatNeverComesLeavesItsHeldFragmentsCounted() {
        let sw = makeSwitch()
        let bytes = Self.datagram()
        #expect(sw.send(Self.fragment4(4, bytes, offset: 24, count: 100, more: false), on: "c").isEmpty)
        // 31 s later the record is gone: the first fragment passes alone, the held one is dropped.
        sw.clock.advance(by: .seconds(31))
        let first = Self.fragment4(4, bytes, offset: 0, count: 24, more: true)
        #expect(sw.send(first, on: "c")["s"] == [first])
        #expect(sw.drops == ["invalid": 1])
        // Never any first fragment: dropped when the input ends (replay and test files end so).
        #expect(sw.send(Self.fragment4(5, bytes, offset: 24, count: 100, more: false), on: "c").isEmpty)
        sw.core.finishInput()
        #expect(sw.drops == ["invalid": 2])
        #expect(sw.counters.fragmentsHeld == 0)
    }

    @Test func anOverlapDropsTheWholeDatagramADuplicateOnlyItself() {
        let sw = makeSwitch()
        let bytes = Self.datagram(size: 56)
        let first = Self.fragment4(6, bytes, offset: 0, count: 24, more: true)
        #expect(sw.send(first, on: "c")["s"] == [first])
        let second = Self.fragment4(6, bytes, offset: 24, count: 16, more: true)
        #expect(sw.send(second, on: "c")["s"] == [second])
        #expect(sw.send(second, on: "c").isEmpty, "an exact duplicate")
        #expect(sw.drops == ["invalid": 1])
        // Bytes 32..47 again, with other contents: an overlap.
        var forged = bytes
        for index in 32..<48 { forged[index] = 0xEE }
        #expect(sw.send(Self.fragment4(6, forged, offset: 32, count: 16, more: true), on: "c").isEmpty)
        #expect(sw.send(Self.fragment4(6, bytes, offset: 40, count: 100, more: false), on: "c").isEmpty, "the rest of a broken datagram")
        #expect(sw.drops == ["invalid": 3])

        // IPv6, before the first fragment: the overlap also drops what was held.
        let six = Self.datagram(size: 56)
        #expect(sw.send(Self.fragment6(7, six, offset: 48, count: 100, more: false), on: "c").isEmpty)
        #expect(sw.send(Self.fragment6(7, six, offset: 40, count: 16, more: true), on: "c").isEmpty, "overlaps the held one")
        #expect(sw.drops == ["invalid": 5])
        #expect(sw.send(Self.fragment6(7, six, offset: 0, count: 24, more: true), on: "c").isEmpty)
        #expect(sw.drops == ["invalid": 6])
        #expect(sw.counters.fragmentsHeld == 0)
    }

    @Test func aFragmentThatRewritesTheTCPHeaderIsAnOverlap() {
        // RFC 1858's attack: a second fragment at offset 8 bytes rewrites the TCP flags of an allowed first one.
        let sw = EmbeddedSwitch(yaml: FirewallTests.topology())
        for (mac, port) in [(Self.c, "c"), (Self.s, "s")] {
            sw.send(FrameBuilder.arpRequest(src: mac, senderIP: Self.ipC, targetIP: Self.ipS), on: port)
        }
        let segment = Array(FrameBuilder.tcp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, sport: 4000, dport: 80, flags: .syn)[34..<54])
        let first = FrameBuilder.frame(
            dst: Self.s, src: Self.c,
            FrameBuilder.ipv4(src: Self.ipC, dst: Self.ipS, identification: 8, dontFragment: false, moreFragments: true, proto: IPProtocol.tcp),
            payload: segment + [UInt8](repeating: 0, count: 4))
        #expect(sw.send(first, on: "c")["s"] == [first])
        let rewrite = FrameBuilder.frame(
            dst: Self.s, src: Self.c,
            FrameBuilder.ipv4(
                src: Self.ipC, dst: Self.ipS, identification: 8, dontFragment: false, fragmentOffset: 8, proto: IPProtocol.tcp),
            payload: [UInt8](repeating: 0x12, count: 16))
        #expect(sw.send(rewrite, on: "c").isEmpty)
        #expect(sw.drops == ["invalid": 1])
    }

    @Test func impossibleFragmentsAreDropped() {
        let sw = makeSwitch()
        let bytes = Self.datagram(size: 60)
        // Not the last, and 12 bytes: not a multiple of 8.
        #expect(sw.send(Self.fragment4(9, bytes, offset: 16, count: 12, more: true), on: "c").isEmpty)
        // Ends past 65,535 bytes: offset 65,528 with 40 bytes.
        let far = FrameBuilder.frame(
            dst: Self.s, src: Self.c,
            FrameBuilder.ipv4(
                src: Self.ipC, dst: Self.ipS, identification: 9, dontFragment: false, fragmentOffset: 65_528, proto: IPProtocol.udp),
            payload: [UInt8](repeating: 1, count: 40))
        #expect(sw.send(far, on: "c").isEmpty)
        // After a last fragment ending at 48, one reaching past it.
        #expect(sw.send(Self.fragment4(10, bytes, offset: 40, count: 8, more: false), on: "c").isEmpty)
        #expect(sw.send(Self.fragment4(10, bytes, offset: 48, count: 8, more: true), on: "c").isEmpty)
        sw.core.finishInput()
        #expect(sw.drops == ["invalid": 4], "two impossible, one past the end, and the held last of the broken datagram")
        #expect(sw.counters.fragmentsHeld == 0)
    }

    @Test func firstLessFragmentsStayWithinTheirBounds() {
        let sw = makeSwitch()
        let bytes = Self.datagram()
        // One port may hold 64 fragments; the 65th (another datagram) is dropped, not held.
        for id in 0..<UInt16(FragmentTable.heldPerPort + 1) {
            _ = sw.send(Self.fragment4(1000 + id, bytes, offset: 24, count: 100, more: false), on: "c")
        }
        #expect(sw.counters.fragmentsHeld == FragmentTable.heldPerPort)
        #expect(sw.drops == ["invalid": 1])
        // Another port still has its share.
        let fromS = FrameBuilder.frame(
            dst: Self.c, src: Self.s,
            FrameBuilder.ipv4(
                src: Self.ipS, dst: Self.ipC, identification: 77, dontFragment: false, fragmentOffset: 24, proto: IPProtocol.udp),
            payload: [UInt8](repeating: 2, count: 16))
        #expect(sw.send(fromS, on: "s").isEmpty)
        #expect(sw.counters.fragmentsHeld == FragmentTable.heldPerPort + 1)
        // A held datagram's first fragment still releases it.
        let first = Self.fragment4(1000, bytes, offset: 0, count: 24, more: true)
        #expect(sw.send(first, on: "c")["s"]?.count == 2)
        sw.core.finishInput()
        #expect(sw.counters.fragmentsHeld == 0)
        #expect(sw.drops == ["invalid": UInt64(1 + FragmentTable.heldPerPort - 1 + 1)])
    }

    @Test func aCompletedDatagramFreesItsIdentification() {
        let sw = makeSwitch()
        let bytes = Self.datagram()
        for _ in 0..<3 {
            let first = Self.fragment4(11, bytes, offset: 0, count: 24, more: true)
            let last = Self.fragment4(11, bytes, offset: 24, count: 100, more: false)
            #expect(sw.send(first, on: "c")["s"] == [first])
            #expect(sw.send(last, on: "c")["s"] == [last])
        }
        #expect(sw.drops == [:], "a sender reusing the identification after a datagram completed")
    }

    @Test func traceSaysWhatBecameOfAFragment() {
        let sw = makeSwitch()
        let bytes = Self.datagram(size: 56)
        let held = sw.trace([Self.fragment4(12, bytes, offset: 40, count: 100, more: false)], on: "c")
        #expect(held[0].contains { $0.contains("before its first fragment: held (1 of its datagram now)") }, "\(held)")
        let first = sw.trace([Self.fragment4(12, bytes, offset: 0, count: 24, more: true)], on: "c")
        #expect(first[0].contains { $0.contains("its 1 held fragment leave right after it") }, "\(first)")
        let overlap = sw.trace([Self.fragment4(12, bytes, offset: 16, count: 16, more: true)], on: "c")
        #expect(overlap[0].contains { $0.contains("overlaps another of its datagram") }, "\(overlap)")
    }

    @Test func withoutAFirewallSectionFragmentsPassAsBefore() {
        let sw = EmbeddedSwitch(
            yaml: """
                name: plain
                networks: { lan: { vlan: 10 } }
                ports:
                  c: { tap: tc, network: lan }
                  s: { tap: ts, network: lan }
                load_balancers:
                  web: { network: lan, vip: 10.0.1.100, port: 80, backends: [10.0.1.2:80] }
                """)
        for (mac, port) in [(Self.c, "c"), (Self.s, "s")] {
            sw.send(FrameBuilder.arpRequest(src: mac, senderIP: Self.ipC, targetIP: Self.ipS), on: port)
        }
        let bytes = Self.datagram()
        let last = Self.fragment4(13, bytes, offset: 24, count: 100, more: false)
        #expect(sw.send(last, on: "c")["s"] == [last], "tracking only: nothing is held or enforced")
    }

    @Test func aFirstFragmentTheOtherWayReleasesNothing() {
        // Found by review: the datagram key was the connection's (either direction), so a host
        // could release its own held fragments to s with a forged first fragment "from" s.
        let sw = makeSwitch()
        let bytes = Self.datagram()
        #expect(sw.send(Self.fragment4(20, bytes, offset: 24, count: 100, more: false), on: "c").isEmpty)
        let reverse = FrameBuilder.frame(
            dst: Self.c, src: Self.c,
            FrameBuilder.ipv4(src: Self.ipS, dst: Self.ipC, identification: 20, dontFragment: false, moreFragments: true, proto: IPProtocol.udp),
            payload: Array(bytes.prefix(24)))
        #expect(sw.send(reverse, on: "c")["s"] == nil)
        #expect(sw.counters.fragmentsHeld == 1 && sw.counters.fragmentsReleased == 0)
    }

    @Test func aFloodOfFirstLessFragmentsDoesNotForgetAPassingDatagram() {
        let sw = makeSwitch()
        let bytes = Self.datagram(size: 56)
        let first = Self.fragment4(21, bytes, offset: 0, count: 24, more: true)
        #expect(sw.send(first, on: "c")["s"] == [first])
        // Port x sends 5,000 orphans with other identifications: 64 are held, the rest are
        // dropped without a record, so they cannot push the passing datagram out.
        for id in 0..<UInt16(5_000) {
            let orphan = FrameBuilder.frame(
                dst: Self.s, src: FirewallTests.x,
                FrameBuilder.ipv4(
                    src: FirewallTests.ipX, dst: Self.ipS, identification: 30_000 &+ id, dontFragment: false,
                    fragmentOffset: 24, proto: IPProtocol.udp),
                payload: [UInt8](repeating: 3, count: 16))
            sw.inject(orphan, on: "x")
        }
        sw.runUntilIdle()
        _ = sw.drainAll()
        #expect(sw.counters.fragmentsHeld == FragmentTable.heldPerPort)
        #expect(sw.drops == ["invalid": UInt64(5_000 - FragmentTable.heldPerPort)])
        let rest = Self.fragment4(21, bytes, offset: 24, count: 100, more: false)
        #expect(sw.send(rest, on: "c")["s"] == [rest])
    }

    @Test func aCompletedDatagramTakesNoMoreFragments() {
        let sw = makeSwitch()
        let bytes = Self.datagram()
        let first = Self.fragment4(22, bytes, offset: 0, count: 24, more: true)
        let last = Self.fragment4(22, bytes, offset: 24, count: 100, more: false)
        #expect(sw.send(first, on: "c")["s"] == [first])
        #expect(sw.send(last, on: "c")["s"] == [last])
        // Over the completed datagram: neither passed nor held (a new first fragment could
        // release a held one over bytes the host already has).
        var forged = bytes
        for index in 8..<24 { forged[index] = 0xEE }
        #expect(sw.send(Self.fragment4(22, forged, offset: 8, count: 16, more: true), on: "c").isEmpty)
        #expect(sw.send(last, on: "c").isEmpty)
        #expect(sw.counters.fragmentsHeld == 0)
        #expect(sw.drops == ["invalid": 2])
    }

    @Test func ipv6FragmentsBehindDestinationOptionsShareOneDatagram() {
        // Found by review: a first fragment's protocol is the upper layer behind the headers that
        // follow the fragment header, a later one's the fragment header's next header.
        let sw = makeSwitch()
        let udp = Self.datagram(size: 32)
        let options: [UInt8] = [IPProtocol.udp, 0, 1, 4, 0, 0, 0, 0]  // destination options, PadN
        let payload = options + udp  // 48 bytes after the fragment header
        func piece(_ offset: Int, _ count: Int, more: Bool) -> [UInt8] {
            let field = UInt16(offset / 8) << 3 | (more ? 1 : 0)
            let header: [UInt8] = [60, 0, UInt8(field >> 8), UInt8(field & 0xFF), 0, 0, 0, 23]
            return FrameBuilder.frame(
                dst: Self.s, src: Self.c, FrameBuilder.ipv6(src: Self.c6, dst: Self.s6, nextHeader: 44),
                payload: header + Array(payload[offset..<min(payload.count, offset + count)]), pad: false)
        }
        let first = piece(0, 24, more: true)
        let last = piece(24, 100, more: false)
        #expect(sw.send(first, on: "c")["s"] == [first])
        #expect(sw.send(last, on: "c")["s"] == [last])
        #expect(sw.drops == [:])
    }

    @Test func aReloadDropsHeldFragmentsAndKeepsTheCounts() throws {
        let sw = makeSwitch()
        let bytes = Self.datagram()
        #expect(sw.send(Self.fragment4(24, bytes, offset: 24, count: 100, more: false), on: "c").isEmpty)
        let first = Self.fragment4(25, bytes, offset: 0, count: 24, more: true)
        #expect(sw.send(Self.fragment4(25, bytes, offset: 24, count: 100, more: false), on: "c").isEmpty)
        #expect(sw.send(first, on: "c")["s"]?.count == 2)
        _ = sw.core.reload(to: sw.topology, now: sw.clock.now)
        #expect(sw.drops == ["invalid": 1], "the fragment held across the reload")
        #expect(sw.counters.fragmentsHeld == 0 && sw.counters.fragmentsReleased == 1 && sw.counters.fragmentsHeldDropped == 1)
    }
}
