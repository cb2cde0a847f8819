import Testing
import TapestryDatapath
import TapestryTestSupport
import TapestryWire

/// The contract's load-balancer clauses through the in-memory switch.
@Suite struct LoadBalancerTests {
    static let client = MACAddress("02:00:00:00:0a:01")!
    static let b1 = MACAddress("02:00:00:00:0b:01")!
    static let b2 = MACAddress("02:00:00:00:0b:02")!
    static let lbMAC = MACAddress("02:00:00:00:01:00")!
    static let ipClient = IPv4Address("10.0.10.1")!
    static let ipB1 = IPv4Address("10.0.10.11")!
    static let ipB2 = IPv4Address("10.0.10.12")!
    static let vip = IPv4Address("10.0.10.100")!

    static func topology(proto: String = "tcp", port: Int = 80, backends: String = "[10.0.10.11:8080, 10.0.10.12:8080]", firewall: String = "") -> String {
        """
        name: lb
        networks: { lan: { vlan: 10 } }
        ports:
          c: { tap: tc, network: lan }
          b1: { tap: tb1, network: lan }
          b2: { tap: tb2, network: lan }
          t: { tap: tt, trunk: [lan] }
        \(firewall)
        load_balancers:
          web:
            network: lan
            vip: 10.0.10.100
            port: \(port)
            proto: \(proto)
            mac: 02:00:00:00:01:00
            backends: \(backends)
        """
    }

    /// A switch whose backends have announced themselves (so their MACs are known).
    func makeSwitch(_ yaml: String = topology()) -> EmbeddedSwitch {
        let sw = EmbeddedSwitch(yaml: yaml)
        sw.send(FrameBuilder.arpRequest(src: Self.b1, senderIP: Self.ipB1, targetIP: Self.ipClient), on: "b1")
        sw.send(FrameBuilder.arpRequest(src: Self.b2, senderIP: Self.ipB2, targetIP: Self.ipClient), on: "b2")
        sw.send(FrameBuilder.arpRequest(src: Self.client, senderIP: Self.ipClient, targetIP: Self.ipB1), on: "c")
        return sw
    }

    func fields(_ frame: [UInt8]) -> [String: String] {
        Dictionary(FrameFields(frame).fields.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    func syn(_ sport: UInt16) -> [UInt8] {
        FrameBuilder.tcp4(dst: Self.lbMAC, src: Self.client, from: Self.ipClient, to: Self.vip, sport: sport, dport: 80, flags: .syn)
    }

    @Test func answersARPForTheVIPOnAccessAndTrunkPorts() throws {
        let sw = makeSwitch()
        let out = sw.send(FrameBuilder.arpRequest(src: Self.client, senderIP: Self.ipClient, targetIP: Self.vip), on: "c")
        #expect(Set(out.keys) == ["c"], "answered out of the asking port, not flooded")
        let reply = fields(try #require(out["c"]?.first))
        #expect(reply["eth.dst"] == "\(Self.client)" && reply["eth.src"] == "\(Self.lbMAC)")
        #expect(reply["arp.op"] == "2" && reply["arp.sha"] == "\(Self.lbMAC)" && reply["arp.spa"] == "10.0.10.100")
        #expect(reply["arp.tha"] == "\(Self.client)" && reply["arp.tpa"] == "10.0.10.1")
        let tagged = sw.send(
            FrameBuilder.arpRequest(src: Self.client, senderIP: Self.ipClient, targetIP: Self.vip, tags: [.dot1q(10, pcp: 3)]), on: "t")
        let trunkReply = fields(try #require(tagged["t"]?.first))
        #expect(trunkReply["vlan.vid"] == "10" && trunkReply["vlan.pcp"] == "3" && trunkReply["arp.op"] == "2")
        #expect(sw.datapath.macTable.entries(now: sw.clock.now).allSatisfy { $0.mac != Self.lbMAC }, "never learns its own MAC")
    }

    /// A forged ARP reply claiming a backend's address does not move the backend: its connections
    /// and new ones keep going to the MAC that was heard first, until that one is silent for
    /// `mac_aging`.
    @Test func aForgedARPDoesNotRedirectABackend() throws {
        let sw = makeSwitch()
        let forger = MACAddress("02:00:00:00:66:66")!
        #expect(fields(try #require(sw.send(syn(41000), on: "c")["b1"]?.first))["eth.dst"] == "\(Self.b1)")
        var forged = FrameBuilder.arpRequest(src: forger, senderIP: Self.ipB1, targetIP: Self.ipClient)
        forged[21] = 2  // a reply
        sw.send(forged, on: "c")
        sw.send(FrameBuilder.arpRequest(src: .zero, senderIP: Self.ipB1, targetIP: Self.ipClient), on: "c")
        #expect(sw.datapath.backendMAC(balancer: 0, backend: 0) == Self.b1)
        let ack = FrameBuilder.tcp4(dst: Self.lbMAC, src: Self.client, from: Self.ipClient, to: Self.vip, sport: 41000, dport: 80, flags: .ack)
        #expect(fields(try #require(sw.send(ack, on: "c")["b1"]?.first))["eth.dst"] == "\(Self.b1)")
        sw.send(syn(41001), on: "c")  // b2's turn
        #expect(fields(try #require(sw.send(syn(41002), on: "c")["b1"]?.first))["eth.dst"] == "\(Self.b1)", "new connections too")
        // b1 silent for mac_aging (300 s): a new MAC for its address is believed.
        sw.clock.advance(by: .seconds(301))
        sw.send(forged, on: "c")
        #expect(sw.datapath.backendMAC(balancer: 0, backend: 0) == forger)
    }

    /// A host answering ARP for the VIP (a backend that has the VIP configured, a gratuitous
    /// claim) is dropped `invalid`, so clients keep the switch's answer.
    @Test func anARPClaimingTheVIPIsDropped() {
        let sw = makeSwitch()
        let claim = FrameBuilder.arp(dst: Self.client, src: Self.b1, operation: 2, senderIP: Self.vip, targetMAC: Self.client, targetIP: Self.ipClient)
        #expect(sw.send(claim, on: "b1").isEmpty)
        let gratuitous = FrameBuilder.arpRequest(src: Self.b2, senderIP: Self.vip, targetIP: Self.vip)
        #expect(sw.send(gratuitous, on: "b2").isEmpty)
        #expect(sw.drops == ["invalid": 2])
    }

    @Test func answersPingToTheVIP() throws {
        let sw = makeSwitch()
        let out = sw.send(FrameBuilder.ping4(dst: Self.lbMAC, src: Self.client, from: Self.ipClient, to: Self.vip, identifier: 5), on: "c")
        let reply = fields(try #require(out["c"]?.first))
        #expect(reply["icmp.type"] == "0" && reply["ipv4.src"] == "10.0.10.100" && reply["ipv4.dst"] == "10.0.10.1")
        #expect(reply["icmp.checksum"]?.hasSuffix("(valid)") == true && reply["ipv4.checksum"]?.hasSuffix("(valid)") == true)
    }

    /// Behind a firewall the echo request opens a connection entry; the switch's own answer never
    /// passes connection tracking, so the balancer records it as the reply: no UNREPLIED entry
    /// stays behind, and a second ping of the same identifier finds the entry answered.
    @Test func theVIPsEchoAnswerLeavesTheConnectionAnswered() throws {
        let sw = makeSwitch(Self.topology(firewall: "firewall:\n  default: drop\n  rules:\n    - { action: allow, proto: icmp }"))
        let ping = FrameBuilder.ping4(dst: Self.lbMAC, src: Self.client, from: Self.ipClient, to: Self.vip, identifier: 7)
        #expect(sw.send(ping, on: "c").keys.sorted() == ["c"])
        let table = try #require(sw.datapath.connectionTable)
        let entries = table.liveEntries(now: sw.clock.now.nanoseconds)
        #expect(entries.count == 1)
        #expect(entries.first?.replied == true && entries.first?.packetsReply == 1 && entries.first?.kind == .icmp)
        #expect(sw.send(ping, on: "c").keys.sorted() == ["c"])
        #expect(table.liveEntries(now: sw.clock.now.nanoseconds).first?.packetsReply == 2)
        #expect(sw.counters.connectionsCreated == 1)
    }

    /// Found by the datapath fuzzer (Fuzz/Regressions/datapath/vip-echo-of-zeros-checksum): an
    /// echo request of zeros (identifier, sequence and data 0) got a reply checksum of 0x0000 from
    /// the incremental update; the right one is 0xFFFF.
    @Test func pingOfZerosGetsAValidReply() throws {
        let sw = makeSwitch()
        let request = FrameBuilder.frame(
            dst: Self.lbMAC, src: Self.client, FrameBuilder.ipv4(src: Self.ipClient, dst: Self.vip),
            FrameBuilder.icmp(type: 8, identifier: 0, sequence: 0), payload: [UInt8](repeating: 0, count: 18))
        let reply = fields(try #require(sw.send(request, on: "c")["c"]?.first))
        #expect(reply["icmp.type"] == "0")
        #expect(reply["icmp.checksum"]?.hasSuffix("(valid)") == true, "\(reply["icmp.checksum"] ?? "none")")
    }

    @Test func sixConnectionsAlternateAndStayOnTheirBackend() throws {
        let sw = makeSwitch()
        var chosen: [String] = []
        for n in 0..<6 {
            let out = sw.send(syn(UInt16(50001 + n)), on: "c")
            let port = try #require(out.keys.first)
            #expect(out.count == 1)
            let frame = fields(try #require(out[port]?.first))
            chosen.append(port)
            let (mac, ip) = port == "b1" ? (Self.b1, "10.0.10.11") : (Self.b2, "10.0.10.12")
            #expect(frame["eth.dst"] == "\(mac)" && frame["ipv4.dst"] == ip && frame["tcp.dport"] == "8080")
            #expect(frame["eth.src"] == "\(Self.client)" && frame["ipv4.src"] == "10.0.10.1" && frame["tcp.sport"] == "\(50001 + n)", "client kept")
            #expect(frame["ipv4.checksum"]?.hasSuffix("(valid)") == true && frame["tcp.checksum"]?.hasSuffix("(valid)") == true)
        }
        #expect(chosen == ["b1", "b2", "b1", "b2", "b1", "b2"], "round robin in list order, starting with the first")
        // Later packets of connection 1 (and its retransmitted SYN) stay on b1.
        let ack = FrameBuilder.tcp4(dst: Self.lbMAC, src: Self.client, from: Self.ipClient, to: Self.vip, sport: 50001, dport: 80, flags: .ack)
        #expect(sw.send(syn(50001), on: "c").keys.sorted() == ["b1"])
        #expect(sw.send(ack, on: "c").keys.sorted() == ["b1"])
        #expect(sw.counters.backendSelections == [[3, 3]])
    }

    @Test func repliesLookLikeTheyCameFromTheVIP() throws {
        let sw = makeSwitch()
        _ = sw.send(syn(50001), on: "c")
        let synAck = FrameBuilder.tcp4(dst: Self.client, src: Self.b1, from: Self.ipB1, to: Self.ipClient, sport: 8080, dport: 50001, flags: [.syn, .ack])
        let out = sw.send(synAck, on: "b1")
        let reply = fields(try #require(out["c"]?.first))
        #expect(out.count == 1)
        #expect(reply["eth.src"] == "\(Self.lbMAC)" && reply["ipv4.src"] == "10.0.10.100" && reply["tcp.sport"] == "80")
        #expect(reply["eth.dst"] == "\(Self.client)" && reply["tcp.dport"] == "50001")
        #expect(reply["ipv4.checksum"]?.hasSuffix("(valid)") == true && reply["tcp.checksum"]?.hasSuffix("(valid)") == true)
    }

    @Test func udpVariant() throws {
        let sw = makeSwitch(Self.topology(proto: "udp", port: 53, backends: "[10.0.10.11:5353, 10.0.10.12:5353]"))
        var chosen: [String] = []
        for n in 0..<4 {
            let query = FrameBuilder.udp4(dst: Self.lbMAC, src: Self.client, from: Self.ipClient, to: Self.vip, sport: UInt16(40000 + n), dport: 53)
            let out = sw.send(query, on: "c")
            chosen.append(try #require(out.keys.first))
            #expect(fields(out.values.first![0])["udp.checksum"]?.hasSuffix("(valid)") == true)
        }
        #expect(chosen == ["b1", "b2", "b1", "b2"])
        let answer = FrameBuilder.udp4(dst: Self.client, src: Self.b2, from: Self.ipB2, to: Self.ipClient, sport: 5353, dport: 40001)
        let reply = fields(try #require(sw.send(answer, on: "b2")["c"]?.first))
        #expect(reply["ipv4.src"] == "10.0.10.100" && reply["udp.sport"] == "53" && reply["udp.checksum"]?.hasSuffix("(valid)") == true)
    }

    @Test func weightsInterleaveSmoothly() {
        var scheduler = WeightedRoundRobin(weights: [3, 1])
        #expect((0..<8).map { _ in scheduler.next()! } == [0, 0, 1, 0, 0, 0, 1, 0])
        var three = WeightedRoundRobin(weights: [5, 1, 1])
        #expect((0..<7).map { _ in three.next()! } == [0, 0, 1, 0, 2, 0, 0], "nginx's example: a a b a c a a")
        let sw = makeSwitch(Self.topology(backends: "[{ address: \"10.0.10.11:8080\", weight: 3 }, 10.0.10.12:8080]"))
        let chosen = (0..<8).map { sw.send(syn(UInt16(51000 + $0)), on: "c").keys.first ?? "?" }
        #expect(chosen == ["b1", "b1", "b2", "b1", "b1", "b1", "b2", "b1"])
    }

    @Test func drainedBackendsKeepTheirConnections() {
        let sw = makeSwitch()
        #expect(sw.send(syn(50001), on: "c").keys.sorted() == ["b1"])
        sw.datapath.setDrained(balancer: 0, backend: 0, true)
        #expect(sw.send(syn(50002), on: "c").keys.sorted() == ["b2"])
        #expect(sw.send(syn(50003), on: "c").keys.sorted() == ["b2"], "b1 takes no new connections")
        #expect(sw.send(syn(50001), on: "c").keys.sorted() == ["b1"], "its existing connection stays")
    }

    /// `trace` says which backend and why: round robin, skipping drained ones, or the
    /// connection's own; and how a connection to a fully drained service is refused.
    @Test func traceSaysWhichBackendAndWhy() {
        let sw = makeSwitch()
        sw.datapath.setDrained(balancer: 0, backend: 0, true)
        let lines = sw.trace([syn(50001), syn(50001)], on: "c")
        #expect(lines[0].contains("  load-balancer web: to backend 10.0.10.12:8080 (new connection, next in round robin; 1 drained or down skipped); destination rewritten"), "\(lines[0])")
        #expect(lines[1].contains("  load-balancer web: to backend 10.0.10.12:8080 (the connection's backend); destination rewritten"), "\(lines[1])")
        #expect(lines[0].contains("  firewall      connection #0 (original direction): none -> SYN_SENT; new, tracked for the load balancer (no firewall section)"), "\(lines[0])")
        sw.datapath.setDrained(balancer: 0, backend: 1, true)
        let refused = sw.trace([syn(50002)], on: "c")
        #expect(refused[0].contains("  load-balancer every backend drained or down: refused with a TCP RST from the VIP, out of the ingress port (counted no-service)"), "\(refused[0])")
        #expect(refused[0].last == "  egress        out c (untagged)", "the RST goes back to the client")
        _ = sw.drainAll()
    }

    /// `affinity`: a client's new connections go to its last backend while that was recent and
    /// the backend may take connections; other clients keep the round robin; a drained backend
    /// is not reused, and after `affinity` seconds the client is balanced again.
    @Test func affinityKeepsAClientOnItsBackend() throws {
        let sw = makeSwitch(Self.topology() + "\n    affinity: 60")
        let other = IPv4Address("10.0.10.2")!
        let otherMAC = MACAddress("02:00:00:00:0a:02")!
        func connect(_ sport: UInt16, from ip: IPv4Address = Self.ipClient, mac: MACAddress = Self.client) -> [String] {
            sw.send(FrameBuilder.tcp4(dst: Self.lbMAC, src: mac, from: ip, to: Self.vip, sport: sport, dport: 80, flags: .syn), on: "c").keys.sorted()
        }
        #expect((UInt16(50001)...50004).map { connect($0) } == Array(repeating: ["b1"], count: 4), "sticks to b1")
        #expect(connect(50005, from: other, mac: otherMAC) == ["b2"], "another client: the round robin goes on")
        let lines = sw.trace([FrameBuilder.tcp4(dst: Self.lbMAC, src: Self.client, from: Self.ipClient, to: Self.vip, sport: 50006, dport: 80, flags: .syn)], on: "c")
        #expect(lines[0].contains("  load-balancer web: to backend 10.0.10.11:8080 (new connection, the client's last backend (affinity)); destination rewritten"), "\(lines[0])")
        _ = sw.drainAll()
        sw.datapath.setDrained(balancer: 0, backend: 0, true)
        #expect(connect(50007) == ["b2"], "b1 drained: not reused")
        sw.datapath.setDrained(balancer: 0, backend: 0, false)
        #expect(connect(50008) == ["b2"], "now b2 is the client's last backend")
        sw.clock.advance(by: .seconds(61))
        #expect(connect(50009) == ["b1"], "affinity ran out: the round robin's next, not b2")
        #expect(connect(50010) == ["b1"], "and the client sticks to that one")
    }

    @Test func unknownBackendMACIsAskedForFromTheVIPAndTheFrameHeld() throws {
        let sw = EmbeddedSwitch(yaml: Self.topology())
        let out = sw.send(syn(50001), on: "c")
        #expect(Set(out.keys) == ["c", "b1", "b2", "t"], "the ARP request is flooded to every port, the client's included")
        let request = fields(try #require(out["b1"]?.first))
        #expect(request["eth.dst"] == "ff:ff:ff:ff:ff:ff" && request["eth.src"] == "\(Self.lbMAC)")
        #expect(request["arp.op"] == "1" && request["arp.spa"] == "10.0.10.100" && request["arp.tpa"] == "10.0.10.11")
        #expect(out["b1"]![0].count == 60)
        #expect(fields(out["t"]![0])["vlan.vid"] == "10")
        #expect(sw.counters.backendUnresolved == 1 && sw.counters.heldWaiting == 1)
        #expect(sw.drops.isEmpty, "held, not dropped")
        // b1 answers the VIP: the answer is the switch's, and the held SYN leaves with it.
        let answer = FrameBuilder.arp(
            dst: Self.lbMAC, src: Self.b1, operation: 2, senderIP: Self.ipB1, targetMAC: Self.lbMAC, targetIP: Self.vip)
        let released = sw.send(answer, on: "b1")
        #expect(released.keys.sorted() == ["b1"], "the held SYN goes to b1 only; the ARP reply is not forwarded")
        let sent = fields(try #require(released["b1"]?.first))
        #expect(sent["eth.dst"] == "\(Self.b1)" && sent["ipv4.dst"] == "10.0.10.11" && sent["tcp.dport"] == "8080")
        #expect(sent["tcp.checksum"]?.hasSuffix("(valid)") == true && sent["ipv4.checksum"]?.hasSuffix("(valid)") == true)
        #expect(sw.datapath.backendMAC(balancer: 0, backend: 0) == Self.b1)
        #expect(sw.counters.heldReleased == 1 && sw.counters.heldWaiting == 0)
        #expect(sw.send(syn(50001), on: "c").keys.sorted() == ["b1"], "a retransmitted SYN goes straight to b1")
    }

    /// Frames held for one backend leave in the order they came, each with its own rewrite, and
    /// the switch asks again only once a second while they wait.
    @Test func heldFramesLeaveInArrivalOrder() throws {
        let sw = EmbeddedSwitch(yaml: Self.topology(backends: "[10.0.10.11:8080]"))
        var asked = 0
        for sport in UInt16(50001)...50005 {
            let out = sw.send(syn(sport), on: "c")
            if out["b1"]?.first.map({ fields($0)["arp.op"] == "1" }) == true { asked += 1 }
            sw.clock.advance(by: .milliseconds(100))
        }
        #expect(asked == 1, "one ARP request for five frames within a second")
        sw.clock.advance(by: .milliseconds(600))
        #expect(fields(try #require(sw.send(syn(50006), on: "c")["b1"]?.first))["arp.op"] == "1", "asked again after a second")
        let answer = FrameBuilder.arp(
            dst: Self.lbMAC, src: Self.b1, operation: 2, senderIP: Self.ipB1, targetMAC: Self.lbMAC, targetIP: Self.vip)
        let released = try #require(sw.send(answer, on: "b1")["b1"])
        #expect(released.map { fields($0)["tcp.sport"] } == ["50001", "50002", "50003", "50004", "50005", "50006"])
        #expect(sw.counters.heldReleased == 6)
    }

    /// At most 16 frames wait per backend (the 17th is dropped `no-service`), and frames that
    /// waited 3 s without an answer are dropped `no-service` too, counted on their ingress port.
    @Test func heldFramesAreBoundedAndExpire() {
        let sw = EmbeddedSwitch(yaml: Self.topology(backends: "[10.0.10.11:8080]"))
        for sport in UInt16(50001)...50017 { sw.send(syn(sport), on: "c") }
        #expect(sw.counters.heldWaiting == 16)
        #expect(sw.drops == ["no-service": 1])
        let dropped = sw.trace([syn(50018)], on: "c")
        #expect(dropped[0].last?.contains("dropped (no-service): the backend's MAC is unknown and 16 frames already wait for it") == true, "\(dropped[0])")
        sw.clock.advance(by: .seconds(3))
        sw.send(FrameBuilder.udp4(dst: Self.client, src: Self.b2, from: Self.ipB2, to: Self.ipClient), on: "b2")
        #expect(sw.counters.heldWaiting == 0 && sw.counters.heldExpired == 16)
        #expect(sw.drops == ["no-service": 18])
        #expect(sw.counters.ports[0].drops[DropReason.noService.index] == 18, "counted on the client's port")
    }

    /// A live switch asks for every backend's MAC when it starts (`askForBackendMACs`), so the
    /// first connection is not held at all once the backends answered.
    @Test func askingForBackendMACsAtStart() throws {
        let sw = EmbeddedSwitch(yaml: Self.topology())
        var requests: [String: [[UInt8]]] = [:]
        sw.core.askForBackendMACs(now: sw.clock.now) { port, queues in
            for index in 0..<queues.count(port) { requests[sw.core.portNames[Int(port)], default: []].append(Array(queues.frame(port, index))) }
        }
        #expect(requests.keys.sorted() == ["b1", "b2", "c", "t"])
        #expect(requests["c"]?.map { fields($0)["arp.tpa"] } == ["10.0.10.11", "10.0.10.12"])
        #expect(requests["t"]?.allSatisfy { fields($0)["vlan.vid"] == "10" && fields($0)["arp.spa"] == "10.0.10.100" } == true)
        for (mac, ip, port) in [(Self.b1, Self.ipB1, "b1"), (Self.b2, Self.ipB2, "b2")] {
            sw.send(FrameBuilder.arp(dst: Self.lbMAC, src: mac, operation: 2, senderIP: ip, targetMAC: Self.lbMAC, targetIP: Self.vip), on: port)
        }
        #expect(sw.send(syn(50001), on: "c").keys.sorted() == ["b1"])
        #expect(sw.counters.backendUnresolved == 0)
        var again = 0
        sw.core.askForBackendMACs(now: sw.clock.now) { _, queues in again += queues.activeCount }
        #expect(again == 0, "nothing to ask once every backend is known")
    }

    @Test func otherPortsAndStrayPacketsToTheVIP() {
        let sw = makeSwitch()
        #expect(sw.send(FrameBuilder.tcp4(dst: Self.lbMAC, src: Self.client, from: Self.ipClient, to: Self.vip, dport: 443), on: "c").isEmpty)
        #expect(sw.send(FrameBuilder.udp4(dst: Self.lbMAC, src: Self.client, from: Self.ipClient, to: Self.vip, dport: 80), on: "c").isEmpty)
        #expect(sw.send(FrameBuilder.tcp4(dst: Self.lbMAC, src: Self.client, from: Self.ipClient, to: Self.vip, sport: 1, dport: 80, flags: .ack), on: "c").isEmpty)
        #expect(sw.drops == ["no-service": 2, "invalid": 1])
        // Traffic not for the VIP is untouched and untracked.
        #expect(sw.send(FrameBuilder.udp4(dst: Self.b1, src: Self.client, from: Self.ipClient, to: Self.ipB1), on: "c").keys.sorted() == ["b1"])
        #expect(sw.counters.connections == 0)
    }

    /// Rules are matched on the packet as the client sent it (to the VIP), so a drop rule for the
    /// backends' own addresses does not touch balanced traffic, whichever comes first.
    @Test(arguments: [true, false])
    func firewallRuleOrderDoesNotMatter(allowFirst: Bool) {
        let allow = "    - { action: allow, proto: tcp, dst: 10.0.10.100, dport: 80 }"
        let drop = "    - { action: drop, dst: 10.0.10.0/28 }"
        let rules = allowFirst ? [allow, drop] : [drop, allow]
        let sw = makeSwitch(Self.topology(firewall: "firewall:\n  default: drop\n  rules:\n" + rules.joined(separator: "\n")))
        #expect(sw.send(syn(50001), on: "c").keys.sorted() == ["b1"])
        let synAck = FrameBuilder.tcp4(dst: Self.client, src: Self.b1, from: Self.ipB1, to: Self.ipClient, sport: 8080, dport: 50001, flags: [.syn, .ack])
        #expect(sw.send(synAck, on: "b1").keys.sorted() == ["c"])
        #expect(sw.send(FrameBuilder.tcp4(dst: Self.b1, src: Self.client, from: Self.ipClient, to: Self.ipB1, dport: 8080), on: "c").isEmpty)
        #expect(sw.drops == ["firewall": 1])
    }

    @Test func worksBehindTheFirewall() throws {
        let firewall = """
            firewall:
              default: drop
              rules:
                - { action: allow, proto: tcp, dst: 10.0.10.100, dport: 80 }
            """
        let sw = makeSwitch(Self.topology(firewall: firewall))
        #expect(sw.send(syn(50001), on: "c").keys.sorted() == ["b1"])
        let synAck = FrameBuilder.tcp4(dst: Self.client, src: Self.b1, from: Self.ipB1, to: Self.ipClient, sport: 8080, dport: 50001, flags: [.syn, .ack])
        let reply = fields(try #require(sw.send(synAck, on: "b1")["c"]?.first))
        #expect(reply["ipv4.src"] == "10.0.10.100", "the backend's reply passed the firewall and was rewritten")
        let ack = FrameBuilder.tcp4(dst: Self.lbMAC, src: Self.client, from: Self.ipClient, to: Self.vip, sport: 50001, dport: 80, flags: .ack)
        #expect(sw.send(ack, on: "c").keys.sorted() == ["b1"])
        #expect(sw.send(FrameBuilder.tcp4(dst: Self.b1, src: Self.client, from: Self.ipClient, to: Self.ipB1, dport: 8080), on: "c").isEmpty, "direct to a backend: not allowed")
        #expect(sw.drops == ["firewall": 1])
        #expect(sw.datapath.connectionTable!.liveEntries(now: sw.clock.now.nanoseconds).first?.tcpState == .established)
    }
}
