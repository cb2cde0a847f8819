import Testing
import TapestryDatapath
import TapestryTestSupport
import TapestryWire

/// The contract's firewall clauses through the in-memory switch.
@Suite struct FirewallTests {
    static let c = MACAddress("02:00:00:00:01:01")!
    static let s = MACAddress("02:00:00:00:01:02")!
    static let x = MACAddress("02:00:00:00:01:03")!
    static let ipC = IPv4Address("10.0.1.1")!
    static let ipS = IPv4Address("10.0.1.2")!
    static let ipX = IPv4Address("10.0.1.66")!

    static func topology(default action: String = "drop", extra: String = "", rules: String? = nil) -> String {
        """
        name: fw
        networks: { lan: { vlan: 10 } }
        ports:
          c: { tap: tc, network: lan }
          s: { tap: ts, network: lan }
          x: { tap: tx, network: lan }
        firewall:
          default: \(action)
          \(extra)
          rules:
        \(rules ?? """
              - { action: allow, proto: tcp, src: 10.0.1.0/24, dport: 80 }
              - { action: drop, src: 10.0.1.66 }
              - { action: allow, proto: udp, dport: 53 }
              - { action: allow, proto: icmp }
              - { action: allow, proto: udp, src: "fd00::/8", dport: 5000 }
        """)
        """
    }

    /// A switch where every host is already learned (so unicast goes to one port).
    func makeSwitch(_ yaml: String = topology()) -> EmbeddedSwitch {
        let sw = EmbeddedSwitch(yaml: yaml)
        for (mac, port) in [(Self.c, "c"), (Self.s, "s"), (Self.x, "x")] {
            sw.send(FrameBuilder.arpRequest(src: mac, senderIP: Self.ipC, targetIP: Self.ipS), on: port)
        }
        return sw
    }

    func tcp(_ from: MACAddress, _ to: MACAddress, _ src: IPv4Address, _ dst: IPv4Address, _ sport: UInt16, _ dport: UInt16, _ flags: TCPFlags) -> [UInt8] {
        FrameBuilder.tcp4(dst: to, src: from, from: src, to: dst, sport: sport, dport: dport, flags: flags)
    }

    func passes(_ sw: EmbeddedSwitch, _ frame: [UInt8], on port: String) -> Bool { !sw.send(frame, on: port).isEmpty }

    func state(_ sw: EmbeddedSwitch) -> [TCPConnectionState] {
        sw.datapath.connectionTable!.liveEntries(now: sw.clock.now.nanoseconds).filter { $0.kind == .tcp }.map(\.tcpState)
    }

    @Test func tcpConnectionLifecycle() {
        let sw = makeSwitch()
        let steps: [(String, [UInt8], TCPConnectionState)] = [
            ("c", tcp(Self.c, Self.s, Self.ipC, Self.ipS, 40000, 80, .syn), .synSent),
            ("s", tcp(Self.s, Self.c, Self.ipS, Self.ipC, 80, 40000, [.syn, .ack]), .synReceived),
            ("c", tcp(Self.c, Self.s, Self.ipC, Self.ipS, 40000, 80, .ack), .established),
            ("s", tcp(Self.s, Self.c, Self.ipS, Self.ipC, 80, 40000, [.psh, .ack]), .established),
            ("c", tcp(Self.c, Self.s, Self.ipC, Self.ipS, 40000, 80, [.fin, .ack]), .finWait),
            ("s", tcp(Self.s, Self.c, Self.ipS, Self.ipC, 80, 40000, [.fin, .ack]), .lastAck),
            ("c", tcp(Self.c, Self.s, Self.ipC, Self.ipS, 40000, 80, .ack), .timeWait),
        ]
        for (port, frame, expected) in steps {
            #expect(passes(sw, frame, on: port), "\(expected) step passes")
            #expect(state(sw) == [expected])
        }
        // A new SYN on the same 4-tuple reopens it, through the rules again.
        #expect(passes(sw, tcp(Self.c, Self.s, Self.ipC, Self.ipS, 40000, 80, .syn), on: "c"))
        #expect(state(sw) == [.synSent])
        #expect(sw.drops.isEmpty)
        #expect(sw.counters.connectionsCreated == 2)
    }

    @Test func rulesDecideOnlyNewConnections() {
        let sw = makeSwitch()
        #expect(!passes(sw, tcp(Self.c, Self.s, Self.ipC, Self.ipS, 40001, 22, .syn), on: "c"), "port 22 not allowed")
        #expect(sw.drops == ["firewall": 1])
        // The server's replies match no allow rule, yet pass: they belong to an allowed connection.
        #expect(passes(sw, tcp(Self.c, Self.s, Self.ipC, Self.ipS, 40002, 80, .syn), on: "c"))
        #expect(passes(sw, tcp(Self.s, Self.c, Self.ipS, Self.ipC, 80, 40002, [.syn, .ack]), on: "s"))
        // A server-initiated connection to the client is a NEW connection: default drop.
        #expect(!passes(sw, tcp(Self.s, Self.c, Self.ipS, Self.ipC, 5555, 8080, .syn), on: "s"))
        #expect(sw.drops == ["firewall": 2])
    }

    @Test func firstMatchWins() {
        let sw = makeSwitch()
        // 10.0.1.66 to port 80 matches the allow rule before the drop rule.
        #expect(passes(sw, tcp(Self.x, Self.s, Self.ipX, Self.ipS, 40000, 80, .syn), on: "x"))
        // ... but UDP 53 from it hits the drop rule first.
        #expect(!passes(sw, FrameBuilder.udp4(dst: Self.s, src: Self.x, from: Self.ipX, to: Self.ipS, dport: 53), on: "x"))
        #expect(sw.drops == ["firewall": 1])
    }

    @Test func nonSYNOfUnknownConnectionIsInvalidWhateverTheDefault() {
        for policy in ["drop", "allow"] {
            let sw = makeSwitch(Self.topology(default: policy, rules: "    []"))
            #expect(!passes(sw, tcp(Self.c, Self.s, Self.ipC, Self.ipS, 40000, 80, .ack), on: "c"))
            #expect(!passes(sw, tcp(Self.s, Self.c, Self.ipS, Self.ipC, 80, 40000, [.syn, .ack]), on: "s"), "unsolicited SYN+ACK")
            #expect(!passes(sw, tcp(Self.c, Self.s, Self.ipC, Self.ipS, 40000, 80, [.syn, .fin]), on: "c"))
            #expect(sw.drops == ["invalid": 3], "default \(policy)")
        }
    }

    @Test func synSentRejectsAnythingButTheHandshake() {
        let sw = makeSwitch()
        #expect(passes(sw, tcp(Self.c, Self.s, Self.ipC, Self.ipS, 40000, 80, .syn), on: "c"))
        #expect(!passes(sw, tcp(Self.s, Self.c, Self.ipS, Self.ipC, 80, 40000, [.ack, .fin]), on: "s"), "a FIN before the SYN-ACK")
        #expect(sw.drops == ["invalid": 1])
        // RFC 793, SYN-SENT: a RST is acceptable only if it acknowledges the SYN (seq 1000 + 1).
        #expect(!passes(sw, tcp(Self.s, Self.c, Self.ipS, Self.ipC, 80, 40000, .rst), on: "s"), "a RST that acknowledges nothing")
        #expect(!passes(sw, FrameBuilder.tcp4(dst: Self.c, src: Self.s, from: Self.ipS, to: Self.ipC, sport: 80, dport: 40000, flags: [.rst, .ack], seq: 0, ack: 999), on: "s"))
        #expect(sw.drops == ["invalid": 3] && state(sw) == [.synSent])
        let refusal = FrameBuilder.tcp4(dst: Self.c, src: Self.s, from: Self.ipS, to: Self.ipC, sport: 80, dport: 40000, flags: [.rst, .ack], seq: 0, ack: 1001)
        #expect(passes(sw, refusal, on: "s"), "the refusal passes and closes")
        #expect(state(sw) == [.close])
    }

    @Test func udpRequestResponseAndTimeouts() {
        let sw = makeSwitch()
        let query = FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, sport: 33333, dport: 53)
        let answer = FrameBuilder.udp4(dst: Self.c, src: Self.s, from: Self.ipS, to: Self.ipC, sport: 53, dport: 33333)
        #expect(passes(sw, query, on: "c"))
        #expect(passes(sw, answer, on: "s"))
        // Replied: udp_stream (120 s) applies.
        sw.clock.advance(by: .seconds(100))
        #expect(passes(sw, answer, on: "s"))
        // An unreplied flow dies after udp (30 s): its late answer is a NEW flow, refused.
        let other = FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, sport: 44444, dport: 53)
        let late = FrameBuilder.udp4(dst: Self.c, src: Self.s, from: Self.ipS, to: Self.ipC, sport: 53, dport: 44444)
        #expect(passes(sw, other, on: "c"))
        sw.clock.advance(by: .seconds(30))
        #expect(!passes(sw, late, on: "s"))
        #expect(sw.drops == ["firewall": 1])
    }

    @Test func icmpEchoAndRelatedErrors() {
        let sw = makeSwitch()
        let request = FrameBuilder.ping4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, identifier: 77)
        var reply = request
        reply.withUnsafeMutableBytes { bytes in
            bytes.setMAC(0, Self.c)
            bytes.setMAC(6, Self.s)
            let parsed = FrameParser.parse(UnsafeRawBufferPointer(bytes))
            _ = FrameRewriter.setIPv4Address(bytes, parsed, .source, Self.ipS)
            _ = FrameRewriter.setIPv4Address(bytes, parsed, .destination, Self.ipC)
            bytes[34] = 0  // echo reply (the checksum is not the firewall's business)
        }
        #expect(!passes(sw, reply, on: "s"), "unsolicited echo reply")
        #expect(passes(sw, request, on: "c"))
        #expect(passes(sw, reply, on: "s"))
        // A UDP flow, then the server's port-unreachable about it: related.
        let datagram = FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, sport: 5353, dport: 53)
        #expect(passes(sw, datagram, on: "c"))
        #expect(passes(sw, unreachable(quoting: datagram), on: "s"))
        let untracked = FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, sport: 9, dport: 9)
        #expect(!passes(sw, unreachable(quoting: untracked), on: "s"))
        #expect(sw.drops == ["invalid": 2])
        #expect(sw.counters.relatedPassed == 1)
    }

    /// ICMP port unreachable from s to c quoting `original`'s IP header and first 8 L4 bytes.
    func unreachable(quoting original: [UInt8]) -> [UInt8] {
        let quoted = Array(original[14..<(14 + 28)])
        return FrameBuilder.frame(
            dst: Self.c, src: Self.s, FrameBuilder.ipv4(src: Self.ipS, dst: Self.ipC), FrameBuilder.icmp(type: 3, code: 3),
            payload: quoted)
    }

    /// An ICMP error about an allowed flow passes only back to the quoted packet's sender: the same
    /// error addressed to a third host is not related to anything it may receive.
    @Test func relatedErrorsGoOnlyToTheQuotedSender() {
        let sw = makeSwitch()
        let datagram = FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, sport: 5353, dport: 53)
        #expect(passes(sw, datagram, on: "c"))
        let quoted = Array(datagram[14..<(14 + 28)])
        let toBystander = FrameBuilder.frame(
            dst: Self.x, src: Self.s, FrameBuilder.ipv4(src: Self.ipS, dst: Self.ipX), FrameBuilder.icmp(type: 3, code: 3),
            payload: quoted)
        #expect(!passes(sw, toBystander, on: "s"), "an error about c's flow sent to x is not related")
        #expect(passes(sw, unreachable(quoting: datagram), on: "s"), "the same error to c is")
        #expect(sw.drops == ["invalid": 1])
        #expect(sw.counters.relatedPassed == 1)
    }

    /// A ping allowed from c to s does not let s ping c: the echo key keeps its direction.
    @Test func echoIsTrackedWithItsDirection() {
        let sw = makeSwitch(Self.topology(rules: """
                  - { action: allow, proto: icmp, src: 10.0.1.1, dst: 10.0.1.2 }
            """))
        let request = FrameBuilder.ping4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, identifier: 77)
        #expect(passes(sw, request, on: "c"))
        let back = FrameBuilder.ping4(dst: Self.c, src: Self.s, from: Self.ipS, to: Self.ipC, identifier: 77)
        #expect(!passes(sw, back, on: "s"), "s pinging c with the same identifier is a new connection, refused")
        var reply = FrameBuilder.ping4(dst: Self.c, src: Self.s, from: Self.ipS, to: Self.ipC, identifier: 77)
        reply[34] = 0  // echo reply
        #expect(passes(sw, reply, on: "s"), "the reply to c's ping passes")
        #expect(sw.drops == ["firewall": 1])
    }

    /// Rule prefixes match their own family only.
    @Test func rulePrefixesMatchTheirOwnFamily() {
        let sw = makeSwitch(Self.topology(rules: """
                  - { action: allow, proto: udp, dst: "::/0", dport: 7000 }
                  - { action: allow, proto: udp, src: 10.0.1.0/24, dport: 7001 }
            """))
        #expect(!passes(sw, FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, dport: 7000), on: "c"),
            "::/0 does not admit IPv4")
        #expect(passes(sw, FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, dport: 7001), on: "c"))
        let mapped = IPv6Address("::ffff:10.0.1.1")!
        let v6 = IPv6Address("fd00:1::2")!
        #expect(!passes(sw, FrameBuilder.udp6(dst: Self.s, src: Self.c, from: mapped, to: v6, dport: 7001), on: "c"),
            "10.0.1.0/24 does not admit IPv6 from ::ffff:10.0.1.1")
        #expect(passes(sw, FrameBuilder.udp6(dst: Self.s, src: Self.c, from: mapped, to: v6, dport: 7000), on: "c"))
        #expect(sw.drops == ["firewall": 2])
    }

    @Test func ipv6RulesAndNeighbourDiscovery() {
        let sw = makeSwitch()
        let a = IPv6Address("fd00:1::1")!
        let b = IPv6Address("fd00:1::2")!
        #expect(passes(sw, FrameBuilder.udp6(dst: Self.s, src: Self.c, from: a, to: b, dport: 5000), on: "c"))
        #expect(passes(sw, FrameBuilder.udp6(dst: Self.c, src: Self.s, from: b, to: a, sport: 5000, dport: 40000), on: "s"))
        #expect(!passes(sw, FrameBuilder.udp6(dst: Self.s, src: Self.c, from: a, to: b, dport: 6000), on: "c"))
        let solicitation = FrameBuilder.frame(
            dst: .broadcast, src: Self.c, FrameBuilder.ipv6(src: a, dst: b), FrameBuilder.icmp(type: 135, v6: true),
            payload: [UInt8](repeating: 0, count: 16), pad: false)
        #expect(passes(sw, solicitation, on: "c"), "neighbour discovery is never tracked or filtered")
        #expect(sw.drops == ["firewall": 1])
    }

    @Test func nonIPFramesPass() {
        let sw = makeSwitch()
        #expect(passes(sw, FrameBuilder.arpRequest(src: Self.c, senderIP: Self.ipC, targetIP: Self.ipS), on: "c"))
        #expect(passes(sw, FrameBuilder.ethernet(dst: Self.s, src: Self.c, type: 0x88B5, payload: [UInt8](repeating: 1, count: 46)), on: "c"))
    }

    @Test func laterFragmentsFollowTheirFirstFragment() {
        let sw = makeSwitch()
        // UDP 3000 -> 53 with 24 bytes of data and no checksum, cut in two by hand below.
        let segment: [UInt8] = [0x0B, 0xB8, 0, 53, 0, 32, 0, 0] + [UInt8](repeating: 7, count: 24)
        func fragment(_ id: UInt16, _ flags: UInt16, _ payload: [UInt8], dport: UInt16 = 53) -> [UInt8] {
            FrameBuilder.frame(
                dst: Self.s, src: Self.c,
                FrameBuilder.ipv4(
                    src: Self.ipC, dst: Self.ipS, identification: id, dontFragment: false, moreFragments: flags & 0x2000 != 0,
                    fragmentOffset: Int(flags & 0x1FFF) * 8, proto: IPProtocol.udp),
                payload: payload)
        }
        #expect(passes(sw, fragment(1, 0x2000, Array(segment.prefix(16))), on: "c"), "first fragment, port 53")
        #expect(passes(sw, fragment(1, 0x0002, Array(segment.dropFirst(16))), on: "c"), "its later fragment")
        var blocked = segment
        blocked[3] = 99  // destination port 99: not allowed
        #expect(!passes(sw, fragment(2, 0x2000, Array(blocked.prefix(16))), on: "c"))
        #expect(!passes(sw, fragment(2, 0x0002, Array(blocked.dropFirst(16))), on: "c"), "follows its refused first")
        #expect(!passes(sw, fragment(3, 0x0002, [1, 2, 3, 4, 5, 6, 7, 8]), on: "c"), "no first fragment seen: held")
        #expect(sw.drops == ["firewall": 1, "invalid": 1])
        sw.core.finishInput()
        #expect(sw.drops == ["firewall": 1, "invalid": 2], "its first fragment never came")
    }

    /// A SYN flood from many sources never grows the table past its bound and never disturbs an
    /// established connection.
    @Test func synFloodKeepsEstablishedConnections() {
        let sw = makeSwitch(Self.topology(extra: "max_connections: 8"))
        #expect(passes(sw, tcp(Self.c, Self.s, Self.ipC, Self.ipS, 40000, 80, .syn), on: "c"))
        #expect(passes(sw, tcp(Self.s, Self.c, Self.ipS, Self.ipC, 80, 40000, [.syn, .ack]), on: "s"))
        #expect(passes(sw, tcp(Self.c, Self.s, Self.ipC, Self.ipS, 40000, 80, .ack), on: "c"))
        for n in 0..<500 {
            let source = IPv4Address(10, 0, 1, UInt8(100 + n % 100))
            sw.inject(tcp(Self.x, Self.s, source, Self.ipS, UInt16(1024 + n), 80, .syn), on: "x")
        }
        sw.runUntilIdle()
        _ = sw.drainAll()
        #expect(sw.datapath.connectionTable!.count <= 8)
        #expect(sw.counters.connectionsEvicted == 500 - 7, "each SYN past the bound evicted the oldest unreplied")
        #expect(passes(sw, tcp(Self.s, Self.c, Self.ipS, Self.ipC, 80, 40000, [.psh, .ack]), on: "s"), "established survives")
        #expect(state(sw).contains(.established))
    }

    @Test func fullTableOfEstablishedRefusesNewConnections() {
        let sw = makeSwitch(Self.topology(extra: "max_connections: 2"))
        for port: UInt16 in [40000, 40001] {
            #expect(passes(sw, tcp(Self.c, Self.s, Self.ipC, Self.ipS, port, 80, .syn), on: "c"))
            #expect(passes(sw, tcp(Self.s, Self.c, Self.ipS, Self.ipC, 80, port, [.syn, .ack]), on: "s"))
        }
        #expect(!passes(sw, tcp(Self.c, Self.s, Self.ipC, Self.ipS, 40002, 80, .syn), on: "c"))
        #expect(sw.drops == ["table-full": 1])
    }
}
