import Testing
import TapestryDatapath
import TapestryTestSupport
import TapestryWire

/// A VXLAN port in the datapath: decapsulation (`VXLANEndpoint.admit`), MACs learned behind a
/// remote, unicast to that remote, floods to all, split horizon, and encapsulation in the
/// transmit queue's prefix.
@Suite struct VXLANDatapathTests {
    static let local = IPv4Address("10.0.99.1")!
    static let remotes = [IPv4Address("10.0.99.2")!, IPv4Address("10.0.99.3")!]

    /// Port 0: access web; port 1: a tunnel carrying web (VNI 5010) and db (VNI 20).
    static func datapath() -> Datapath {
        let configuration = DatapathConfiguration(
            networks: [.init(name: "web", vid: 10, vni: 5010), .init(name: "db", vid: 20)],
            ports: [
                .init(name: "a", mode: .access(0)),
                .init(
                    name: "dc2", mode: .trunk([0, 1], native: nil),
                    tunnel: .init(local: local, remotes: remotes, udpPort: 4789, mtu: 1400)),
            ])
        return Datapath(configuration: configuration, maxFrameLength: 9216 + 18)
    }

    static func payload(vni: UInt32, _ inner: [UInt8], flags: UInt8 = VXLAN.validVNI) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: VXLAN.headerLength)
        header.withUnsafeMutableBytes { VXLAN.writeHeader(vni: vni, at: $0) }
        header[0] = flags
        return header + inner
    }

    /// Sends one frame in on `port` (a tunnel frame when `tunnel` is given) and returns, per output
    /// port, the queued frames with their remote and VNI.
    @discardableResult
    static func send(
        _ datapath: Datapath, _ frame: [UInt8], on port: PortID, tunnel: (network: NetworkID, remote: UInt16)? = nil
    ) -> [PortID: [(frame: [UInt8], remote: UInt16, vni: UInt32)]] {
        let batch = datapath.makeBatch()
        batch.ingressPort = port
        frame.withUnsafeBytes {
            if let tunnel { batch.appendTunnelFrame($0, network: tunnel.network, remote: tunnel.remote) } else { batch.append($0) }
        }
        datapath.process(batch, now: Timestamp(nanoseconds: 1_000_000_000))
        let queues = datapath.transmitQueues
        var out: [PortID: [(frame: [UInt8], remote: UInt16, vni: UInt32)]] = [:]
        for active in 0..<queues.activeCount {
            let port = queues.activePort(active)
            out[port] = (0..<queues.count(port)).map { (Array(queues.frame(port, $0)), queues.remote(port, $0), queues.vni(port, $0)) }
        }
        queues.removeAll()
        return out
    }

    @Test func admitChecksSourceFlagsAndVNI() throws {
        let datapath = Self.datapath()
        let endpoint = try #require(VXLANEndpoint(configuration: datapath.configuration, port: 1))
        #expect(VXLANEndpoint(configuration: datapath.configuration, port: 0) == nil, "port a is no tunnel")
        let inner = udp(Host.b, Host.a)
        func admit(_ source: IPv4Address, _ bytes: [UInt8]) -> Result<VXLANEndpoint.Admission, VXLANEndpoint.Refusal> {
            bytes.withUnsafeBytes { endpoint.admit(source: source, payload: $0) }
        }
        let good = admit(Self.remotes[1], Self.payload(vni: 20, inner))
        #expect(good == .success(.init(inner: 8..<(8 + inner.count), network: 1, remote: 1)))
        #expect(admit(IPv4Address("10.0.99.9")!, Self.payload(vni: 5010, inner)) == .failure(.unlistedSource(IPv4Address("10.0.99.9")!)))
        #expect(admit(Self.remotes[0], Self.payload(vni: 7777, inner)) == .failure(.unknownVNI(7777)))
        #expect(admit(Self.remotes[0], Self.payload(vni: 5010, inner, flags: 0)) == .failure(.malformed(.noVNIFlag)))
        #expect(admit(Self.remotes[0], Self.payload(vni: 5010, inner, flags: 0x0C)) == .failure(.malformed(.reservedBits)))
        #expect(admit(Self.remotes[0], Array(Self.payload(vni: 5010, inner).prefix(21))) == .failure(.malformed(.short(21))))
        // VNI 10 is web's VLAN id but not its VNI (5010): not a network of this port.
        #expect(admit(Self.remotes[0], Self.payload(vni: 10, inner)) == .failure(.unknownVNI(10)))
    }

    @Test func learnedBehindARemoteAndSentOnlyThere() throws {
        let datapath = Self.datapath()
        // b speaks from behind remote 1 in web: learned as (dc2, remote 1).
        let fromB = Self.send(datapath, udp(Host.b, .broadcast), on: 1, tunnel: (0, 1))
        #expect(fromB.keys.sorted() == [0], "a broadcast from the tunnel is not flooded back into it")
        let entry = try #require(datapath.macTable.entries(now: Timestamp(nanoseconds: 1_000_000_000)).first { $0.mac == Host.b })
        #expect(entry.port == 1 && entry.remote == 1)
        // a's unicast to b goes to remote 1 only, untagged, with web's VNI.
        let toB = Self.send(datapath, udp(Host.a, Host.b), on: 0)
        #expect(toB[1]?.count == 1)
        #expect(toB[1]?.first?.remote == 1 && toB[1]?.first?.vni == 5010)
        #expect(toB[1]?.first?.frame == udp(Host.a, Host.b), "sent untagged inside the tunnel")
        // A broadcast from a goes to every remote.
        let flood = Self.send(datapath, udp(Host.a, .broadcast), on: 0)
        #expect(flood[1]?.first?.remote == TransmitQueues.allRemotes)
        // b moves behind remote 0: the next unicast follows it.
        Self.send(datapath, udp(Host.b, Host.a), on: 1, tunnel: (0, 0))
        #expect(Self.send(datapath, udp(Host.a, Host.b), on: 0)[1]?.first?.remote == 0)
        #expect(datapath.counters.macMoved == 1)
    }

    @Test func neverFromOneRemoteToAnother() {
        let datapath = Self.datapath()
        Self.send(datapath, udp(Host.b, .broadcast), on: 1, tunnel: (0, 1))
        // c, behind remote 0, to b, behind remote 1: split horizon.
        #expect(Self.send(datapath, udp(Host.c, Host.b), on: 1, tunnel: (0, 0)).isEmpty)
        #expect(datapath.counters.ports[1].drops[DropReason.hairpin.index] == 1)
    }

    @Test func taggedInnerFramesAndUnclassifiedTunnelFramesAreDropped() {
        let datapath = Self.datapath()
        #expect(Self.send(datapath, udp(Host.b, .broadcast, tags: [.dot1q(10)]), on: 1, tunnel: (0, 0)).isEmpty)
        #expect(datapath.counters.ports[1].drops[DropReason.vlan.index] == 1)
        // A frame put on a tunnel port without decapsulation has no network: `tunnel`, not a stale one.
        #expect(Self.send(datapath, udp(Host.b, .broadcast), on: 1).isEmpty)
        #expect(datapath.counters.ports[1].drops[DropReason.tunnel.index] == 1)
    }

    @Test func encapsulationFitsTheMTUAndWritesTheOuterHeaders() throws {
        let datapath = Self.datapath()
        let endpoint = try #require(VXLANEndpoint(configuration: datapath.configuration, port: 1))
        #expect(endpoint.maxInnerFrame == 1400 - 36)
        let batch = datapath.makeBatch()
        batch.ingressPort = 0
        let fits = FrameBuilder.udp4(
            dst: .broadcast, src: Host.a, from: Host.ipA, to: Host.ipB, payload: [UInt8](repeating: 7, count: 1364 - 42))
        let tooLong = FrameBuilder.udp4(
            dst: .broadcast, src: Host.a, from: Host.ipA, to: Host.ipB, payload: [UInt8](repeating: 7, count: 1365 - 42))
        fits.withUnsafeBytes { _ = batch.append($0) }
        tooLong.withUnsafeBytes { _ = batch.append($0) }
        datapath.process(batch, now: .zero)
        let queues = datapath.transmitQueues
        #expect(queues.count(1) == 2)
        let packet = try #require(endpoint.underlayPacket(queues, 0, remote: 1))
        #expect(packet.count == 1400)
        let underlay = try VXLAN.decodeUnderlay(packet, port: 4789).get()
        #expect(underlay.source == Self.local && underlay.destination == Self.remotes[1])
        #expect(underlay.sourcePort >= 49152 && underlay.sourcePort == endpoint.sourcePort(queues, 0))
        #expect(packet[6] & 0x40 != 0, "DF set")
        #expect(Array(packet[(36)...]) == fits)
        let vxlan = try #require(endpoint.vxlanPayload(queues, 0))
        #expect(try VXLAN.decode(UnsafeRawBufferPointer(rebasing: vxlan[0..<22])).get() == 5010)
        #expect(endpoint.underlayPacket(queues, 1, remote: 0) == nil, "one byte over the MTU")
        #expect(endpoint.vxlanPayload(queues, 1) == nil)
        #expect(endpoint.destinations(queues, 0) == 0..<2, "a flood goes to both remotes")
        queues.removeAll()
    }
}
