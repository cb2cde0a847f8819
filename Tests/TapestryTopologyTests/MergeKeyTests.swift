import TapestryTopology
import Testing

/// YAML's merge key (`<<`), as docker-compose and GitLab CI files use it: a mapping takes the
/// entries of the mapping an alias names; keys written in the mapping win, and in a list of
/// mappings the earlier one wins.
@Suite struct MergeKeyTests {
    @Test func aPortTakesAnotherPortsKeysAndOverridesOne() throws {
        let topology = try TopologyLoader.parse(yaml: """
            name: merge
            networks: { lan: { vlan: 10 }, dmz: { vlan: 20 } }
            ports:
              a: &access { tap: ta, network: lan, netns: ns1 }
              b: { <<: *access, tap: tb }
              c: { <<: [{ network: dmz }, *access], tap: tc }
            """, file: "merge.yaml").get()
        #expect(topology.ports.map(\.name) == ["a", "b", "c"])
        #expect(topology.ports[1].attachment == .tap("tb") && topology.ports[1].mode == .access(network: "lan"))
        #expect(topology.ports[1].netns == "ns1")
        #expect(topology.ports[2].attachment == .tap("tc") && topology.ports[2].mode == .access(network: "dmz"), "the earlier mapping of the list wins")
    }

    @Test func aMergeOfSomethingElseIsAnErrorWithItsPosition() {
        let result = TopologyLoader.parse(yaml: """
            name: merge
            networks: { lan: { vlan: 10 } }
            ports:
              a: { <<: 5, tap: ta, network: lan }
            """, file: "merge.yaml")
        guard case .failure(let errors) = result else {
            Issue.record("a merge of a number loaded")
            return
        }
        #expect(errors.description.contains("merge.yaml:4:12: error: a merge key (<<) takes a mapping or a list of mappings, not"), "\(errors)")
    }

    @Test func mergedKeysAreCheckedLikeWrittenOnes() {
        let result = TopologyLoader.parse(yaml: """
            name: merge
            networks: { lan: { vlan: 10 } }
            ports:
              a: &bad { tap: ta, network: lan, natve: lan }
              b: { <<: *bad, tap: tb }
            """, file: "merge.yaml")
        guard case .failure(let errors) = result else {
            Issue.record("an unknown key loaded through a merge")
            return
        }
        // Said for a, and for b, which has it through the merge; both at the key's place.
        let found = errors.diagnostics.filter { $0.message.contains("unknown key 'natve'") }
        #expect(found.count == 2 && found[0].message.contains("port 'a'") && found[1].message.contains("port 'b'"), "\(errors)")
        #expect(found.allSatisfy { $0.line == 4 && $0.column == 36 }, "\(errors)")
    }

    /// Found by review: network names were the raw keys of `networks`, so `<<` counted as a
    /// network, a port on network "<<" loaded, and mapping it to the datapath trapped.
    @Test func aMergeKeyIsNotANetwork() throws {
        let merged = try TopologyLoader.parse(yaml: """
            name: merge
            networks:
              <<: { lan: { vlan: 10 } }
            ports:
              b: { tap: tb, network: lan }
            """, file: "merge.yaml").get()
        #expect(merged.networks.map(\.name) == ["lan"])
        let result = TopologyLoader.parse(yaml: """
            name: merge
            networks:
              <<: { lan: { vlan: 10 } }
            ports:
              a: { tap: ta, network: "<<" }
            """, file: "merge.yaml")
        guard case .failure(let errors) = result else {
            Issue.record("a port on network '<<' loaded")
            return
        }
        #expect(errors.description.contains("merge.yaml:5:26: error: network '<<' is not defined under 'networks'"), "\(errors)")
    }

    /// Found by review: a value of a megabyte quoted in every message about it (here a merge of it
    /// 20,000 times) made `check` take minutes; messages quote at most 64 bytes.
    @Test func hugeValuesAreQuotedShort() {
        let big = String(repeating: "x", count: 1 << 20)
        let yaml = "name: merge\nnetworks: { lan: { vlan: 10 } }\nports:\n  a: &s \(big)\n  b: { <<: [\(Array(repeating: "*s", count: 20_000).joined(separator: ", "))], tap: tb, network: lan }\n"
        let started = ContinuousClock.now
        let result = TopologyLoader.parse(yaml: yaml, file: "big.yaml")
        #expect(ContinuousClock.now - started < .seconds(10))
        guard case .failure(let errors) = result else {
            Issue.record("a merge of a scalar loaded")
            return
        }
        #expect(errors.diagnostics.allSatisfy { $0.message.utf8.count < 400 }, "\(errors.diagnostics.first?.message.prefix(200) ?? "")")
    }
}
