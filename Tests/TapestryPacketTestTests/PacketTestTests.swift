import Foundation
import Testing
import TapestryPacketTest

/// `tapestry test`: the bundled examples pass, a failure names the port, the frame and the
/// first differing field with both values, invalid files report every problem with its place.
@Suite struct PacketTestTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func file(_ name: String, _ text: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tapestry-packet-tests-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let inline = """
        topology:
          name: lab
          networks: { lan: { vlan: 10 } }
          ports:
            a: { tap: ta, network: lan }
            b: { tap: tb, network: lan }
            t: { tap: tt, trunk: [lan] }
          firewall:
            default: drop
            rules: [{ action: allow, proto: tcp, dport: 80 }]

        """

    @Test func theBundledExamplesPass() throws {
        let folder = Self.root.appendingPathComponent("examples/tests").path
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".test.yaml") }.sorted()
        try #require(!files.isEmpty)
        let report = PacketTestReport.run(files: files.map { folder + "/" + $0 })
        #expect(report.failed == 0, "\(report.text)")
        #expect(report.passed >= 11, "\(report.text)")
    }

    /// Replay scenarios written as packet tests (Scenarios/): the same behaviour, said in text.
    @Test func scenariosAsPacketTests() throws {
        let folder = Self.root.appendingPathComponent("Tests/TapestryPacketTestTests/Scenarios").path
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".test.yaml") }.sorted()
        try #require(!files.isEmpty)
        let report = PacketTestReport.run(files: files.map { folder + "/" + $0 })
        #expect(report.failed == 0 && report.passed >= files.count, "\(report.text)")
        #expect(files.count >= 4, "\(files)")
    }

    /// Found by review: fields a pattern got through a merge key were never compared, so this
    /// passed against a frame with another source and port.
    @Test func mergedPatternFieldsAreCompared() throws {
        let path = try Self.file("merged.test.yaml", Self.inline + """
            tests:
              - name: a merged pattern is a pattern
                frames:
                  - { port: a, eth: { src: 02:00:00:00:00:01, dst: 02:00:00:00:00:02 }, ipv4: { src: 10.0.0.1, dst: 10.0.0.2 }, tcp: { dport: 80 } }
                expect:
                  b: [{ <<: { eth: { src: 02:00:00:00:00:99 } } }]
                  t: [{ vlan: { vid: 10 }, tcp: { sport: 0, <<: { dport: 81 } } }]
            """)
        let report = PacketTestReport.run(files: [path])
        #expect(report.failed == 1, "\(report.text)")
        #expect(report.text.contains("port b, frame 1: eth.src expected 02:00:00:00:00:99, got 02:00:00:00:00:01"), "\(report.text)")
    }

    @Test func aFailureNamesPortFrameFieldAndBothValues() throws {
        let path = try Self.file("fail.test.yaml", Self.inline + """
            tests:
              - name: syn to 80 is tagged on the trunk
                frames:
                  - { port: a, eth: { src: 02:00:00:00:00:01, dst: 02:00:00:00:00:02 }, ipv4: { src: 10.0.0.1, dst: 10.0.0.2 }, tcp: { dport: 80 } }
                expect:
                  b: [{ tcp: { dport: 81 } }]
                  t: [{ vlan: { vid: 10 }, tcp: { dport: 80 } }]
              - name: nothing comes out of b
                frames:
                  - { port: a, eth: { src: 02:00:00:00:00:01 }, ipv4: { src: 10.0.0.1, dst: 10.0.0.2 }, tcp: { dport: 80 } }
                expect: { t: [{}] }
                drops: { firewall: 1 }
              - name: only this one runs with the filter
                frames:
                  - { port: a, eth: { src: 02:00:00:00:00:01 }, ipv4: { src: 10.0.0.1, dst: 10.0.0.2 }, udp: { dport: 53 } }
                expect: {}
                drops: { firewall: 1 }
            """)
        let report = PacketTestReport.run(files: [path])
        #expect(report.passed == 1 && report.failed == 2, "\(report.text)")
        let text = report.text
        #expect(text.contains("FAIL \(path)::syn to 80 is tagged on the trunk: port b, frame 1: tcp.dport expected 81, got 80"), "\(text)")
        #expect(text.contains("    port b sent 1 frame:\n      - eth: { src: 02:00:00:00:00:01, dst: 02:00:00:00:00:02, type: 0x0800 }"), "\(text)")
        #expect(text.contains("FAIL \(path)::nothing comes out of b: port b: expected 0 frames, got 1"), "\(text)")
        #expect(text.contains("also: drops firewall: expected 1, got 0"), "\(text)")
        #expect(text.contains("PASS \(path)::only this one runs with the filter"))
        #expect(text.hasSuffix("1 passed, 2 failed"))
        let filtered = PacketTestReport.run(files: [path], filter: "only this")
        #expect(filtered.passed == 1 && filtered.failed == 0)
        let junit = path + ".xml"
        try report.writeJUnit(to: junit)
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        #expect(xml.contains("<testsuite name=\"\(path)\" tests=\"3\" failures=\"2\">"), "\(xml)")
        #expect(xml.contains("<failure message=\"port b, frame 1: tcp.dport expected 81, got 80\">"), "\(xml)")
        #expect(report.json.contains("\"problem\" : \"port b, frame 1: tcp.dport expected 81, got 80\""), "\(report.json)")
    }

    @Test func theVLANAndChecksumsArePartOfThePattern() throws {
        let path = try Self.file("vlan.test.yaml", Self.inline + """
            tests:
              - name: a pattern without vlan wants no tag
                frames:
                  - { port: a, eth: { src: 02:00:00:00:00:01 }, ipv4: { src: 10.0.0.1, dst: 10.0.0.2 }, tcp: { dport: 80, checksum: 0x1234 } }
                ignore_ports: [b]
                expect: { t: [{ tcp: { dport: 80 } }] }
              - name: a forced wrong checksum is not valid
                frames:
                  - { port: a, eth: { src: 02:00:00:00:00:01 }, ipv4: { src: 10.0.0.1, dst: 10.0.0.2 }, tcp: { dport: 80, checksum: 0x1234 } }
                ignore_ports: [b]
                expect: { t: [{ vlan: { vid: 10 }, tcp: { checksum: valid } }] }
            """)
        let report = PacketTestReport.run(files: [path])
        #expect(report.text.contains("a pattern without vlan wants no tag: port t, frame 1: vlan tags expected 0, got 1"), "\(report.text)")
        #expect(report.text.contains("a forced wrong checksum is not valid: port t, frame 1: tcp.checksum expected valid, got 0x1234 (wrong)"), "\(report.text)")
    }

    @Test func anInvalidFileReportsEveryProblemAndTheOthersStillRun() throws {
        let bad = try Self.file("bad.test.yaml", Self.inline + """
            tests:
              - name: typos
                frames:
                  - { port: c, eth: { src: 02:00:00:00:00:01 }, ipv4: { src: 10.0.0.1, dst: 10.0.0.2, tll: 1 }, tcp: { dport: 80 } }
                expect: { b: [{ tcp: { dprot: 80 } }] }
                drops: { firewal: 0 }
                at: 3
            """)
        let good = try Self.file("good.test.yaml", Self.inline + """
            tests:
              - name: blocked
                frames: [{ port: a, eth: { src: 02:00:00:00:00:01 }, ipv4: { src: 10.0.0.1, dst: 10.0.0.2 }, udp: { dport: 53 } }]
                expect: {}
                drops: { firewall: 1 }
            """)
        let report = PacketTestReport.run(files: [bad, good])
        #expect(report.failed == 1 && report.passed == 1, "\(report.text)")
        let lines = report.text.split(separator: "\n").map(String.init)
        #expect(lines.prefix(5) == [
            "\(bad):14:17: error: port 'c' is not in the topology (did you mean 'a'?); ports: a, b, t",
            "\(bad):14:91: error: unknown key 'tll' in ipv4 (did you mean 'ttl'?); allowed: src, dst, ttl, tos, id, df, mf, frag, proto, checksum, options",
            "\(bad):15:28: error: unknown key 'dprot' in tcp (did you mean 'dport'?); allowed: sport, dport, seq, ack, flags, window, checksum, options",
            "\(bad):16:14: error: 'firewal' is not a drop reason (did you mean 'firewall'?); reasons: vlan, invalid, hairpin, multicast-source, no-destination, oversize, capture-truncated, tx-full, port-down, offload-unsupported, no-service, firewall, table-full, tunnel",
            "\(bad):17:5: error: unknown key 'at' in a test; allowed: name, frames, expect, drops, ignore_ports, down",
        ], "\(report.text)")
        #expect(report.text.contains("PASS \(good)::blocked"))
    }

    /// Found by an attacker's review: a quote or a fragment header compared as a whole text (its
    /// unwritten defaults too), an empty payload that could never match, an expected port that
    /// was also ignored (and so never checked), and a run of no tests that passed.
    @Test func patternsCompareOnlyWhatIsWritten() throws {
        let open = """
            topology:
              name: open
              networks: { lan: { vlan: 10 } }
              ports:
                a: { tap: ta, network: lan }
                b: { tap: tb, network: lan }
                t: { tap: tt, trunk: [lan] }

            """
        let path = try Self.file("written.test.yaml", open + """
            tests:
              - name: a quote compares its written fields
                frames:
                  - { port: a, eth: { src: 02:00:00:00:00:01, dst: 02:00:00:00:00:02 }, ipv4: { src: 10.0.0.1, dst: 10.0.0.2 },
                      icmp: { type: dest-unreach, quote: { ipv4: { src: 10.0.0.2, dst: 10.0.0.9 }, udp: { sport: 1, dport: 53 } } } }
                ignore_ports: [t]
                expect: { b: [{ icmp: { type: dest-unreach, quote: { ipv4: { dst: 10.0.0.9 }, udp: { dport: 53, checksum: valid } } } }] }
              - name: a wrong quoted port fails
                frames:
                  - { port: a, eth: { src: 02:00:00:00:00:01, dst: 02:00:00:00:00:02 }, ipv4: { src: 10.0.0.1, dst: 10.0.0.2 },
                      icmp: { type: dest-unreach, quote: { ipv4: { src: 10.0.0.2, dst: 10.0.0.9 }, udp: { sport: 1, dport: 53 } } } }
                ignore_ports: [t]
                expect: { b: [{ icmp: { quote: { udp: { dport: 54 } } } }] }
              - name: one fragment field
                frames:
                  - { port: a, eth: { src: 02:00:00:00:00:01, dst: 02:00:00:00:00:02 }, ipv6: { src: "fe80::1", dst: "fe80::2", frag: { id: 7, offset: 8, more: true } }, payload: "12345678" }
                ignore_ports: [t]
                expect: { b: [{ ipv6: { frag: { more: true } } }] }
              - name: an empty payload
                frames:
                  - { port: a, eth: { src: 02:00:00:00:00:01, dst: 02:00:00:00:00:02 }, ipv4: { src: 10.0.0.1, dst: 10.0.0.2 }, udp: { dport: 53 } }
                ignore_ports: [t]
                expect: { b: [{ udp: { dport: 53 }, payload: "" }] }
            """)
        let report = PacketTestReport.run(files: [path])
        #expect(report.passed == 3 && report.failed == 1, "\(report.text)")
        #expect(report.text.contains("FAIL \(path)::a wrong quoted port fails: port b, frame 1: icmp.quote.udp.dport expected 54, got 53"), "\(report.text)")
        let both = try Self.file("both.test.yaml", Self.inline + """
            tests:
              - name: expected and ignored
                frames: [{ port: a, eth: { src: 02:00:00:00:00:01 }, ipv4: { src: 10.0.0.1, dst: 10.0.0.2 }, udp: { dport: 53 } }]
                ignore_ports: [t, b]
                expect: { b: [{}, {}] }
            """)
        #expect(PacketTestReport.run(files: [both]).text.contains("error: port 'b' is both expected and ignored: one or the other"))
        let none = PacketTestReport.run(files: [path], filter: "no such test")
        #expect(none.ran == 0 && none.text.hasSuffix("no test ran"))
        #expect(PacketTestReport.run(files: [path], filter: "").ran == 4, "an empty filter runs everything")
    }

    /// A vxlan port's frames are its underlay's: a frame sent there names the outer source and
    /// VNI (`underlay`), an expected one may name the outer destination and VNI; floods go once
    /// to each remote; strangers and unknown VNIs are `tunnel` drops.
    @Test func vxlanPortsTakeAndSendUnderlayPackets() throws {
        let topology = """
            topology:
              name: t
              networks: { web: { vlan: 10 }, db: { vlan: 20, vni: 2020 } }
              ports:
                a: { tap: ta, network: web }
                d: { tap: td, network: db }
                dc2: { vxlan: { local: 10.0.99.1, remotes: [10.0.99.2, 10.0.99.3] }, trunk: [web, db] }
            """
        let yaml = topology + """

            tests:
              - name: through the tunnel both ways
                frames:
                  - { port: dc2, underlay: { remote: 10.0.99.3, vni: 10 }, eth: { src: 02:00:00:00:00:33, dst: ff:ff:ff:ff:ff:ff } }
                  - { port: a, at: 1, eth: { src: 02:00:00:00:00:01, dst: 02:00:00:00:00:33 }, ipv4: { src: 10.0.0.1, dst: 10.0.0.33 }, udp: { sport: 1, dport: 2 } }
                  - { port: d, at: 2, eth: { src: 02:00:00:00:00:04, dst: ff:ff:ff:ff:ff:ff } }
                  - { port: dc2, at: 3, underlay: { remote: 10.0.99.9, vni: 10 }, eth: { src: 02:00:00:00:00:99 } }
                  - { port: dc2, at: 4, underlay: { remote: 10.0.99.2, vni: 30 }, eth: { src: 02:00:00:00:00:99 } }
                expect:
                  a: [{ eth: { src: 02:00:00:00:00:33 } }]
                  dc2:
                    - { underlay: { remote: 10.0.99.3, vni: 10 }, udp: { dport: 2, checksum: valid } }
                    - { underlay: { remote: 10.0.99.2, vni: 2020 }, eth: { src: 02:00:00:00:00:04 } }
                    - { underlay: { remote: 10.0.99.3, vni: 2020 }, eth: { src: 02:00:00:00:00:04 } }
                drops: { tunnel: 2 }
            """
        let file = try PacketTestFile.parse(yaml: yaml, file: "t.test.yaml").get()
        let results = PacketTestRunner.run(file)
        #expect(results.count == 1 && results.allSatisfy { $0.passed }, "\(results)")
        // The same with the second remote's VNI wrong: the comparison says which field.
        let wrong = yaml.replacingOccurrences(of: "{ remote: 10.0.99.3, vni: 2020 }", with: "{ remote: 10.0.99.3, vni: 20 }")
        let failed = PacketTestRunner.run(try PacketTestFile.parse(yaml: wrong, file: "t.test.yaml").get())
        #expect(failed.first?.problem == "port dc2, frame 3: underlay.vni expected 20, got 2020", "\(failed)")
        #expect(failed.first?.detail.contains("  - underlay: { remote: 10.0.99.3, vni: 2020 }") == true, "\(failed)")

        let refused = topology + """

            tests:
              - name: bad underlays
                frames:
                  - { port: dc2, eth: { src: 02:00:00:00:00:01 } }
                  - { port: dc2, underlay: { remote: 10.0.99.2 }, eth: { src: 02:00:00:00:00:01 } }
                  - { port: a, underlay: { remote: 10.0.99.2 }, eth: { src: 02:00:00:00:00:01 } }
                expect: { a: [{ underlay: { vni: 10 } }] }
            """
        guard case .failure(let errors) = PacketTestFile.parse(yaml: refused, file: "t.test.yaml") else {
            Issue.record("bad underlays were accepted")
            return
        }
        let messages = errors.diagnostics.map { "\($0.line):\($0.column): \($0.message)" }
        #expect(messages.count == 4, "\(messages)")
        #expect(messages.contains { $0.hasPrefix("11:9: a frame sent at vxlan port 'dc2' needs underlay") }, "\(messages)")
        #expect(messages.contains { $0.contains("underlay needs vni: port 'dc2' carries VNIs 10, 2020") }, "\(messages)")
        #expect(messages.filter { $0.contains("underlay: is for a frame at a vxlan port; 'a' is not one") }.count == 2, "\(messages)")
    }
}
