import Testing
import TapestryDatapath
import TapestrySwitchCore
import TapestryTestSupport
import TapestryTopology
import TapestryWire

/// Rules as operators write them: lists in the match fields, per-rule counters that survive a
/// reload, and the rate-limited log.
@Suite struct FirewallRuleTests {
    static let c = MACAddress("02:00:00:00:01:01")!
    static let s = MACAddress("02:00:00:00:01:02")!
    static let ipC = IPv4Address("10.0.1.1")!
    static let ipS = IPv4Address("10.0.1.2")!
    static let ipT = IPv4Address("10.0.1.3")!

    static func yaml(rules: String, extra: String = "") -> String {
        """
        name: fw
        networks: { lan: { vlan: 10 } }
        ports:
          c: { tap: tc, network: lan }
          s: { tap: ts, network: lan }
        firewall:
          default: drop
          \(extra)
          rules:
        \(rules)
        """
    }

    static let listRules = """
            - { action: allow, proto: tcp, dst: [10.0.1.2, 10.0.1.3], dport: [22, 80, "8000-8099"] }
            - { action: drop, proto: udp, src: [10.0.1.0/30, "fd00::/8"], log: true }
            - { action: allow, proto: udp }
        """

    func makeSwitch(_ yaml: String) -> EmbeddedSwitch {
        let sw = EmbeddedSwitch(yaml: yaml)
        sw.send(FrameBuilder.arpRequest(src: Self.c, senderIP: Self.ipC, targetIP: Self.ipS), on: "c")
        sw.send(FrameBuilder.arpRequest(src: Self.s, senderIP: Self.ipS, targetIP: Self.ipC), on: "s")
        return sw
    }

    func syn(to destination: IPv4Address = ipS, sport: UInt16 = 40000, dport: UInt16) -> [UInt8] {
        FrameBuilder.tcp4(dst: Self.s, src: Self.c, from: Self.ipC, to: destination, sport: sport, dport: dport, flags: .syn)
    }

    func passes(_ sw: EmbeddedSwitch, _ frame: [UInt8], on port: String = "c") -> Bool { !sw.send(frame, on: port).isEmpty }

    @Test func listsMatchWhenAnyEntryMatches() {
        let sw = makeSwitch(Self.yaml(rules: Self.listRules))
        for dport: UInt16 in [22, 80, 8000, 8099] {
            #expect(passes(sw, syn(dport: dport)), "dport \(dport) is in the list")
            #expect(passes(sw, syn(to: Self.ipT, sport: 41000, dport: dport)), "10.0.1.3 is in the dst list")
        }
        for dport: UInt16 in [21, 81, 7999, 8100] {
            #expect(!passes(sw, syn(sport: 42000, dport: dport)), "dport \(dport) is not in the list")
        }
        #expect(!passes(sw, syn(to: IPv4Address("10.0.1.4")!, sport: 43000, dport: 80)), "10.0.1.4 is not in the dst list")
        // UDP from 10.0.1.1 (inside 10.0.1.0/30) hits the drop rule; the IPv6 entry does not make
        // the list admit anything else.
        #expect(!passes(sw, FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, dport: 53)))
        #expect(passes(sw, FrameBuilder.udp4(dst: Self.c, src: Self.s, from: IPv4Address("10.0.1.5")!, to: Self.ipC, dport: 53), on: "s"))
        #expect(sw.drops == ["firewall": 6])
    }

    @Test func eachRuleCountsTheNewConnectionsItDecided() {
        let sw = makeSwitch(Self.yaml(rules: Self.listRules))
        #expect(passes(sw, syn(dport: 80)))
        // The connection's other packets are not new connections: no rule counts them.
        #expect(passes(sw, FrameBuilder.tcp4(dst: Self.c, src: Self.s, from: Self.ipS, to: Self.ipC, sport: 80, dport: 40000, flags: [.syn, .ack]), on: "s"))
        #expect(passes(sw, FrameBuilder.tcp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, sport: 40000, dport: 80, flags: .ack)))
        #expect(!passes(sw, FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, dport: 53)))
        #expect(!passes(sw, syn(sport: 40001, dport: 443)))
        #expect(!passes(sw, syn(sport: 40002, dport: 443)))
        // Rules 1, 2, 3, then default.
        #expect(sw.counters.ruleDecisions == [1, 1, 0, 2])
    }

    @Test func countersSurviveAReloadForRulesThatStay() throws {
        let sw = makeSwitch(Self.yaml(rules: Self.listRules))
        #expect(passes(sw, syn(dport: 80)))
        #expect(!passes(sw, FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, dport: 53)))
        #expect(!passes(sw, syn(sport: 40001, dport: 443)))
        #expect(sw.counters.ruleDecisions == [1, 1, 0, 1])
        // A new rule first; the old first rule moves down and keeps its count; the UDP drop
        // rule changed (no log) and starts again; default keeps its count.
        let changed = Self.yaml(rules: """
                - { action: allow, proto: tcp, dport: 443 }
                - { action: allow, proto: tcp, dst: [10.0.1.2, 10.0.1.3], dport: [22, 80, "8000-8099"] }
                - { action: drop, proto: udp, src: [10.0.1.0/30, "fd00::/8"] }
            """)
        let topology = try TopologyLoader.parse(yaml: changed, file: "fw.yaml").get()
        _ = sw.core.reload(to: topology, now: sw.clock.now)
        #expect(sw.counters.ruleDecisions == [0, 1, 0, 1])
    }

    @Test func loggedRulesWriteTenLinesASecondThenSayHowManyWereNot() {
        let sw = makeSwitch(Self.yaml(rules: Self.listRules, extra: "log_default: true"))
        for index in 0..<15 {
            #expect(!passes(sw, FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, sport: 1000 + UInt16(index), dport: 53)))
        }
        #expect(!passes(sw, syn(dport: 443)))
        let first = sw.firewallLog
        #expect(first.count == 11, "10 lines of rule 2, 1 of default: \(first)")
        #expect(first.first == "firewall: drop udp 10.0.1.1:1000 -> 10.0.1.2:53 on port c (network lan) by rule 2 (test.yaml:11: action: drop, proto: udp, src: [10.0.1.0/30, fd00::/8], log: true)")
        #expect(first.last?.hasPrefix("firewall: drop tcp 10.0.1.1:40000 -> 10.0.1.2:443 on port c (network lan) by default (drop)") == true)
        // Rule 1 allows without `log`: nothing more is written.
        #expect(passes(sw, syn(dport: 80)))
        #expect(sw.firewallLog.count == 11)
        // The second ends: rule 2 owes one line for the 5 connections it did not log.
        sw.clock.advance(by: .seconds(1))
        sw.takeFirewallLog()
        #expect(sw.firewallLog.count == 12)
        #expect(sw.firewallLog.last?.hasPrefix("firewall: 5 more connections decided by rule 2 (") == true, "\(sw.firewallLog.last ?? "")")
        #expect(sw.firewallLog.last?.hasSuffix("were not logged (at most 10 lines a second per rule)") == true)
        // A new second: rule 2 logs again.
        #expect(!passes(sw, FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, sport: 2000, dport: 53)))
        #expect(sw.firewallLog.count == 13)
    }

    /// A new connection the table has no room for was not decided by its rule: not counted
    /// against it, not logged as allowed.
    @Test func aFullTableIsNotARuleDecision() {
        let sw = makeSwitch(Self.yaml(rules: "    - { action: allow, proto: udp, log: true }", extra: "max_connections: 2"))
        for sport: UInt16 in [1000, 1001] {
            #expect(passes(sw, FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, sport: sport, dport: 53)))
            // Answered: such a connection may not be evicted for a new one.
            #expect(passes(sw, FrameBuilder.udp4(dst: Self.c, src: Self.s, from: Self.ipS, to: Self.ipC, sport: 53, dport: sport), on: "s"))
        }
        #expect(!passes(sw, FrameBuilder.udp4(dst: Self.s, src: Self.c, from: Self.ipC, to: Self.ipS, sport: 1002, dport: 53)))
        #expect(sw.drops == ["table-full": 1])
        #expect(sw.counters.ruleDecisions == [2, 0])
        #expect(sw.firewallLog.count == 2, "\(sw.firewallLog)")
    }

    /// Counts stay with their rule when the networks are renumbered (one added before).
    @Test func countersFollowTheNetworkByName() throws {
        let yaml = """
            name: fw
            networks: { lan: { vlan: 10 } }
            ports:
              c: { tap: tc, network: lan }
              s: { tap: ts, network: lan }
            firewall:
              default: drop
              rules:
                - { action: allow, proto: tcp, network: lan }
            """
        let sw = makeSwitch(yaml)
        #expect(passes(sw, syn(dport: 80)))
        #expect(sw.counters.ruleDecisions == [1, 0])
        let renumbered = yaml.replacingOccurrences(of: "networks: { lan: { vlan: 10 } }", with: "networks: { dmz: { vlan: 20 }, lan: { vlan: 10 } }")
        _ = sw.core.reload(to: try TopologyLoader.parse(yaml: renumbered, file: "fw.yaml").get(), now: sw.clock.now)
        #expect(sw.counters.ruleDecisions == [1, 0], "lan is network 1 now, and the rule still names it")
    }

    @Test func rulesKnowWhereTheyAreWritten() throws {
        let topology = try TopologyLoader.parse(yaml: Self.yaml(rules: Self.listRules), file: "lab.yaml").get()
        let rules = try #require(topology.firewall?.rules)
        #expect(rules.map(\.location) == ["lab.yaml:10", "lab.yaml:11", "lab.yaml:12"])
        #expect(rules[0].text == "action: allow, proto: tcp, dst: [10.0.1.2, 10.0.1.3], dport: [22, 80, 8000-8099]")
        #expect(topology.firewall?.quote(rule: 1) == "rule 2 (lab.yaml:11: action: drop, proto: udp, src: [10.0.1.0/30, fd00::/8], log: true)")
        #expect(topology.firewall?.quote(rule: -1) == "default (drop)")
    }

    @Test func listsHaveABound() {
        let many = (0..<257).map { "10.0.\($0 / 256).\($0 % 256)" }.joined(separator: ", ")
        let result = TopologyLoader.parse(yaml: Self.yaml(rules: "        - { action: allow, src: [\(many)] }"), file: "big.yaml")
        guard case .failure(let errors) = result else {
            Issue.record("257 entries were accepted")
            return
        }
        #expect(errors.description.contains("src has 257 entries; at most 256 are allowed"), "\(errors)")
    }
}
