import Foundation
import TapestryTopology
import Testing

/// Topology files are untrusted input for `check`, `run` and `reload`: aliases must not make
/// the loader's work grow exponentially. Before YAMLBudget, `tapestry check` (debug build) took
/// 0.07 s at 5 levels, 0.51 s at 7 and 1.35 s at 8 (about x2.7 per level; 10 levels, 13 lines,
/// take over 8 s); now it stops at the first alias used as a key.
@Suite struct TopologyBoundsTests {
    static func laughs(levels: Int) -> String {
        var lines = ["name: laughs", "x0: &a0 { a: 1, b: 2 }"]
        for level in 1...levels {
            let p = "*a\(level - 1)"
            lines.append("x\(level): &a\(level) { ? \(p) : 1, ? [\(p)] : 2, ? [[\(p)]] : 3, ? [[[\(p)]]] : 4 }")
        }
        lines.append("networks: { ? *a\(levels) : 1 }")
        return lines.joined(separator: "\n")
    }

    @Test func aliasesOfAliasesAsKeysAreRefusedQuickly() throws {
        let start = ContinuousClock.now
        let result = TopologyLoader.parse(yaml: Self.laughs(levels: 10), file: "laughs.yaml")
        #expect(ContinuousClock.now - start < .seconds(1))
        guard case .failure(let errors) = result else {
            Issue.record("loaded")
            return
        }
        #expect(errors.description == "laughs.yaml:3:13: error: a mapping key must be a plain name, not the alias '*a0'")
    }

    @Test func listsAndMappingsAsKeysAreRefused() {
        let result = TopologyLoader.parse(yaml: "name: x\nnetworks: { ? [a] : 1 }\n", file: "k.yaml")
        guard case .failure(let errors) = result else {
            Issue.record("loaded")
            return
        }
        #expect(errors.description == "k.yaml:2:15: error: a mapping key must be a plain name, not a list")
    }

    /// Aliases as values are fine while they repeat little: a shared port definition.
    @Test func modestAliasesStillWork() throws {
        let yaml = """
            name: shared
            networks: { lan: { vlan: 7 } }
            ports:
              a: { tap: ta, network: &lan lan }
              b: { tap: tb, network: *lan }
            """
        #expect(throws: Never.self) { try TopologyLoader.parse(yaml: yaml, file: "s.yaml").get() }
    }

    /// PortID is 16 bits (DatapathConfiguration.portID traps past 65,535 ports) and each port
    /// costs a batch of frame buffers: the validator stops at 1024.
    @Test func atMost1024Ports() {
        func yaml(_ count: Int) -> String {
            "name: many\nnetworks: { lan: { vlan: 7 } }\nports:\n"
                + (0..<count).map { "  p\($0): { tap: t\($0), network: lan }" }.joined(separator: "\n")
        }
        #expect(throws: Never.self) { try TopologyLoader.parse(yaml: yaml(1024), file: "many.yaml").get() }
        guard case .failure(let errors) = TopologyLoader.parse(yaml: yaml(1025), file: "many.yaml") else {
            Issue.record("1025 ports loaded")
            return
        }
        #expect(errors.description == "many.yaml:4:3: error: ports defines 1025 ports; at most 1024 are allowed")
    }

    /// Finding a duplicate key's second occurrence compared the key at every column of its line:
    /// quadratic, and an explicit 100,000-character key on a 200 KB line took over two minutes.
    @Test func aLongDuplicateKeyIsReportedQuickly() {
        let key = String(repeating: "k", count: 100_000)
        let yaml = "name: x\nnetworks: {? \(key) : 1, ? \(key) : 2}\nports: {}\n"
        let start = ContinuousClock.now
        let result = TopologyLoader.parse(yaml: yaml, file: "long.yaml")
        #expect(ContinuousClock.now - start < .seconds(2))
        guard case .failure(let errors) = result else {
            Issue.record("loaded")
            return
        }
        #expect(errors.diagnostics.contains { $0.message.hasPrefix("duplicate key") })
    }

    /// Each duplicated key cost a compose of the whole file (Yams stops at the first), up to 64
    /// of them: a 1.6 KB line of repeated keys took the fuzzer 13 s. Now one pass finds them all.
    @Test func manyDuplicateKeysAreReportedInOnePass() {
        let rule = "{" + (0..<20_000).map { _ in "proto: tcp" }.joined(separator: ", ") + "}"
        let yaml = "name: x\nnetworks: { lan: { vlan: 7 } }\nports: {}\nfirewall:\n  rules:\n    - \(rule)\n"
        let start = ContinuousClock.now
        let result = TopologyLoader.parse(yaml: yaml, file: "dups.yaml")
        #expect(ContinuousClock.now - start < .seconds(2))
        guard case .failure(let errors) = result else {
            Issue.record("loaded")
            return
        }
        #expect(errors.diagnostics.count == 65)
        #expect(errors.diagnostics.first?.description == "dups.yaml:6:20: error: duplicate key 'proto' (first at line 6, column 8)")
        #expect(errors.diagnostics.last?.message == "more than 64 duplicate keys; the rest are not listed")
    }

    /// Up to 64 duplicates are each reported, and the file is still validated past them.
    @Test func duplicatesAndOtherErrorsTogether() {
        let yaml = """
            name: x
            networks: { lan: { vlan: 7 }, lan: { vlan: 8 } }
            ports:
              a: { tap: t1, network: lan, network: lan }
              b: { tap: t2, network: nope }
              "c": { tap: t3, network: lan }
              'c': { tap: t4, network: lan }
            """
        guard case .failure(let errors) = TopologyLoader.parse(yaml: yaml, file: "mix.yaml") else {
            Issue.record("loaded")
            return
        }
        #expect(errors.diagnostics.map(\.description) == [
            "mix.yaml:2:31: error: duplicate key 'lan' (first at line 2, column 13)",
            "mix.yaml:4:31: error: duplicate key 'network' (first at line 4, column 17)",
            "mix.yaml:5:26: error: network 'nope' is not defined under 'networks'",
            "mix.yaml:7:3: error: duplicate key 'c' (first at line 6, column 3)",
        ], "\(errors)")
    }

    /// Found by an attacker's review: keys that already start with a marker character made the
    /// loader compose the file once per duplicate again (42 s for 400 KB), and one such key
    /// (U+E000 "firewall") was silently skipped; lines broken by a lone CR, U+0085 or U+2028 sent
    /// the overwrite to another key; an anchor before a duplicate turned into a syntax error.
    @Test func hostileDuplicateKeys() {
        func messages(_ yaml: String) -> [String] {
            guard case .failure(let errors) = TopologyLoader.parse(yaml: yaml, file: "d.yaml") else { return ["loaded"] }
            return errors.diagnostics.map(\.description)
        }
        let ports = "networks:\n  lan: { vlan: 10 }\nbogus: 1\nports:\n  a: { tap: t-a, network: lan }\n"
        #expect(messages("name: x\n\u{E000}firewall: {default: drop}\n" + ports)
            == ["d.yaml:2:1: error: a mapping key may not start with U+E000 (a private-use character)"])
        for separator in ["\r", "\r\n", "\u{85}", "\u{2028}"] {
            #expect(messages("name: x\(separator)name: y\n" + ports) == [
                "d.yaml:2:1: error: duplicate key 'name' (first at line 1, column 1)",
                "d.yaml:5:1: error: unknown key 'bogus' in the topology; allowed: version, name, mac_aging, mac_table_size, control, metrics, networks, ports, firewall, load_balancers",
            ], "separator \(separator.unicodeScalars.map { $0.value })")
        }
        #expect(messages("&x \"xname\": x\n&y \"xname\": y\n") == ["d.yaml:2:1: error: duplicate key 'xname' (first at line 1, column 1)"])
        let start = ContinuousClock.now
        let markers = (0..<64).map { String(UnicodeScalar(0xE000 + $0)!) + "a: 1" }.joined(separator: "\n")
        let big = "name: t\n" + markers + "\nz: [" + Array(repeating: "1", count: 100_000).joined(separator: ",") + "]\n\u{E000}a: 2\n"
        #expect(messages(big).first?.hasSuffix("a mapping key may not start with U+E000 (a private-use character)") == true)
        #expect(ContinuousClock.now - start < .seconds(2))
    }

    /// A test file names its topology, so the path is untrusted: /dev/zero never ends and /proc
    /// files say they have 0 bytes; only regular files of at most 16 MiB are read, and only that far.
    @Test func onlyBoundedRegularFilesAreRead() {
        guard case .failure(let zero) = TopologyLoader.load(path: "/dev/zero") else {
            Issue.record("loaded /dev/zero")
            return
        }
        #expect(zero.description == "/dev/zero:1:1: error: is not a regular file")
        let start = ContinuousClock.now
        if case .success = TopologyLoader.load(path: "/proc/self/pagemap") { Issue.record("loaded /proc/self/pagemap") }
        #expect(ContinuousClock.now - start < .seconds(10))
    }
}
