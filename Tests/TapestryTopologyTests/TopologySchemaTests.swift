import Foundation
import Testing

@testable import TapestryTopology

/// The JSON Schema against the validator: the same keys in every section, a description on each,
/// and the copy in docs/ identical to what `tapestry schema` prints. (Whether the schema and
/// `check` agree on real files is `CLITests.schemaAgreesWithCheck`, through python3-jsonschema.)
@Suite struct TopologySchemaTests {
    typealias Object = [String: Any]

    static var schema: Object {
        (try? JSONSerialization.jsonObject(with: Data(TopologySchema.json.utf8))) as? Object ?? [:]
    }

    static func definition(_ name: String) -> Object {
        ((schema["definitions"] as? Object)?[name] as? Object) ?? [:]
    }

    static func keys(_ object: Object) -> Set<String> {
        Set(((object["properties"] as? Object) ?? [:]).keys)
    }

    @Test func everySectionHasTheValidatorsKeys() throws {
        #expect(!Self.schema.isEmpty, "the schema is not JSON")
        let definitions = (Self.schema["definitions"] as? Object) ?? [:]
        let firewall = Self.definition("firewall")
        let timeouts = ((firewall["properties"] as? Object)?["timeouts"] as? Object) ?? [:]
        let loadBalancer = Self.definition("loadBalancer")
        let lbProperties = (loadBalancer["properties"] as? Object) ?? [:]
        let health = (lbProperties["health"] as? Object) ?? [:]
        let backendObject = ((((lbProperties["backends"] as? Object)?["items"] as? Object)?["oneOf"] as? [Any])?
            .compactMap { $0 as? Object }.first { $0["properties"] != nil }) ?? [:]
        #expect(Self.keys(Self.schema) == Set(TopologyValidator.topLevelKeys))
        #expect(Self.keys(Self.definition("network")) == ["vlan", "vni"])
        #expect(Self.keys(Self.definition("port")) == Set(TopologyValidator.portKeys))
        #expect(Self.keys(Self.definition("vxlan")) == Set(TopologyValidator.vxlanKeys))
        #expect(Self.keys(firewall) == Set(TopologyValidator.firewallKeys))
        #expect(Self.keys(timeouts) == Set(Topology.Firewall.defaultTimeouts.map(\.name)))
        #expect(Self.keys(Self.definition("rule")) == Set(TopologyValidator.ruleKeys))
        #expect(Self.keys(loadBalancer) == Set(TopologyValidator.loadBalancerKeys))
        #expect(Self.keys(health) == Set(TopologyValidator.healthKeys))
        #expect(Self.keys(backendObject) == ["address", "weight"])
        #expect(definitions.count > 10)
    }

    /// Every key of every object, wherever it sits, says what it is for (an editor shows it on hover).
    @Test func everyKeyHasADescription() {
        var missing: [String] = []
        func walk(_ value: Any, _ path: String) {
            if let object = value as? Object {
                if let properties = object["properties"] as? Object {
                    for (key, property) in properties {
                        let description = (property as? Object)?["description"] as? String ?? ""
                        if description.count < 10 { missing.append("\(path)/\(key)") }
                    }
                }
                // Under `dependencies` sit conditions on other keys, not keys.
                for (key, child) in object where key != "dependencies" { walk(child, "\(path)/\(key)") }
            } else if let array = value as? [Any] {
                for (index, child) in array.enumerated() { walk(child, "\(path)/\(index)") }
            }
        }
        walk(Self.schema, "")
        #expect(missing.isEmpty, "keys without a description: \(missing.sorted())")
    }

    @Test func docsCopyIsCurrent() throws {
        let file = FixtureFiles.testDirectory().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/topology.schema.json")
        let text = try String(contentsOf: file, encoding: .utf8)
        #expect(text == TopologySchema.json + "\n", "docs/topology.schema.json is stale: tapestry schema > docs/topology.schema.json")
    }
}
