import Testing
import TapestryDatapath
import TapestryTestSupport
import TapestryWire

/// An IPv6 VIP through the in-memory switch: neighbor discovery for the VIP, NAT both ways with
/// the pseudo-header's change in every checksum, echo, held frames, refusals and health probes.
@Suite struct LoadBalancerIPv6Tests {
    typealias LB = LoadBalancerTests
    static let ipClient = IPv6Address("fd00:10::1")!
    static let ipB1 = IPv6Address("fd00:10::11")!
    static let ipB2 = IPv6Address("fd00:10::12")!
    static let vip = IPv6Address("fd00:10::100")!

    static func topology(proto: String = "tcp", port: Int = 80, backends: String = #"["[fd00:10::11]:8080", "[fd00:10::12]:8080"]"#, extra: String = "") -> String {
        """
        name: lb6
        networks: { lan: { vlan: 10 } }
        ports:
          c: { tap: tc, network: lan }
          b1: { tap: tb1, network: lan }
          b2: { tap: tb2, network: lan }
          t: { tap: tt, trunk: [lan] }
        load_balancers:
          web6:
            network: lan
            vip: fd00:10::100/64
            port: \(port)
            proto: \(proto)
            mac: 02:00:00:00:01:00
            backends: \(backends)
        \(extra)
        """
    }

    /// A switch whose backends and client have spoken (each solicited another host), so their
    /// MACs are known.
    func makeSwitch(_ yaml: String = topology()) -> EmbeddedSwitch {
        let sw = EmbeddedSwitch(yaml: yaml)
        sw.send(FrameBuilder.neighborSolicitation(src: LB.b1, from: Self.ipB1, target: Self.ipClient), on: "b1")
        sw.send(FrameBuilder.neighborSolicitation(src: LB.b2, from: Self.ipB2, target: Self.ipClient), on: "b2")
        sw.send(FrameBuilder.neighborSolicitation(src: LB.client, from: Self.ipClient, target: Self.ipB1), on: "c")
        return sw
    }

    func fields(_ frame: [UInt8]) -> [String: String] { LB().fields(frame) }

    func syn(_ sport: UInt16) -> [UInt8] {
        FrameBuilder.tcp6(dst: LB.lbMAC, src: LB.client, from: Self.ipClient, to: Self.vip, sport: sport, dport: 80, flags: .syn)
    }

    func valid(_ f: [String: String], _ name: String) -> Bool { f[name]?.hasSuffix("(valid)") == true }

    @Test func aSolicitationForTheVIPIsAnsweredWithTheBalancersMAC() throws {
        let sw = makeSwitch()
        let solicitation = FrameBuilder.neighborSolicitation(src: LB.client, from: Self.ipClient, target: Self.vip)
        let out = sw.send(solicitation, on: "c")
        #expect(out.keys.sorted() == ["c"], "answered out of the asking port, not flooded")
        let bytes = try #require(out["c"]?.first)
        let advert = fields(bytes)
        #expect(advert["eth.dst"] == "\(LB.client)" && advert["eth.src"] == "\(LB.lbMAC)")
        #expect(advert["ipv6.src"] == "fd00:10::100" && advert["ipv6.dst"] == "fd00:10::1" && advert["ipv6.hlim"] == "255")
        #expect(advert["icmpv6.type"] == "136" && advert["icmpv6.code"] == "0" && valid(advert, "icmpv6.checksum"))
        #expect(bytes.count == 86)
        #expect(bytes[58] == 0x60, "solicited and override")
        #expect(Array(bytes[62..<78]) == FrameBuilder.bytes(Self.vip), "the target is the VIP")
        #expect(Array(bytes[78..<86]) == [2, 1] + FrameBuilder.bytes(LB.lbMAC), "its link-layer address is the balancer's MAC")
        #expect(sw.counters.loadBalancerAnswers == 1)

        // On a trunk the answer keeps the VLAN tag.
        var tagged = solicitation
        tagged.insert(contentsOf: [0x81, 0x00, 0x00, 0x0A], at: 12)
        let trunk = fields(try #require(sw.send(tagged, on: "t")["t"]?.first))
        #expect(trunk["vlan.vid"] == "10" && trunk["icmpv6.type"] == "136" && valid(trunk, "icmpv6.checksum"))
    }

    /// Duplicate address detection (a solicitation from `::`) is answered to all nodes, override
    /// only (RFC 4861 7.2.4): the asker learns the address is taken.
    @Test func duplicateAddressDetectionForTheVIPIsAnsweredToAllNodes() throws {
        let sw = makeSwitch()
        let probe = FrameBuilder.neighborSolicitation(src: LB.client, from: IPv6Address(high: 0, low: 0), target: Self.vip)
        let bytes = try #require(sw.send(probe, on: "c")["c"]?.first)
        let advert = fields(bytes)
        #expect(advert["eth.dst"] == "33:33:00:00:00:01" && advert["ipv6.dst"] == "ff02::1")
        #expect(advert["icmpv6.type"] == "136" && valid(advert, "icmpv6.checksum"))
        #expect(bytes[58] == 0x20, "override, not solicited")
    }

    /// RFC 4861 7.1.1: a solicitation whose hop limit is not 255 crossed a router and is not
    /// answered (it goes on as any frame); nor is one from a group MAC.
    @Test func malformedSolicitationsAreNotAnswered() {
        let sw = makeSwitch()
        let routed = FrameBuilder.neighborSolicitation(src: LB.client, from: Self.ipClient, target: Self.vip, hopLimit: 64)
        #expect(sw.send(routed, on: "c")["c"] == nil)
        let fromGroup = FrameBuilder.neighborSolicitation(src: MACAddress(rawValue: 0x3333_0000_0001), from: Self.ipClient, target: Self.vip)
        #expect(sw.send(fromGroup, on: "c")["c"] == nil)
        #expect(sw.counters.loadBalancerAnswers == 0)
    }

    @Test func echoToTheVIPIsAnswered() throws {
        let sw = makeSwitch()
        let out = sw.send(FrameBuilder.ping6(dst: LB.lbMAC, src: LB.client, from: Self.ipClient, to: Self.vip), on: "c")
        let reply = fields(try #require(out["c"]?.first))
        #expect(out.count == 1)
        #expect(reply["icmpv6.type"] == "129" && reply["ipv6.src"] == "fd00:10::100" && reply["ipv6.dst"] == "fd00:10::1")
        #expect(reply["eth.src"] == "\(LB.lbMAC)" && valid(reply, "icmpv6.checksum"))
    }

    @Test func connectionsAlternateAndBothDirectionsAreRewrittenWithValidChecksums() throws {
        let sw = makeSwitch()
        var chosen: [String] = []
        for n in 0..<4 {
            let out = sw.send(syn(UInt16(50001 + n)), on: "c")
            let port = try #require(out.keys.first)
            #expect(out.count == 1)
            chosen.append(port)
            let f = fields(try #require(out[port]?.first))
            let (mac, ip) = port == "b1" ? (LB.b1, "fd00:10::11") : (LB.b2, "fd00:10::12")
            #expect(f["eth.dst"] == "\(mac)" && f["ipv6.dst"] == ip && f["tcp.dport"] == "8080")
            #expect(f["ipv6.src"] == "fd00:10::1" && f["tcp.sport"] == "\(50001 + n)", "the client is kept")
            #expect(valid(f, "tcp.checksum"), "\(f)")
        }
        #expect(chosen == ["b1", "b2", "b1", "b2"])
        let synAck = FrameBuilder.tcp6(
            dst: LB.client, src: LB.b2, from: Self.ipB2, to: Self.ipClient, sport: 8080, dport: 50002, flags: [.syn, .ack])
        let out = sw.send(synAck, on: "b2")
        #expect(out.keys.sorted() == ["c"])
        let reply = fields(try #require(out["c"]?.first))
        #expect(reply["eth.src"] == "\(LB.lbMAC)" && reply["ipv6.src"] == "fd00:10::100" && reply["tcp.sport"] == "80")
        #expect(reply["tcp.dport"] == "50002" && valid(reply, "tcp.checksum"))
        #expect(sw.counters.backendSelections == [[2, 2]])
    }

    @Test func udpThroughAnIPv6VIP() throws {
        let sw = makeSwitch(Self.topology(proto: "udp", port: 53, backends: #"["[fd00:10::11]:5353"]"#))
        let query = FrameBuilder.udp6(dst: LB.lbMAC, src: LB.client, from: Self.ipClient, to: Self.vip, sport: 40001, dport: 53)
        let sent = fields(try #require(sw.send(query, on: "c")["b1"]?.first))
        #expect(sent["ipv6.dst"] == "fd00:10::11" && sent["udp.dport"] == "5353" && valid(sent, "udp.checksum"))
        let answer = FrameBuilder.udp6(dst: LB.client, src: LB.b1, from: Self.ipB1, to: Self.ipClient, sport: 5353, dport: 40001)
        let reply = fields(try #require(sw.send(answer, on: "b1")["c"]?.first))
        #expect(reply["ipv6.src"] == "fd00:10::100" && reply["udp.sport"] == "53" && valid(reply, "udp.checksum"))
    }

    /// An unknown backend is solicited from the VIP (to its solicited-node group); the held SYN
    /// leaves with the backend's advertisement, which the switch consumes.
    @Test func anUnknownBackendIsSolicitedAndTheFirstFrameHeld() throws {
        let sw = EmbeddedSwitch(yaml: Self.topology())
        let out = sw.send(syn(50001), on: "c")
        #expect(Set(out.keys) == ["c", "b1", "b2", "t"], "the solicitation goes where the group's frames go: every port")
        let bytes = try #require(out["b1"]?.first)
        let solicitation = fields(bytes)
        #expect(solicitation["eth.dst"] == "33:33:ff:00:00:11" && solicitation["eth.src"] == "\(LB.lbMAC)")
        #expect(solicitation["ipv6.src"] == "fd00:10::100" && solicitation["ipv6.dst"] == "ff02::1:ff00:11")
        #expect(solicitation["ipv6.hlim"] == "255" && solicitation["icmpv6.type"] == "135" && valid(solicitation, "icmpv6.checksum"))
        #expect(Array(bytes[62..<78]) == FrameBuilder.bytes(Self.ipB1))
        #expect(Array(bytes[78..<86]) == [1, 1] + FrameBuilder.bytes(LB.lbMAC))
        #expect(sw.counters.heldWaiting == 1 && sw.drops.isEmpty)

        let advert = FrameBuilder.neighborAdvertisement(dst: LB.lbMAC, src: LB.b1, from: Self.ipB1, to: Self.vip, target: Self.ipB1)
        let released = sw.send(advert, on: "b1")
        #expect(released.keys.sorted() == ["b1"], "the held SYN goes to b1; the advertisement is the switch's")
        let sent = fields(try #require(released["b1"]?.first))
        #expect(sent["eth.dst"] == "\(LB.b1)" && sent["ipv6.dst"] == "fd00:10::11" && sent["tcp.sport"] == "50001" && valid(sent, "tcp.checksum"))
        #expect(sw.datapath.backendMAC(balancer: 0, backend: 0) == LB.b1)
        #expect(sw.counters.heldReleased == 1)
    }

    /// A client that claims a backend's address (in its source, or in an advertisement) does not
    /// move the backend: the MAC heard first stays.
    @Test func aForgedAdvertisementDoesNotRedirectABackend() throws {
        let sw = makeSwitch()
        let forger = MACAddress("02:00:00:00:66:66")!
        sw.send(FrameBuilder.neighborAdvertisement(dst: LB.lbMAC, src: forger, from: Self.ipB1, to: Self.vip, target: Self.ipB1), on: "c")
        sw.send(FrameBuilder.udp6(dst: LB.client, src: forger, from: Self.ipB1, to: Self.ipClient), on: "c")
        #expect(sw.datapath.backendMAC(balancer: 0, backend: 0) == LB.b1)
        #expect(sw.send(syn(50001), on: "c").keys.sorted() == ["b1"])
    }

    /// Every backend down: a TCP SYN is refused with a RST from the VIP, a UDP datagram with an
    /// ICMPv6 port unreachable that quotes it; both with valid checksums.
    @Test func allDownRefusals() throws {
        let sw = makeSwitch()
        sw.datapath.setBackendUp(balancer: 0, backend: 0, false, now: sw.clock.now)
        sw.datapath.setBackendUp(balancer: 0, backend: 1, false, now: sw.clock.now)
        let reset = fields(try #require(sw.send(syn(50001), on: "c")["c"]?.first))
        #expect(reset["ipv6.src"] == "fd00:10::100" && reset["ipv6.dst"] == "fd00:10::1")
        #expect(reset["tcp.sport"] == "80" && reset["tcp.flags"]?.hasSuffix("14") == true && valid(reset, "tcp.checksum"))
        #expect(sw.drops == ["no-service": 1])

        let udp = makeSwitch(Self.topology(proto: "udp", port: 53, backends: #"["[fd00:10::11]:5353"]"#))
        udp.datapath.setDrained(balancer: 0, backend: 0, true)
        let datagram = FrameBuilder.udp6(dst: LB.lbMAC, src: LB.client, from: Self.ipClient, to: Self.vip, sport: 40001, dport: 53)
        let bytes = try #require(udp.send(datagram, on: "c")["c"]?.first)
        let unreachable = fields(bytes)
        #expect(unreachable["icmpv6.type"] == "1" && unreachable["icmpv6.code"] == "4" && unreachable["ipv6.src"] == "fd00:10::100")
        #expect(valid(unreachable, "icmpv6.checksum"))
        #expect(Array(bytes[62...]) == Array(datagram[14...]), "quotes the whole datagram (it fits the minimum MTU)")
    }

    /// Health probes to an IPv6 backend: a TCP SYN from the VIP (its SYN-ACK answered with a
    /// RST), an ICMPv6 echo, and for `probe: arp` a unicast neighbor solicitation whose
    /// advertisement from the backend's own MAC is the answer.
    @Test func healthProbes() throws {
        func checks(_ probe: String) -> EmbeddedSwitch {
            makeSwitch(Self.topology(extra: "    health: { probe: \(probe), interval: 2, timeout: 1, rise: 2, fall: 2 }"))
        }
        func probe(_ sw: EmbeddedSwitch) -> [String: [[UInt8]]] { HealthCheckTests().probe(sw) }

        let tcp = checks("tcp")
        let syn = fields(try #require(probe(tcp)["b1"]?.first))
        #expect(syn["ipv6.src"] == "fd00:10::100" && syn["ipv6.dst"] == "fd00:10::11" && syn["tcp.dport"] == "8080")
        #expect(syn["tcp.flags"]?.hasSuffix("02") == true && valid(syn, "tcp.checksum"))
        let synAck = FrameBuilder.tcp6(
            dst: LB.lbMAC, src: LB.b1, from: Self.ipB1, to: Self.vip, sport: 8080, dport: UInt16(syn["tcp.sport"]!)!,
            flags: [.syn, .ack], seq: 7000, ack: UInt32(syn["tcp.seq"]!)! &+ 1)
        let out = tcp.send(synAck, on: "b1")
        let reset = fields(try #require(out["b1"]?.first))
        #expect(out.keys.sorted() == ["b1"])
        #expect(reset["tcp.flags"]?.hasSuffix("04") == true && reset["ipv6.src"] == "fd00:10::100" && valid(reset, "tcp.checksum"))
        #expect(tcp.drops.isEmpty)

        let icmp = checks("icmp")
        let request = fields(try #require(probe(icmp)["b1"]?.first))
        #expect(request["icmpv6.type"] == "128" && request["ipv6.src"] == "fd00:10::100" && valid(request, "icmpv6.checksum"))

        let nd = checks("arp")
        for round in 0..<3 {
            let probes = probe(nd)
            let bytes = try #require(probes["b1"]?.first)
            let asked = fields(bytes)
            #expect(asked["eth.dst"] == "\(LB.b1)" && asked["ipv6.dst"] == "fd00:10::11", "a known backend is asked by unicast")
            #expect(asked["icmpv6.type"] == "135" && valid(asked, "icmpv6.checksum"))
            // b1 answers every round; b2's answers come from a forger's MAC and do not count.
            let answer = FrameBuilder.neighborAdvertisement(dst: LB.lbMAC, src: LB.b1, from: Self.ipB1, to: Self.vip, target: Self.ipB1)
            #expect(nd.send(answer, on: "b1").isEmpty, "the advertisement is consumed (round \(round))")
            let forged = FrameBuilder.neighborAdvertisement(
                dst: LB.lbMAC, src: MACAddress("02:00:00:00:66:66")!, from: Self.ipB2, to: Self.vip, target: Self.ipB2)
            nd.send(forged, on: "c")
            nd.clock.advance(by: .seconds(2))
        }
        probe(nd)
        #expect(nd.datapath.backendHealth(balancer: 0, backend: 0).up)
        #expect(!nd.datapath.backendHealth(balancer: 0, backend: 1).up, "b2's forged answers did not keep it up")
    }

    /// A host advertising the VIP (a backend answering for it, or an unsolicited claim to all
    /// nodes) is dropped `invalid`: were it flooded, clients would send the service to that host.
    @Test func anAdvertisementClaimingTheVIPIsDropped() {
        let sw = makeSwitch()
        let claim = FrameBuilder.neighborAdvertisement(
            dst: MACAddress(rawValue: 0x3333_0000_0001), src: LB.b1, from: Self.ipB1, to: IPv6Address("ff02::1")!,
            target: Self.vip, flags: 0x20)
        #expect(sw.send(claim, on: "b1").isEmpty)
        #expect(sw.drops == ["invalid": 1])
        #expect(sw.trace([claim], on: "b1")[0].contains { $0.contains("it claims a load balancer's VIP") })
    }

    /// Malformed neighbor discovery sent to the VIP is `no-service`, not forwarded: a bad
    /// checksum, a hop limit other than 255.
    @Test func malformedNeighborDiscoveryToTheVIPIsDropped() {
        let sw = makeSwitch()
        var corrupt = FrameBuilder.neighborSolicitation(src: LB.client, from: Self.ipClient, target: Self.vip, dst: LB.lbMAC, to: Self.vip)
        corrupt[57] ^= 0x01  // the ICMPv6 checksum's low byte
        #expect(sw.send(corrupt, on: "c").isEmpty)
        let routed = FrameBuilder.neighborSolicitation(
            src: LB.client, from: Self.ipClient, target: Self.vip, dst: LB.lbMAC, to: Self.vip, hopLimit: 64)
        #expect(sw.send(routed, on: "c").isEmpty)
        #expect(sw.drops == ["no-service": 2] && sw.counters.loadBalancerAnswers == 0)
        // The same solicitation, well formed and unicast to the VIP, is answered.
        let unicast = FrameBuilder.neighborSolicitation(src: LB.client, from: Self.ipClient, target: Self.vip, dst: LB.lbMAC, to: Self.vip)
        #expect(sw.send(unicast, on: "c").keys.sorted() == ["c"])
    }

    /// The target must be inside the IPv6 payload: a solicitation whose payload length covers
    /// only the ICMPv6 header (its target sits in what would be padding) is not answered.
    @Test func aTargetOutsideThePayloadIsNotAnswered() {
        let sw = makeSwitch()
        var short = FrameBuilder.neighborSolicitation(src: LB.client, from: Self.ipClient, target: Self.vip)
        short[18] = 0
        short[19] = 8  // payload length 8
        // Its checksum, over those 8 bytes, made valid so only the length is wrong.
        short[56] = 0
        short[57] = 0
        var sum = InternetChecksum.ipv6PseudoHeaderSum(
            source: Self.ipClient, destination: IPv6Address("ff02::1:ff00:100")!, proto: IPProtocol.icmpv6, length: 8)
        for index in stride(from: 54, to: 62, by: 2) { sum += UInt64(short[index]) << 8 | UInt64(short[index + 1]) }
        let checksum = InternetChecksum.fold(sum)
        short[56] = UInt8(checksum >> 8)
        short[57] = UInt8(checksum & 0xFF)
        #expect(sw.send(short, on: "c")["c"] == nil)
        #expect(sw.counters.loadBalancerAnswers == 0)
    }

    /// Only the switch speaks for an IPv6 VIP too: a host's packet from the VIP's address is
    /// dropped `invalid`.
    @Test func packetsFromTheIPv6VIPAreDropped() {
        let sw = makeSwitch()
        let spoofed = FrameBuilder.tcp6(dst: LB.b1, src: LB.client, from: Self.vip, to: Self.ipB1, sport: 40000, dport: 8080)
        #expect(sw.send(spoofed, on: "c").isEmpty)
        #expect(sw.drops == ["invalid": 1])
    }
}
