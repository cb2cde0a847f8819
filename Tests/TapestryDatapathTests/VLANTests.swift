import Testing
import TapestryTestSupport
import TapestryWire

/// The contract's access and trunk port clauses, through the in-memory switch.
@Suite struct VLANTests {
    @Test func accessPortUntaggedEntersItsNetworkAndFloodsWithinIt() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        let out = sw.send(udp(Host.a, Host.b), on: "w1")
        #expect(Set(out.keys) == ["w2", "up", "t2"], "unknown unicast floods web only, never db")
        #expect(out["w2"] == [udp(Host.a, Host.b)], "access egress is untagged")
        #expect(out["up"] == [udp(Host.a, Host.b)], "web is native on up: untagged")
        #expect(out["t2"] == [retagged(Host.a, Host.b, [.dot1q(10)])], "tagged with web's VID, PCP 0")
        #expect(sw.finish().isEmpty)
    }

    @Test func accessPortAcceptsPriorityTagsAndStripsThem() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        let out = sw.send(udp(Host.a, Host.b, tags: [.dot1q(0, pcp: 5)]), on: "w1")
        #expect(out["w2"] == [udp(Host.a, Host.b)])
        #expect(out["t2"] == [retagged(Host.a, Host.b, [.dot1q(10, pcp: 5)])], "PCP of the carried tag is kept")
        #expect(sw.drops.isEmpty)
    }

    @Test(arguments: [
        ("own VID", [FrameBuilder.Tag.dot1q(10)]), ("other VID", [.dot1q(20)]), ("802.1ad outer", [.dot1ad(10)]),
        ("802.1Q double", [.dot1q(10), .dot1q(20)]), ("802.1ad double", [.dot1ad(5), .dot1q(10)]),
        ("priority tag then tag", [.dot1q(0), .dot1q(10)]),
    ])
    func accessPortDropsTaggedFrames(name: String, tags: [FrameBuilder.Tag]) {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        let out = sw.send(udp(Host.a, Host.b, tags: tags), on: "w1")
        #expect(out.isEmpty, "\(name)")
        #expect(sw.drops == ["vlan": 1])
        #expect(sw.counters.ports[0].drops[0] == 1, "counted on the ingress port")
        #expect(sw.datapath.macTable.count == 0, "a dropped frame's source is not learned")
    }

    @Test func trunkTaggedFrameEntersThatNetwork() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        let out = sw.send(udp(Host.a, Host.b, tags: [.dot1q(20, pcp: 6, dei: true)]), on: "t2")
        #expect(Set(out.keys) == ["d1", "up"])
        #expect(out["d1"] == [udp(Host.a, Host.b)], "untagged on the access port")
        #expect(out["up"] == [retagged(Host.a, Host.b, [.dot1q(20, pcp: 6, dei: true)])], "db is not native on up: PCP/DEI kept")
    }

    @Test func trunkUntaggedGoesToNativeOrIsDropped() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        let out = sw.send(udp(Host.a, Host.b), on: "up")
        #expect(Set(out.keys) == ["w1", "w2", "t2"])
        #expect(out["t2"] == [retagged(Host.a, Host.b, [.dot1q(10)])])
        let none = sw.send(udp(Host.c, Host.b), on: "t2")
        #expect(none.isEmpty)
        #expect(sw.drops == ["vlan": 1], "t2 has no native network")
        let priority = sw.send(udp(Host.d, Host.b, tags: [.dot1q(0, pcp: 2)]), on: "up")
        #expect(priority["t2"] == [retagged(Host.d, Host.b, [.dot1q(10, pcp: 2)])], "priority tag on a trunk: native")
    }

    @Test func trunkDropsUnlistedVIDsAndSTags() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        #expect(sw.send(udp(Host.a, Host.b, tags: [.dot1q(30)]), on: "up").isEmpty)
        #expect(sw.send(udp(Host.a, Host.b, tags: [.dot1ad(10)]), on: "up").isEmpty)
        #expect(sw.drops == ["vlan": 2])
    }

    @Test func trunkCarriesAnInnerTagAsPayload() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        let out = sw.send(udp(Host.a, Host.b, tags: [.dot1q(10), .dot1q(99)]), on: "t2")
        #expect(out["w1"] == [udp(Host.a, Host.b, tags: [.dot1q(99)])], "outer tag removed, inner kept")
        #expect(out["up"] == [udp(Host.a, Host.b, tags: [.dot1q(99)])])
    }

    @Test func nativeNetworkLeavesTrunkUntaggedAndOthersTagged() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        let fromDB = sw.send(udp(Host.c, Host.d), on: "d1")
        #expect(fromDB["up"] == [retagged(Host.c, Host.d, [.dot1q(20)])])
        #expect(fromDB["t2"] == [retagged(Host.c, Host.d, [.dot1q(20)])])
        #expect(fromDB["w1"] == nil && fromDB["w2"] == nil)
    }
}
