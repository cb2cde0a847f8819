import Testing
import TapestryDatapath
import TapestryTestSupport
import TapestryWire

/// Sequence windows through the in-memory switch: what passes, what is dropped as `invalid` and
/// what `trace` says about it, and the RFC 5961 challenge-ACK exchanges end to end.
@Suite struct FirewallWindowTests {
    static let c = MACAddress("02:00:00:00:01:01")!
    static let s = MACAddress("02:00:00:00:01:02")!
    static let ipC = IPv4Address("10.0.1.1")!
    static let ipS = IPv4Address("10.0.1.2")!

    func makeSwitch() -> EmbeddedSwitch {
        let sw = EmbeddedSwitch(yaml: """
            name: fw
            networks: { lan: { vlan: 10 } }
            ports:
              c: { tap: tc, network: lan }
              s: { tap: ts, network: lan }
            firewall:
              default: drop
              rules:
                - { action: allow, proto: tcp, dport: 80 }
            """)
        sw.send(FrameBuilder.arpRequest(src: Self.c, senderIP: Self.ipC, targetIP: Self.ipS), on: "c")
        sw.send(FrameBuilder.arpRequest(src: Self.s, senderIP: Self.ipS, targetIP: Self.ipC), on: "s")
        return sw
    }

    func fromClient(_ flags: TCPFlags, seq: UInt32, ack: UInt32 = 0, payload: Int = 0) -> [UInt8] {
        FrameBuilder.tcp4(
            dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, sport: 40000, dport: 80, flags: flags, seq: seq, ack: ack,
            payload: [UInt8](repeating: 0x61, count: payload))
    }

    func fromServer(_ flags: TCPFlags, seq: UInt32, ack: UInt32 = 0, payload: Int = 0) -> [UInt8] {
        FrameBuilder.tcp4(
            dst: Self.c, src: Self.s, from: Self.ipS, to: Self.ipC, sport: 80, dport: 40000, flags: flags, seq: seq, ack: ack,
            payload: [UInt8](repeating: 0x62, count: payload))
    }

    func passes(_ sw: EmbeddedSwitch, _ frame: [UInt8], on port: String) -> Bool { !sw.send(frame, on: port).isEmpty }

    func state(_ sw: EmbeddedSwitch) -> [TCPConnectionState] {
        sw.datapath.connectionTable!.liveEntries(now: sw.clock.now.nanoseconds).map(\.tcpState)
    }

    /// Client ISN 1000, server ISN 5000, windows 65535.
    func established() -> EmbeddedSwitch {
        let sw = makeSwitch()
        #expect(passes(sw, fromClient(.syn, seq: 1000), on: "c"))
        #expect(passes(sw, fromServer([.syn, .ack], seq: 5000, ack: 1001), on: "s"))
        #expect(passes(sw, fromClient(.ack, seq: 1001, ack: 5001), on: "c"))
        #expect(state(sw) == [.established])
        return sw
    }

    @Test func aForgedOutOfWindowRSTDoesNotEndTheConnection() {
        let sw = established()
        // Someone who knows the 4-tuple but not the sequence numbers.
        for guess: UInt32 in [0, 0x4000_0000, 0x8000_0000, 0xC000_0000] {
            #expect(!passes(sw, fromServer(.rst, seq: guess), on: "s"), "RST at \(guess)")
        }
        #expect(sw.drops == ["invalid": 4] && state(sw) == [.established])
        #expect(passes(sw, fromClient([.psh, .ack], seq: 1001, ack: 5001, payload: 100), on: "c"), "the client's data still passes")
        // A RST in the window but not exact passes (the client challenges it) and keeps the connection.
        #expect(passes(sw, fromServer(.rst, seq: 5001 + 2000), on: "s"))
        #expect(state(sw) == [.established])
        #expect(passes(sw, fromServer(.rst, seq: 5001), on: "s"), "the exact RST")
        #expect(state(sw) == [.close])
    }

    @Test func outOfWindowDataAndFINAreInvalidAndChangeNothing() {
        let sw = established()
        #expect(!passes(sw, fromClient([.psh, .ack], seq: 1001 + 100_000, ack: 5001, payload: 10), on: "c"))
        #expect(!passes(sw, fromClient([.fin, .ack], seq: 1001 &- 200_000, ack: 5001), on: "c"))
        #expect(!passes(sw, fromServer(.ack, seq: 5001, ack: 1001 + 50), on: "s"), "acknowledges data never sent")
        #expect(sw.drops == ["invalid": 3] && state(sw) == [.established])
        #expect(passes(sw, fromClient([.fin, .ack], seq: 1001, ack: 5001), on: "c"))
        #expect(state(sw) == [.finWait])
    }

    @Test func traceSaysTheSequenceAndTheWindow() {
        let sw = established()
        let lines = sw.trace([fromClient([.psh, .ack], seq: 1000, ack: 5001, payload: 10)], on: "c")  // fine: a retransmission
        #expect(!lines[0].joined().contains("dropped"), "\(lines)")
        let outside = sw.trace([fromClient([.psh, .ack], seq: 200_000, ack: 5001, payload: 10)], on: "c")[0]
        let firewall = outside.first { $0.contains("firewall") && $0.contains("dropped") } ?? ""
        // The window's low end wraps below 0 (modulo 2^32): the client has sent up to 1010, the
        // server's largest window is 65535; its high end is the server's ACK 1001 + 65535.
        #expect(
            firewall == "  firewall      dropped (invalid): TCP PSH+ACK outside its ESTABLISHED connection's window: beyond what the receiver's window allows: sequence 200000 outside the window \(UInt32(1010) &- 65535)-66536",
            "\(outside)")
    }

    /// A forged SYN+RST (no TCP sends one) while the SYN waits is invalid: the real SYN-ACK passes.
    @Test func aForgedSYNRSTDoesNotCloseAWaitingConnection() {
        let sw = makeSwitch()
        #expect(passes(sw, fromClient(.syn, seq: 1000), on: "c"))
        #expect(!passes(sw, fromServer([.syn, .rst], seq: 1, ack: 2), on: "s"))
        #expect(!passes(sw, fromClient([.syn, .rst], seq: 5000), on: "c"))
        #expect(!passes(sw, fromClient(.fin, seq: 1001), on: "c"), "a FIN without ACK")
        #expect(sw.drops == ["invalid": 3] && state(sw) == [.synSent])
        #expect(passes(sw, fromServer([.syn, .ack], seq: 5000, ack: 1001), on: "s"))
        #expect(state(sw) == [.synReceived])
    }

    /// After a switch restart the switch knows nothing; the client (rebooted) sends a new SYN on
    /// the tuple of a connection the server still holds. The server's challenge ACK passes, the
    /// client's RST at that ACK number passes and closes, and the client's next SYN opens anew.
    @Test func challengeACKAfterARestartLetsTheHostsRecover() {
        let sw = makeSwitch()
        #expect(passes(sw, fromClient(.syn, seq: 7000), on: "c"))
        #expect(passes(sw, fromServer(.ack, seq: 90000, ack: 33333), on: "s"), "the challenge ACK")
        #expect(state(sw) == [.synSent])
        #expect(passes(sw, fromClient(.rst, seq: 33333), on: "c"), "the client's answer")
        #expect(state(sw) == [.close])
        #expect(passes(sw, fromClient(.syn, seq: 7000), on: "c"), "its SYN again")
        #expect(passes(sw, fromServer([.syn, .ack], seq: 123, ack: 7001), on: "s"))
        #expect(passes(sw, fromClient(.ack, seq: 7001, ack: 124), on: "c"))
        #expect(state(sw) == [.established] && sw.drops.isEmpty)
    }

    /// The switch still holds the old connection; the client restarted and sends a SYN with a
    /// new ISN. It passes unchecked; the server's challenge ACK (in the old window) passes; the
    /// client's RST at its ACK number closes; then the new connection opens.
    @Test func challengeACKOnALiveConnection() {
        let sw = established()
        #expect(passes(sw, fromClient([.psh, .ack], seq: 1001, ack: 5001, payload: 100), on: "c"))
        #expect(passes(sw, fromServer(.ack, seq: 5001, ack: 1101), on: "s"))
        #expect(passes(sw, fromClient(.syn, seq: 3_000_000_000), on: "c"), "a new SYN passes unchecked")
        #expect(state(sw) == [.established])
        #expect(passes(sw, fromServer(.ack, seq: 5001, ack: 1101), on: "s"), "the challenge ACK")
        #expect(passes(sw, fromClient(.rst, seq: 1101), on: "c"), "the RST at its ACK number")
        #expect(state(sw) == [.close])
        #expect(passes(sw, fromClient(.syn, seq: 3_000_000_000), on: "c"))
        #expect(passes(sw, fromServer([.syn, .ack], seq: 9, ack: 3_000_000_001), on: "s"))
        #expect(sw.drops.isEmpty)
    }

    /// The server had forgotten the connection and answers the client's new SYN with a SYN-ACK:
    /// the switch starts the connection again from the two.
    @Test func aSYNACKToTheNewSYNRestartsTheConnection() {
        let sw = established()
        #expect(passes(sw, fromClient(.syn, seq: 400_000), on: "c"))
        #expect(passes(sw, fromServer([.syn, .ack], seq: 77, ack: 400_001), on: "s"))
        #expect(state(sw) == [.synReceived])
        #expect(passes(sw, fromClient(.ack, seq: 400_001, ack: 78), on: "c"))
        #expect(passes(sw, fromClient([.psh, .ack], seq: 400_001, ack: 78, payload: 500), on: "c"))
        #expect(state(sw) == [.established] && sw.drops.isEmpty)
    }
}
