import Testing
import TapestryDatapath
import TapestryTestSupport
import TapestryWire

/// What a reload keeps: a new datapath adopting the old one's state.
@Suite struct ReloadTests {
    static let c = MACAddress("02:00:00:00:01:01")!
    static let s = MACAddress("02:00:00:00:01:02")!
    static let ipC = IPv4Address("10.0.1.1")!
    static let ipS = IPv4Address("10.0.1.2")!

    static func topology(rules: String, extraPort: String = "") -> String {
        """
        name: fw
        networks: { lan: { vlan: 10 }, other: { vlan: 20 } }
        ports:
          c: { tap: tc, network: lan }
          s: { tap: ts, network: lan }
        \(extraPort)
        firewall:
          default: drop
          rules:
        \(rules)
        """
    }

    func tcp(_ sport: UInt16, _ dport: UInt16, _ flags: TCPFlags, reply: Bool = false) -> [UInt8] {
        reply
            ? FrameBuilder.tcp4(dst: Self.c, src: Self.s, from: Self.ipS, to: Self.ipC, sport: dport, dport: sport, flags: flags)
            : FrameBuilder.tcp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, sport: sport, dport: dport, flags: flags)
    }

    @Test func connectionsAndMACsSurviveAndMeetTheNewRules() {
        let allowBoth = """
                - { action: allow, proto: tcp, dport: 80 }
                - { action: allow, proto: tcp, dport: 22 }
            """
        let before = EmbeddedSwitch(yaml: Self.topology(rules: allowBoth))
        for port: UInt16 in [80, 22] {
            before.send(tcp(40000 + port, port, .syn), on: "c")
            before.send(tcp(40000 + port, port, [.syn, .ack], reply: true), on: "s")
            before.send(tcp(40000 + port, port, .ack), on: "c")
        }
        #expect(before.counters.connections == 2)

        // The new topology adds a port and no longer allows port 22.
        let after = EmbeddedSwitch(
            yaml: Self.topology(rules: "        - { action: allow, proto: tcp, dport: 80 }", extraPort: "  x: { tap: tx, network: other }"))
        let adoption = after.datapath.adoptState(from: before.datapath, now: before.clock.now)
        #expect(adoption == .init(macEntries: 2, connections: 2, connectionsDropped: 0))
        #expect(after.counters.ports[0].framesIn == before.counters.ports[0].framesIn, "counters carried over")
        #expect(after.counters.macLearned == before.counters.macLearned && after.counters.macLearned == 2)
        #expect(after.counters.connectionsCreated == 2, "switch-wide counters never go backwards either")

        // Port 80 goes on, unicast (MACs kept), without a new handshake.
        #expect(after.send(tcp(40080, 80, [.psh, .ack]), on: "c").keys.sorted() == ["s"])
        #expect(after.send(tcp(40080, 80, [.psh, .ack], reply: true), on: "s").keys.sorted() == ["c"])
        // Port 22 is no longer allowed: dropped at its next packet, and gone.
        #expect(after.send(tcp(40022, 22, [.psh, .ack]), on: "c").isEmpty)
        #expect(after.drops == ["firewall": 1])
        #expect(after.send(tcp(40022, 22, [.psh, .ack], reply: true), on: "s").isEmpty)
        #expect(after.drops == ["firewall": 1, "invalid": 1], "no connection any more")
        #expect(after.counters.connections == 1)
    }

    @Test func aRemovedNetworkTakesItsStateAlong() {
        let before = EmbeddedSwitch(yaml: Self.topology(rules: "        - { action: allow }"))
        before.send(tcp(40000, 80, .syn), on: "c")
        let after = EmbeddedSwitch(
            yaml: """
                name: fw
                networks: { wan: { vlan: 30 } }
                ports: { w: { tap: tw, network: wan } }
                firewall: { default: allow }
                """)
        let adoption = after.datapath.adoptState(from: before.datapath, now: before.clock.now)
        #expect(adoption == .init(macEntries: 0, connections: 0, connectionsDropped: 1))
    }
}
