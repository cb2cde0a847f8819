import Testing
import TapestryDatapath
import TapestryTestSupport
import TapestryWire

/// The stages record their own trace events: only when tracing is on, for every frame of a batch,
/// and with the cause each stage decided on.
@Suite struct TraceEventTests {
    @Test func nothingIsRecordedWithTracingOff() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        sw.send(udp(Host.a, .broadcast), on: "w1")
        #expect(sw.datapath.traceEvents.isEmpty)
        let lines = sw.trace([udp(Host.b, Host.a)], on: "w2")
        #expect(!sw.datapath.traceEvents.isEmpty)
        #expect(lines[0].contains { $0.contains("destination \(Host.a) learned on w1 -> forward") }, "\(lines)")
        _ = sw.drainAll()
        // An untraced batch leaves the last traced batch's events alone and records none of its own.
        let before = Array(sw.datapath.traceEvents)
        sw.send(udp(Host.a, Host.b), on: "w1")
        #expect(Array(sw.datapath.traceEvents) == before)
        _ = sw.drainAll()
    }

    /// One batch of several frames: each frame's lines come from its own events.
    @Test func everyFrameOfABatchIsExplained() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        sw.send(udp(Host.b, .broadcast), on: "w2")
        _ = sw.drainAll()
        let lines = sw.trace(
            [
                udp(Host.a, Host.b, tags: [.dot1q(10)]),  // web: b is on w2
                udp(Host.c, Host.d, tags: [.dot1q(30)]),  // no network 30 on the trunk
                udp(Host.c, .broadcast, tags: [.dot1q(20)]),  // db: floods to d1 and up
                Array(udp(Host.a, Host.b).prefix(13)),  // a runt
            ], on: "t2")
        #expect(lines[0] == [
            "  vlan          tagged VID 10 on port t2 -> network web (VLAN 10)",
            "  l2            source learned on t2",
            "  l2            destination \(Host.b) learned on w2 -> forward",
            "  egress        out w2 (untagged)",
        ], "\(lines[0])")
        #expect(lines[1] == ["  vlan          dropped (vlan): VID 30 is not one of trunk port t2's networks"], "\(lines[1])")
        #expect(lines[2].last == "  egress        out d1 (untagged), up (tagged VID 20)", "\(lines[2])")
        #expect(lines[3] == ["  vlan          dropped (invalid): the frame has 13 bytes, fewer than the 14 of an Ethernet header"], "\(lines[3])")
        _ = sw.drainAll()
    }

    /// The same frames traced as one batch and one by one give the same lines.
    @Test func aBatchTracesAsFrameByFrame() {
        let frames = [
            udp(Host.a, .broadcast), udp(Host.b, Host.a), udp(Host.a, Host.b), udp(Host.c, Host.a),
            udp(MACAddress("01:00:5e:00:00:01")!, Host.a),
        ]
        let batched = EmbeddedSwitch(yaml: twoNetworks)
        let single = EmbeddedSwitch(yaml: twoNetworks)
        let together = batched.trace(frames, on: "w1")
        let apart = frames.map { single.trace([$0], on: "w1")[0] }
        #expect(together == apart)
        #expect(together[4] == ["  vlan          untagged on port w1 -> network web (VLAN 10)",
                                "  l2            dropped (multicast-source): source MAC is a group address"])
    }

    @Test func malformedHeadersNameTheFieldAndValue() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        var badVersion = udp(Host.a, Host.b)
        badVersion[14] = 0x65
        var longTotal = udp(Host.a, Host.b)
        longTotal[16] = 0x05  // total length 0x05xx, more than the frame
        var shortUDP = udp(Host.a, Host.b)
        shortUDP[14 + 20 + 4] = 0
        shortUDP[14 + 20 + 5] = 4
        let lines = sw.trace([badVersion, longTotal, shortUDP], on: "w1")
        #expect(lines[0] == ["  vlan          dropped (invalid): IPv4 version 6 is not 4"], "\(lines[0])")
        #expect(lines[1].first?.hasPrefix("  vlan          dropped (invalid): IPv4 total length 1") == true, "\(lines[1])")
        #expect(lines[1].first?.hasSuffix("is more than the 58 bytes left") == true, "\(lines[1])")
        #expect(lines[2] == ["  vlan          dropped (invalid): UDP length 4 is below 8"], "\(lines[2])")
    }
}
