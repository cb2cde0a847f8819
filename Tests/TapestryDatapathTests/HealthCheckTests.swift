import Testing
import TapestryDatapath
import TapestryTestSupport
import TapestryWire

/// Active health checks through the in-memory switch, driven as the live switch drives them
/// (`SwitchCore.runHealthChecks` when `nextHealthCheck` comes), with a manual clock.
@Suite struct HealthCheckTests {
    typealias LB = LoadBalancerTests
    static let health = "    health: { probe: PROBE, interval: 2, timeout: 1, rise: 2, fall: 2 }"

    func makeSwitch(probe: String = "tcp", firewall: String = "") -> EmbeddedSwitch {
        let yaml = LB.topology(firewall: firewall) + "\n" + Self.health.replacingOccurrences(of: "PROBE", with: probe)
        let sw = LoadBalancerTests().makeSwitch(yaml)
        return sw
    }

    /// Runs the checks due now; returns the probes by port.
    @discardableResult
    func probe(_ sw: EmbeddedSwitch) -> [String: [[UInt8]]] {
        var out: [String: [[UInt8]]] = [:]
        sw.core.runHealthChecks(now: sw.clock.now) { port, queues in
            for index in 0..<queues.count(port) { out[sw.core.portNames[Int(port)], default: []].append(Array(queues.frame(port, index))) }
        }
        return out
    }

    func fields(_ frame: [UInt8]) -> [String: String] { LoadBalancerTests().fields(frame) }

    /// The backend's answer to its TCP probe: SYN-ACK (or RST) acknowledging the probe's SYN.
    func answer(to probe: [UInt8], from mac: MACAddress, ip: IPv4Address, flags: TCPFlags = [.syn, .ack], ackOffset: UInt32 = 1) -> [UInt8] {
        let f = fields(probe)
        let sport = UInt16(f["tcp.sport"]!)!
        let seq = UInt32(f["tcp.seq"]!)!
        return FrameBuilder.frame(
            dst: LB.lbMAC, src: mac, FrameBuilder.ipv4(src: ip, dst: LB.vip),
            FrameBuilder.tcp(sport: 8080, dport: sport, flags: flags, seq: 7000, ack: seq &+ ackOffset))
    }

    @Test func tcpProbesComeFromTheVIPAndTheirAnswerIsReset() throws {
        let sw = makeSwitch()
        let probes = probe(sw)
        #expect(probes.keys.sorted() == ["b1", "b2"], "each probe goes to its backend's port only")
        let syn = fields(try #require(probes["b1"]?.first))
        #expect(syn["eth.src"] == "\(LB.lbMAC)" && syn["eth.dst"] == "\(LB.b1)")
        #expect(syn["ipv4.src"] == "10.0.10.100" && syn["ipv4.dst"] == "10.0.10.11" && syn["tcp.dport"] == "8080")
        #expect(syn["tcp.flags"]?.hasSuffix("02") == true, "a SYN: \(syn)")
        #expect(syn["tcp.checksum"]?.hasSuffix("(valid)") == true && syn["ipv4.checksum"]?.hasSuffix("(valid)") == true)
        let out = sw.send(answer(to: probes["b1"]![0], from: LB.b1, ip: LB.ipB1), on: "b1")
        #expect(out.keys.sorted() == ["b1"], "the SYN-ACK is the switch's: answered, not forwarded")
        let reset = fields(try #require(out["b1"]?.first))
        #expect(reset["ipv4.src"] == "10.0.10.100" && reset["tcp.sport"] == syn["tcp.sport"])
        #expect(reset["tcp.seq"] == "\(UInt32(syn["tcp.seq"]!)! &+ 1)", "the RST's sequence number is what the SYN-ACK acknowledged")
        #expect(reset["tcp.checksum"]?.hasSuffix("(valid)") == true && reset["ipv4.checksum"]?.hasSuffix("(valid)") == true)
        #expect(sw.drops.isEmpty)
        #expect(sw.datapath.backendHealth(balancer: 0, backend: 0).up)
    }

    /// `fall` unanswered probes take a backend down: new connections skip it, its existing one
    /// keeps it; `rise` answered probes bring it back.
    @Test func fallTakesABackendDownAndRiseBringsItBack() throws {
        let sw = makeSwitch()
        #expect(sw.send(LB().syn(50001), on: "c").keys.sorted() == ["b1"])
        for round in 0..<2 {
            let probes = probe(sw)
            sw.send(answer(to: probes["b2"]![0], from: LB.b2, ip: LB.ipB2), on: "b2")  // b2 answers, b1 does not
            sw.clock.advance(by: .seconds(1))
            probe(sw)  // times out b1's probe
            #expect(sw.datapath.backendHealth(balancer: 0, backend: 0).up == (round == 0))
            sw.clock.advance(by: .seconds(1))
        }
        #expect(sw.datapath.takeHealthChanges().map(\.up) == [false])
        for sport in UInt16(50002)...50005 {
            #expect(sw.send(LB().syn(sport), on: "c").keys.sorted() == ["b2"], "b1 is down: every new connection goes to b2")
        }
        let ack = FrameBuilder.tcp4(dst: LB.lbMAC, src: LB.client, from: LB.ipClient, to: LB.vip, sport: 50001, dport: 80, flags: .ack)
        #expect(sw.send(ack, on: "c").keys.sorted() == ["b1"], "an existing connection keeps its backend")
        for _ in 0..<2 {
            let probes = probe(sw)
            sw.send(answer(to: probes["b1"]![0], from: LB.b1, ip: LB.ipB1), on: "b1")
            sw.send(answer(to: probes["b2"]![0], from: LB.b2, ip: LB.ipB2), on: "b2")
            sw.clock.advance(by: .seconds(2))
        }
        #expect(sw.datapath.backendHealth(balancer: 0, backend: 0).up)
        #expect(sw.datapath.takeHealthChanges().map(\.up) == [true])
        let picks = (UInt16(50010)...50013).map { sw.send(LB().syn($0), on: "c").keys.sorted() }
        #expect(picks.contains(["b1"]) && picks.contains(["b2"]), "\(picks)")
    }

    /// A RST answering the probe is a failure at once, not after the timeout.
    @Test func aResetFailsTheProbe() {
        let sw = makeSwitch()
        for _ in 0..<2 {
            let probes = probe(sw)
            #expect(sw.send(answer(to: probes["b1"]![0], from: LB.b1, ip: LB.ipB1, flags: [.rst, .ack]), on: "b1").isEmpty)
            sw.clock.advance(by: .seconds(2))
        }
        #expect(!sw.datapath.backendHealth(balancer: 0, backend: 0).up)
    }

    /// Answers that do not quote the outstanding probe (wrong acknowledgment, wrong source, no
    /// probe outstanding) change nothing and are not consumed; a forged one cannot keep a dead
    /// backend up.
    @Test func forgedAnswersChangeNothing() {
        let sw = makeSwitch(firewall: "firewall:\n  default: drop\n  rules:\n    - { action: allow, proto: tcp, dst: 10.0.10.100, dport: 80 }")
        for _ in 0..<2 {
            let probes = probe(sw)
            let probeSYN = probes["b1"]![0]
            #expect(sw.send(answer(to: probeSYN, from: LB.b1, ip: LB.ipB1, ackOffset: 2), on: "b1").isEmpty)
            #expect(sw.send(answer(to: probeSYN, from: LB.client, ip: LB.ipClient), on: "c").isEmpty)
            sw.send(answer(to: probes["b2"]![0], from: LB.b2, ip: LB.ipB2), on: "b2")
            sw.clock.advance(by: .seconds(2))
        }
        probe(sw)
        #expect(!sw.datapath.backendHealth(balancer: 0, backend: 0).up, "forged answers did not keep b1 up")
        #expect(sw.datapath.backendHealth(balancer: 0, backend: 1).up)
        #expect(sw.drops == ["invalid": 4], "the forged answers stay the firewall's invalid drops")
    }

    @Test func icmpAndARPProbes() throws {
        let icmp = makeSwitch(probe: "icmp")
        let request = fields(try #require(probe(icmp)["b1"]?.first))
        #expect(request["icmp.type"] == "8" && request["ipv4.src"] == "10.0.10.100" && request["icmp.checksum"]?.hasSuffix("(valid)") == true)
        icmp.clock.advance(by: .seconds(2))
        let second = try #require(probe(icmp)["b1"]?.first)
        let asked2 = fields(second)
        func reply(data: [UInt8]) -> [UInt8] {
            FrameBuilder.frame(
                dst: LB.lbMAC, src: LB.b1, FrameBuilder.ipv4(src: LB.ipB1, dst: LB.vip),
                FrameBuilder.icmp(type: 0, identifier: UInt16(asked2["icmp.id"]!)!, sequence: UInt16(asked2["icmp.seq"]!)!),
                payload: data)
        }
        var wrong = Array(second[42..<50])
        wrong[7] ^= 1
        #expect(icmp.send(reply(data: wrong), on: "b1").isEmpty)
        #expect(icmp.drops == ["no-service": 1], "a reply without the probe's 8 data bytes does not count: it stays a drop")
        #expect(icmp.send(reply(data: Array(second[42..<50])), on: "b1").isEmpty, "the echo reply is consumed")
        #expect(icmp.drops == ["no-service": 1])
        // Counted: the first probe failed (timed out), the second succeeded, so one more failure
        // leaves b1 up (fall 2); had the answer not counted, that would be three in a row.
        icmp.clock.advance(by: .seconds(2))
        probe(icmp)
        icmp.clock.advance(by: .seconds(2))
        probe(icmp)
        #expect(icmp.datapath.backendHealth(balancer: 0, backend: 0).up)
        #expect(!icmp.datapath.backendHealth(balancer: 0, backend: 1).up, "b2 never answered")

        let arp = makeSwitch(probe: "arp")
        let asked = fields(try #require(probe(arp)["b1"]?.first))
        #expect(asked["arp.op"] == "1" && asked["arp.spa"] == "10.0.10.100" && asked["arp.tpa"] == "10.0.10.11")
        #expect(asked["eth.dst"] == "\(LB.b1)", "a known backend is asked by unicast")
        // A reply for b1's address from another MAC does not count (b1's MAC is pinned).
        let forged = FrameBuilder.arp(
            dst: LB.lbMAC, src: LB.client, operation: 2, senderIP: LB.ipB1, targetMAC: LB.lbMAC, targetIP: LB.vip)
        arp.send(forged, on: "c")
        arp.clock.advance(by: .seconds(1))
        probe(arp)
        arp.clock.advance(by: .seconds(1))
        probe(arp)
        arp.clock.advance(by: .seconds(1))
        probe(arp)
        #expect(!arp.datapath.backendHealth(balancer: 0, backend: 0).up, "two unanswered ARP probes")
    }

    /// Every backend down: a new connection is refused at once, as a host with nothing listening
    /// would refuse it (a RST from VIP:port; for UDP an ICMP port unreachable quoting the
    /// datagram), and counted `no-service`.
    @Test func allDownRefusesNewConnections() throws {
        let sw = makeSwitch()
        sw.datapath.setBackendUp(balancer: 0, backend: 0, false, now: sw.clock.now)
        sw.datapath.setBackendUp(balancer: 0, backend: 1, false, now: sw.clock.now)
        let out = sw.send(LB().syn(50001), on: "c")
        #expect(out.keys.sorted() == ["c"])
        let reset = fields(try #require(out["c"]?.first))
        #expect(reset["eth.dst"] == "\(LB.client)" && reset["eth.src"] == "\(LB.lbMAC)")
        #expect(reset["ipv4.src"] == "10.0.10.100" && reset["ipv4.dst"] == "10.0.10.1")
        #expect(reset["tcp.sport"] == "80" && reset["tcp.dport"] == "50001" && reset["tcp.flags"]?.hasSuffix("14") == true)
        #expect(reset["tcp.ack"] == "1001", "acknowledges the SYN (sequence 1000)")
        #expect(reset["tcp.checksum"]?.hasSuffix("(valid)") == true && reset["ipv4.checksum"]?.hasSuffix("(valid)") == true)
        #expect(sw.drops == ["no-service": 1])
        #expect(sw.counters.refusedConnections == 1)
        let trace = sw.trace([LB().syn(50002)], on: "c")
        #expect(trace[0].contains { $0.contains("every backend drained or down: refused with a TCP RST from the VIP") }, "\(trace[0])")

        let udp = LoadBalancerTests().makeSwitch(LB.topology(proto: "udp", port: 53))
        udp.datapath.setDrained(balancer: 0, backend: 0, true)
        udp.datapath.setDrained(balancer: 0, backend: 1, true)
        let datagram = FrameBuilder.udp4(dst: LB.lbMAC, src: LB.client, from: LB.ipClient, to: LB.vip, sport: 40001, dport: 53)
        let answer = udp.send(datagram, on: "c")
        let unreachable = fields(try #require(answer["c"]?.first))
        #expect(unreachable["icmp.type"] == "3" && unreachable["icmp.code"] == "3" && unreachable["ipv4.src"] == "10.0.10.100")
        #expect(unreachable["icmp.checksum"]?.hasSuffix("(valid)") == true && unreachable["ipv4.checksum"]?.hasSuffix("(valid)") == true)
        let bytes = try #require(answer["c"]?.first)
        #expect(Array(bytes[42..<62]) == Array(datagram[14..<34]), "quotes the datagram's IP header")
        #expect(Array(bytes[62..<70]) == Array(datagram[34..<42]), "and its first 8 bytes")
        #expect(udp.drops == ["no-service": 1])
    }

    /// Only the switch speaks for the VIP: a host's packet from the VIP's address is dropped
    /// `invalid` (with a firewall or without), so it cannot open connections in the VIP's name
    /// (which would capture the probes' answers).
    @Test(arguments: [false, true])
    func packetsFromTheVIPAreDropped(firewall: Bool) {
        let sw = makeSwitch(firewall: firewall ? "firewall:\n  default: allow" : "")
        let spoofed = FrameBuilder.tcp4(dst: LB.b1, src: LB.client, from: LB.vip, to: LB.ipB1, sport: 40000, dport: 8080, flags: .syn)
        #expect(sw.send(spoofed, on: "c").isEmpty)
        #expect(sw.drops == ["invalid": 1])
        #expect(sw.trace([spoofed], on: "c")[0].contains { $0.contains("its source is a load balancer's VIP") })
    }

    /// A probe is never flooded: when L2 has forgotten the backend's port (its MAC aged out of
    /// the MAC table), the switch asks with a broadcast ARP request instead of a SYN whose nonce
    /// every port would see.
    @Test func probesAreNotFlooded() throws {
        let sw = makeSwitch()
        sw.clock.advance(by: .seconds(301))  // past mac_aging: the MAC table forgets b1 and b2
        let probes = probe(sw)
        #expect(probes.keys.sorted() == ["b1", "b2", "c", "t"])
        for (_, frames) in probes {
            #expect(frames.allSatisfy { fields($0)["arp.op"] == "1" }, "only ARP requests: \(frames.map { fields($0) })")
        }
    }

    /// No answer goes to a group address: a SYN from a broadcast MAC to an all-down service is
    /// dropped, not refused.
    /// No ICMP error about a datagram sent to a group address (RFC 1122 3.2.2), and ICMP errors
    /// are rate limited: 50 at once, then 1,000 a second; a refusal past the budget is a plain
    /// `no-service` drop.
    @Test func portUnreachablesAreForUnicastFramesAndRateLimited() {
        let udp = LoadBalancerTests().makeSwitch(LB.topology(proto: "udp", port: 53))
        udp.datapath.setDrained(balancer: 0, backend: 0, true)
        udp.datapath.setDrained(balancer: 0, backend: 1, true)
        let broadcast = FrameBuilder.udp4(dst: .broadcast, src: LB.client, from: LB.ipClient, to: LB.vip, sport: 40001, dport: 53)
        #expect(udp.send(broadcast, on: "c")["c"] == nil)
        #expect(udp.counters.refusedConnections == 0)
        var answered = 0
        for sport in UInt16(41000)..<41060 {
            let datagram = FrameBuilder.udp4(dst: LB.lbMAC, src: LB.client, from: LB.ipClient, to: LB.vip, sport: sport, dport: 53)
            if udp.send(datagram, on: "c")["c"] != nil { answered += 1 }
        }
        #expect(answered == 50, "the burst")
        udp.clock.advance(by: .milliseconds(10))  // 10 ms: 10 more
        answered = 0
        for sport in UInt16(42000)..<42020 {
            let datagram = FrameBuilder.udp4(dst: LB.lbMAC, src: LB.client, from: LB.ipClient, to: LB.vip, sport: sport, dport: 53)
            if udp.send(datagram, on: "c")["c"] != nil { answered += 1 }
        }
        #expect(answered == 10)
        #expect(udp.drops == ["no-service": 81])
    }

    @Test func refusalsGoOnlyToUnicastSources() {
        let sw = makeSwitch()
        sw.datapath.setBackendUp(balancer: 0, backend: 0, false, now: sw.clock.now)
        sw.datapath.setBackendUp(balancer: 0, backend: 1, false, now: sw.clock.now)
        let fromBroadcast = FrameBuilder.tcp4(dst: LB.lbMAC, src: .broadcast, from: LB.ipClient, to: LB.vip, sport: 50001, dport: 80, flags: .syn)
        #expect(sw.send(fromBroadcast, on: "c").isEmpty)
        #expect(sw.counters.refusedConnections == 0)
    }
}
