import Testing
import TapestryTestSupport
import TapestryWire

/// The contract's L2 clauses: learning per (network, MAC), aging, moves, flooding, hairpin,
/// multicast sources, the bounded table.
@Suite struct L2Tests {
    @Test func learnedDestinationIsForwardedToOnePort() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        sw.send(FrameBuilder.arpRequest(src: Host.a, senderIP: Host.ipA, targetIP: Host.ipB), on: "w1")
        let reply = sw.send(udp(Host.b, Host.a), on: "w2")
        #expect(reply == ["w1": [udp(Host.b, Host.a)]], "a was learned on w1")
        let back = sw.send(udp(Host.a, Host.b), on: "w1")
        #expect(back == ["w2": [udp(Host.a, Host.b)]])
        #expect(sw.counters.macLearned == 2)
    }

    @Test func broadcastAndMulticastFlood() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        sw.send(udp(Host.b, Host.a), on: "w2")
        let broadcast = sw.send(udp(Host.a, .broadcast), on: "w1")
        #expect(Set(broadcast.keys) == ["w2", "up", "t2"])
        let multicast = MACAddress("01:00:5e:00:00:fb")!
        let out = sw.send(udp(Host.a, multicast), on: "w1")
        #expect(Set(out.keys) == ["w2", "up", "t2"], "multicast floods even when b is known")
    }

    @Test func learningIsPerNetwork() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        sw.send(udp(Host.a, .broadcast), on: "w1")  // a in web on w1
        let out = sw.send(udp(Host.c, Host.a), on: "d1")  // to a in db: unknown there
        #expect(Set(out.keys) == ["up", "t2"], "flooded in db, not sent to w1")
    }

    @Test func hairpinIsDropped() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        sw.send(udp(Host.a, .broadcast), on: "w1")
        sw.send(udp(Host.b, .broadcast), on: "w1")
        #expect(sw.send(udp(Host.a, Host.b), on: "w1").isEmpty)
        #expect(sw.drops == ["hairpin": 1])
    }

    @Test func multicastSourceIsDroppedAndNotLearned() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        let groupSource = MACAddress("01:00:5e:00:00:01")!
        #expect(sw.send(udp(groupSource, Host.b), on: "w1").isEmpty)
        #expect(sw.send(udp(.broadcast, Host.b), on: "w1").isEmpty)
        #expect(sw.drops == ["multicast-source": 2])
        #expect(sw.datapath.macTable.count == 0)
    }

    @Test func entriesAgeOutAfterMacAging() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)  // mac_aging: 60
        sw.send(udp(Host.a, .broadcast), on: "w1")
        sw.clock.advance(by: .seconds(59))
        #expect(sw.send(udp(Host.b, Host.a), on: "w2") == ["w1": [udp(Host.b, Host.a)]], "59 s: still known")
        sw.clock.advance(by: .seconds(1))
        let out = sw.send(udp(Host.b, Host.a), on: "w2")
        #expect(Set(out.keys) == ["w1", "up", "t2"], "60 s of silence: aged out, flooded")
    }

    @Test func trafficRefreshesAnEntry() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        for _ in 0..<5 {
            sw.send(udp(Host.a, .broadcast), on: "w1")
            sw.clock.advance(by: .seconds(50))
        }
        #expect(sw.send(udp(Host.b, Host.a), on: "w2").keys.sorted() == ["w1"])
    }

    @Test func macMovesToTheNewPort() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        sw.send(udp(Host.a, .broadcast), on: "w1")
        sw.send(udp(Host.a, .broadcast), on: "up")  // a moved behind the trunk (native web)
        #expect(sw.send(udp(Host.b, Host.a), on: "w2") == ["up": [udp(Host.b, Host.a)]])
        #expect(sw.counters.macMoved == 1)
    }

    @Test func fullTableEvictsTheFullestPortsOldestEntry() {
        let sw = EmbeddedSwitch(
            yaml: """
                name: small
                mac_table_size: 3
                networks: { lan: { vlan: 1 } }
                ports:
                  p1: { tap: t1, network: lan }
                  p2: { tap: t2, network: lan }
                  p3: { tap: t3, network: lan }
                """)
        sw.send(udp(Host.a, .broadcast), on: "p1")
        sw.send(udp(Host.b, .broadcast), on: "p2")
        sw.send(udp(Host.c, .broadcast), on: "p2")  // full; p2 holds two
        sw.send(udp(Host.d, .broadcast), on: "p3")  // p2's oldest, b, makes room
        #expect(sw.counters.macEvicted == 1)
        #expect(Set(sw.send(udp(Host.a, Host.b), on: "p1").keys) == ["p2", "p3"], "b evicted: flood")
        #expect(sw.send(udp(Host.d, Host.a), on: "p3") == ["p1": [udp(Host.d, Host.a)]], "a still known")
        #expect(sw.datapath.macTable.count == 3)
    }

    @Test func macLimitEvictsTheLearningPortsOwnOldestEntry() {
        let sw = EmbeddedSwitch(
            yaml: """
                name: small
                networks: { lan: { vlan: 1 } }
                ports:
                  p1: { tap: t1, network: lan, mac_limit: 2 }
                  p2: { tap: t2, network: lan }
                """)
        sw.send(udp(Host.d, .broadcast), on: "p2")
        for host in [Host.a, Host.b, Host.c] { sw.send(udp(host, .broadcast), on: "p1") }
        #expect(sw.counters.macEvicted == 1)
        #expect(sw.datapath.macTable.count(port: 0) == 2)
        #expect(sw.send(udp(Host.d, Host.c), on: "p2") == ["p1": [udp(Host.d, Host.c)]])
        #expect(Set(sw.datapath.macTable.entries(now: sw.clock.now).map(\.mac)) == [Host.b, Host.c, Host.d], "a evicted")
        #expect(sw.send(udp(Host.c, Host.d), on: "p1") == ["p2": [udp(Host.c, Host.d)]], "p2's entry untouched")
    }

    @Test func floodWithNowhereToGoIsCounted() {
        let sw = EmbeddedSwitch(
            yaml: """
                name: solo
                networks: { lan: { vlan: 1 } }
                ports: { only: { tap: t1, network: lan } }
                """)
        #expect(sw.send(udp(Host.a, .broadcast), on: "only").isEmpty)
        #expect(sw.drops == ["no-destination": 1])
    }

    @Test func malformedFramesAreDroppedAsInvalid() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        var badIHL = udp(Host.a, Host.b)
        badIHL[14] = 0x43
        sw.inject(Array(udp(Host.a, Host.b).prefix(10)), on: "w1")
        sw.inject(badIHL, on: "w1")
        sw.runUntilIdle()
        #expect(sw.drainAll().isEmpty)
        #expect(sw.drops == ["invalid": 2])
        #expect(sw.counters.ports[0].framesIn == 2)
    }

    /// A batch decides exactly what the same frames one at a time would (learning is in order).
    @Test func batchEqualsFrameByFrame() {
        var generator = SplitMix64(seed: 42)
        let hosts = (1...6).map { MACAddress(rawValue: 0x0200_0000_0100 | UInt64($0)) }
        let ports = ["w1", "w2", "up", "t2"]
        var frames: [(String, [UInt8])] = []
        for _ in 0..<400 {
            let port = ports[Int(generator.next() % 4)]
            let src = hosts[Int(generator.next() % 6)]
            let dst = generator.next() % 5 == 0 ? MACAddress.broadcast : hosts[Int(generator.next() % 6)]
            let tags: [FrameBuilder.Tag] = port == "t2" ? [.dot1q(10)] : []
            frames.append((port, udp(src, dst, tags: tags)))
        }
        let batched = EmbeddedSwitch(yaml: twoNetworks)
        let single = EmbeddedSwitch(yaml: twoNetworks, batchCapacity: 1)
        for (port, frame) in frames {
            batched.inject(frame, on: port)
            single.inject(frame, on: port)
        }
        batched.runUntilIdle()
        single.runUntilIdle()
        #expect(batched.drainAll() == single.drainAll())
        #expect(batched.counters == single.counters)
    }

    @Test func countersPerPort() {
        let sw = EmbeddedSwitch(yaml: twoNetworks)
        let frame = udp(Host.a, .broadcast)
        sw.send(frame, on: "w1")
        let counters = sw.counters
        #expect(counters.ports[0].framesIn == 1 && counters.ports[0].bytesIn == UInt64(frame.count))
        #expect(counters.ports[1].framesOut == 1 && counters.ports[1].bytesOut == UInt64(frame.count))
        #expect(counters.ports[4].bytesOut == UInt64(frame.count + 4), "t2 got it tagged")
        #expect(counters.ports[2].framesOut == 0, "db port untouched")
    }
}
