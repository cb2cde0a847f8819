import Testing
import TapestryDatapath
import TapestryTestSupport
import TapestryTopology
import TapestryWire

/// Inputs an attacker chooses: each once crashed, hung or fooled the switch, or could have.
@Suite struct HostileInputTests {
    static let c = MACAddress("02:00:00:00:01:01")!
    static let s = MACAddress("02:00:00:00:01:02")!
    static let ipC = IPv4Address("10.0.1.1")!
    static let ipS = IPv4Address("10.0.1.2")!

    static let firewalled = """
        name: fw
        networks: { lan: { vlan: 10 } }
        ports:
          c: { tap: tc, trunk: [lan], native: lan }
          s: { tap: ts, network: lan }
        firewall:
          default: drop
          rules:
            - { action: allow, proto: tcp, dport: 80 }
        """

    /// Runs one frame with a virtio-net header through a datapath; the verdict and what left.
    func run(_ frame: [UInt8], offload: VirtioNetHeader, yaml: String = firewalled) -> (drops: [DropReason: UInt64], out: Int) {
        let sw = EmbeddedSwitch(yaml: yaml)
        let datapath = sw.datapath
        let batch = datapath.makeBatch()
        batch.ingressPort = 0
        _ = frame.withUnsafeBytes { batch.append($0) }
        batch.setOffload(0, offload)
        datapath.process(batch, now: Timestamp(seconds: 1))
        let out = (0..<datapath.transmitQueues.activeCount).reduce(0) {
            $0 + datapath.transmitQueues.count(datapath.transmitQueues.activePort($1))
        }
        datapath.transmitQueues.removeAll()
        return (datapath.counters.drops, out)
    }

    /// A partial checksum the guest points at the destination port (or anywhere but the L4
    /// checksum) would be written after the firewall allowed port 80: refused at ingress.
    @Test func offloadOffsetsMustBeTheFramesOwnChecksumField() {
        let syn = FrameBuilder.tcp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, sport: 40000, dport: 80)
        var honest = VirtioNetHeader()
        honest.flags = VirtioNetHeader.flagNeedsChecksum
        honest.checksumStart = 34
        honest.checksumOffset = 16
        #expect(run(syn, offload: honest).out == 1)
        var atThePort = honest
        atThePort.checksumOffset = 2
        #expect(run(syn, offload: atThePort).drops == [.invalid: 1])
        var atTheAddress = honest
        atTheAddress.checksumStart = 30
        atTheAddress.checksumOffset = 0
        #expect(run(syn, offload: atTheAddress).drops == [.invalid: 1])
        var wrongGSO = VirtioNetHeader()
        wrongGSO.gsoType = VirtioNetHeader.gsoTCPv6
        wrongGSO.gsoSize = 1448
        #expect(run(syn, offload: wrongGSO).drops == [.invalid: 1], "an IPv4 frame cannot be TCPv6 GSO")
        let udp = FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS)
        var tcpOffsetOnUDP = honest
        tcpOffsetOnUDP.checksumOffset = 16
        #expect(run(udp, offload: tcpOffsetOnUDP).drops == [.invalid: 1])
    }

    /// ICMPv6 neighbour discovery passes untracked, but only inside IPv6: protocol 58 in an IPv4
    /// packet is just another protocol, which the rules refuse here.
    @Test func icmpv6InsideIPv4IsNotNeighbourDiscovery() {
        // A neighbour solicitation's bytes (type 135, then zeros) under IPv4 protocol 58.
        let solicitation: [UInt8] = [135, 0, 0x78, 0xFF] + [UInt8](repeating: 0, count: 20)
        let frame = FrameBuilder.frame(
            dst: Self.s, src: Self.c, FrameBuilder.ipv4(src: Self.ipC, dst: Self.ipS, proto: IPProtocol.icmpv6),
            payload: solicitation)
        #expect(run(frame, offload: VirtioNetHeader()).drops == [.firewall: 1])
    }

    /// IP behind three VLAN tags is invisible to the parser, so the firewall drops the frame
    /// instead of letting it past uninspected.
    @Test func threeTagsDoNotSlipPastTheFirewall() {
        let inner = FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, dport: 22)
        let tagged = FrameBuilder.ethernet(
            dst: Self.s, src: Self.c, tags: [.dot1q(10), .dot1q(20), .dot1q(30)], type: EtherType.ipv4,
            payload: Array(inner[14...]))
        #expect(run(tagged, offload: VirtioNetHeader()).drops == [.firewall: 1])
    }

    /// Balanced connections hold two index cells each (key and alias). With a power-of-two
    /// `max_connections` the old index was exactly twice the entries: this many SYNs to a VIP
    /// filled every cell and the next lookup never returned.
    @Test(.timeLimit(.minutes(1))) func aTableFullOfBalancedConnectionsStillAnswers() {
        let sw = EmbeddedSwitch(yaml: """
            name: lb
            networks: { lan: { vlan: 10 } }
            ports:
              c: { tap: tc, network: lan }
              b: { tap: tb, network: lan }
            firewall: { default: allow, max_connections: 64 }
            load_balancers:
              web: { network: lan, vip: 10.0.1.100, port: 80, mac: 02:00:00:00:01:00, backends: [10.0.1.2:8080] }
            """)
        sw.send(FrameBuilder.arpRequest(src: Self.s, senderIP: Self.ipS, targetIP: Self.ipC), on: "b")
        let lb = MACAddress("02:00:00:00:01:00")!
        let vip = IPv4Address("10.0.1.100")!
        for port in 0..<200 {
            sw.send(FrameBuilder.tcp4(dst: lb, src: Self.c, from: Self.ipC, to: vip, sport: UInt16(20000 + port), dport: 80), on: "c")
        }
        #expect(sw.datapath.connectionTable!.count == 64)
        // Unreplied SYNs give way to new ones (early drop), and a lookup of a flow that is not
        // there ends: this one is tracked after evicting the oldest SYN, and forwarded.
        let out = sw.send(FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, sport: 1, dport: 2), on: "c")
        #expect(out["b"]?.count == 1)
        #expect(sw.counters.connectionsEvicted == 200 - 64 + 1)
    }
}

/// A topology is untrusted input too (replay and test take them from anyone).
@Suite struct HostileTopologyTests {
    @Test func loadBalancerCountsAreBounded() {
        let backends = (0..<257).map { "10.0.\($0 / 200).\($0 % 200 + 1):80" }.joined(separator: ", ")
        let yaml = """
            name: big
            networks: { lan: { vlan: 7 } }
            ports:
              p: { tap: t, network: lan }
            load_balancers:
              web: { network: lan, vip: 10.9.0.1, port: 80, backends: [\(backends)] }
            """
        guard case .failure(let errors) = TopologyLoader.parse(yaml: yaml, file: "big.yaml") else {
            Issue.record("257 backends loaded")
            return
        }
        #expect(errors.description.contains("big.yaml:6:59: error: at most 256 backends per load balancer, not 257"))
    }
}

/// Time values come from captures in replay: any Int64.
@Suite struct HostileTimeTests {
    @Test func timestampsRenderAtBothEnds() {
        #expect(Timestamp(nanoseconds: -1_500_000_000).description == "-1.500000000")
        #expect(Timestamp(nanoseconds: -1).description == "-0.000000001")
        #expect(Timestamp(nanoseconds: .min).description == "-9223372036.854775808")
        #expect(Timestamp(nanoseconds: .max).description == "9223372036.854775807")
    }
}
