import Foundation
import Testing

/// A few end-to-end runs of the real `tapestry` binary: exit codes, where output goes, and that
/// the captures it writes are readable by tcpdump.
@Suite struct CLITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static var binary: URL? {
        let candidates = [
            Bundle.main.bundleURL.appendingPathComponent("tapestry"),
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("tapestry"),
            root.appendingPathComponent(".build/debug/tapestry"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil) throws -> Outcome {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.currentDirectoryURL = root
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    func tapestry(_ arguments: String...) throws -> Outcome { try tapestry(arguments) }

    func tapestry(_ arguments: [String]) throws -> Outcome {
        let binary = try #require(Self.binary, "the tapestry binary was not found next to the tests")
        return try Self.run(binary, arguments)
    }

    /// `graph`: DOT and Mermaid on standard output, SVG through Graphviz into a file (written
    /// whole or not at all), a clear error without `dot`, and nothing written for an invalid file.
    @Test func graphDrawsATopology() throws {
        let dot = try tapestry("graph", "topologies/office.yaml")
        #expect(dot.status == 0 && dot.stdout.hasPrefix("graph \"office\" {") && dot.stdout.contains("p3 -- n1 [label=\"tagged\"];"), "\(dot.stdout)")
        let mermaid = try tapestry("graph", "topologies/office.yaml", "--format", "mermaid")
        #expect(mermaid.status == 0 && mermaid.stdout.hasPrefix("flowchart LR\n") && mermaid.stdout.contains("p3 ---|\"native\"| n0"))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tapestry-graph-\(getpid()).svg")
        defer { try? FileManager.default.removeItem(at: file) }
        let hasDot = ["/usr/bin/dot", "/usr/local/bin/dot"].contains { FileManager.default.isExecutableFile(atPath: $0) }
        if hasDot {
            let svg = try tapestry("graph", "topologies/load-balancer.yaml", "--format", "svg", "--output", file.path)
            #expect(svg.status == 0, "\(svg.stderr)")
            let text = try String(contentsOf: file, encoding: .utf8)
            #expect(text.hasPrefix("<?xml") && text.contains("<svg") && text.contains("load balancer site6"), "\(text.prefix(200))")
        } else {
            print("graphDrawsATopology: SVG part skipped: Graphviz's dot is not installed (scripts/setup-debian.sh installs it)")
        }
        // The README's picture is this command's output, so it cannot go stale.
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let drawn = try tapestry("graph", "topologies/load-balancer.yaml", "--format", "mermaid")
        #expect(readme.contains("```mermaid\n" + drawn.stdout + "```"), "README.md's picture differs from `tapestry graph topologies/load-balancer.yaml --format mermaid`")
        let binary = try #require(Self.binary)
        let noDot = try Self.run(binary, ["graph", "topologies/office.yaml", "--format", "svg"], environment: ["PATH": "/nonexistent"])
        #expect(noDot.status == 1 && noDot.stderr.contains("--format svg needs Graphviz's dot"), "\(noDot.stderr)")
        let invalid = FileManager.default.temporaryDirectory.appendingPathComponent("tapestry-graph-bad-\(getpid()).yaml")
        try "name: Bad\nnetworks:\n  web: { vlan: 5000 }\nports: {}\n".write(to: invalid, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: invalid) }
        let unwritten = file.appendingPathExtension("never")
        let refused = try tapestry("graph", invalid.path, "--output", unwritten.path)
        #expect(refused.status == 1 && refused.stderr.contains("3:16: error:"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: unwritten.path))
    }

    /// The systemd unit passes `systemd-analyze verify` without a word (warnings about a bad
    /// value do not change its exit status, so any output fails), with its binary path pointed
    /// at this build.
    @Test func systemdUnitVerifies() throws {
        let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let analyze else {
            print("systemdUnitVerifies: skipped: systemd-analyze is not installed")
            return
        }
        let binary = try #require(Self.binary)
        let unit = try String(contentsOf: Self.root.appendingPathComponent("deploy/tapestry@.service"), encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/tapestry run /etc/tapestry/%i.yaml"))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tapestry-unit-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("tapestry@lab.service")
        try unit.replacingOccurrences(of: "/usr/local/bin/tapestry", with: binary.path).write(to: file, atomically: true, encoding: .utf8)
        let result = try Self.run(URL(fileURLWithPath: analyze), ["verify", file.path])
        #expect(result.status == 0 && result.stdout.isEmpty && result.stderr.isEmpty, "\(result.stdout)\(result.stderr)")
    }

    /// `--version` and `version` say the release and the commit the binary was built from (in a
    /// git checkout; "unknown" outside one).
    @Test func versionNamesTheCommit() throws {
        let flag = try tapestry("--version")
        let command = try tapestry("version")
        #expect(flag.status == 0 && command.status == 0 && flag.stdout == command.stdout)
        let inCheckout = FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(".git").path)
        let text = flag.stdout
        #expect(text.hasPrefix("0.1.0 (commit ") && text.hasSuffix(")\n"), "\(text)")
        var commit = text.dropFirst("0.1.0 (commit ".count).dropLast(2)
        if commit.hasSuffix("-dirty") { commit = commit.dropLast("-dirty".count) }
        if inCheckout {
            #expect(commit.count == 12 && commit.allSatisfy(\.isHexDigit), "\(text)")
        } else {
            #expect(commit == "unknown", "\(text)")
        }
    }

    /// Invalid fixtures that only `check` can refuse: what is wrong is a relation between values
    /// (a name defined elsewhere, a value used twice, an address's family or host bits, a range's
    /// order), which a JSON Schema of single values does not express. Exact: a fixture the schema
    /// starts refusing must leave this list.
    static let refusedByCheckOnly: Set<String> = [
        "duplicate-key-in-flow-mapping", "duplicate-network-name",  // JSON has no duplicate keys
        "firewall-bad-cidr-address", "firewall-bad-cidr-length", "firewall-host-bits-set", "firewall-icmp-with-ipv6",
        "firewall-dport-range-reversed", "lb-backend-is-vip", "lb-backend-outside-prefix", "lb-duplicate-backends",
        "lb-family-mismatch", "lb-health-tcp-on-udp", "lb-health-timeout", "lb-vip-not-address", "misspelled-network",
        "native-not-in-trunk", "port-undefined-network", "socket-path-shared", "socket-peers-on-unix",
        "trunk-undefined-network", "vlan-reused",
    ]

    /// `tapestry schema` through a real JSON Schema validator (python3-jsonschema, as an editor's
    /// YAML language server uses it) and through `check`, over every valid example and every
    /// invalid fixture: valid files pass both; invalid ones fail both, except the listed few.
    /// The billion-laughs fixtures stay out: they test the loader's YAML budget, and expanding
    /// their aliases into JSON is exactly the blow-up they are made of.
    @Test func schemaAgreesWithCheck() throws {
        let python = URL(fileURLWithPath: "/usr/bin/python3")
        guard FileManager.default.isExecutableFile(atPath: python.path),
            try Self.run(python, ["-c", "import jsonschema, yaml"]).status == 0
        else {
            print("schemaAgreesWithCheck: skipped: python3 with jsonschema and yaml is not installed (apt-get install python3-jsonschema python3-yaml)")
            return
        }
        let schema = FileManager.default.temporaryDirectory.appendingPathComponent("tapestry-schema-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: schema) }
        let printed = try tapestry("schema")
        #expect(printed.status == 0)
        try printed.stdout.write(to: schema, atomically: true, encoding: .utf8)
        func yamlFiles(_ directory: String) -> [String] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent(directory).path)) ?? []
            return names.filter { $0.hasSuffix(".yaml") }.sorted().map { "\(directory)/\($0)" }
        }
        let scenarios = "Tests/TapestryReplayTests/Scenarios"
        let scenarioTopologies = ((try? FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent(scenarios).path)) ?? [])
            .sorted().map { "\(scenarios)/\($0)/topology.yaml" }
            .filter { FileManager.default.fileExists(atPath: Self.root.appendingPathComponent($0).path) }
        let valid = yamlFiles("topologies") + yamlFiles("Tests/TapestryTopologyTests/Fixtures/valid") + ["examples/office/topology.yaml"]
            + scenarioTopologies
        let invalid = yamlFiles("Tests/TapestryTopologyTests/Fixtures/invalid").filter { !$0.contains("billion-laughs") }
        #expect(valid.count >= 12 && invalid.count >= 60, "\(valid.count) valid, \(invalid.count) invalid")
        let result = try Self.run(python, ["scripts/schema_check.py", schema.path] + valid + invalid)
        #expect(result.status == 0, "\(result.stderr)")
        var verdicts: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") {
            guard let colon = line.range(of: ": ") else { continue }
            verdicts[String(line[..<colon.lowerBound])] = String(line[colon.upperBound...])
        }
        for file in valid {
            #expect(verdicts[file] == "valid", "\(file): the schema says \(verdicts[file] ?? "nothing")")
            #expect(try tapestry("check", file).status == 0, "\(file): check refuses it")
        }
        var acceptedBySchema: Set<String> = []
        for file in invalid {
            let name = String(file.split(separator: "/").last!.dropLast(".yaml".count))
            let verdict = try #require(verdicts[file], "\(file): no verdict")
            #expect(try tapestry("check", file).status == 1, "\(file): check accepts it")
            if verdict == "valid" { acceptedBySchema.insert(name) }
        }
        #expect(acceptedBySchema == Self.refusedByCheckOnly,
            "accepted by the schema but not listed: \(acceptedBySchema.subtracting(Self.refusedByCheckOnly).sorted()); listed but refused: \(Self.refusedByCheckOnly.subtracting(acceptedBySchema).sorted())")
    }

    /// The bash script `completions` prints, driven as bash drives it: ctl's commands and filters,
    /// the topology's ports for `--in PORT=` and then captures, topology files for `check`.
    @Test func completionsCompletePortsCapturesAndCtl() throws {
        let binary = try #require(Self.binary)
        for shell in ["bash", "zsh", "fish"] {
            let script = try tapestry("completions", shell)
            #expect(script.status == 0 && script.stdout.contains("tapestry") && script.stdout.count > 1000, "\(shell)")
        }
        #expect(try tapestry("completions", "tcsh").status == 64)
        let driver = """
            source <("$TAPESTRY" completions bash)
            tapestry() { "$TAPESTRY" "$@"; }
            complete_words() {
              COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
              COMPREPLY=(); _tapestry tapestry "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"; echo "${COMPREPLY[*]}"
            }
            complete_words tapestry ctl ""
            complete_words tapestry ctl conntrack pro
            complete_words tapestry replay topologies/office.yaml --in p
            complete_words tapestry replay topologies/office.yaml --in pc1=examples/office/in/d
            complete_words tapestry check topologies/off
            """
        let result = try Self.run(URL(fileURLWithPath: "/bin/bash"), ["-c", driver], environment: ["TAPESTRY": binary.path, "PATH": "/usr/bin:/bin"])
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(result.status == 0 && lines.count >= 5, "\(result.stdout)\(result.stderr)")
        guard lines.count >= 5 else { return }
        #expect(lines[0] == "show stats rules fdb conntrack lb reload trace")
        #expect(lines[1] == "proto=tcp proto=udp proto=icmp proto=icmpv6")
        #expect(lines[2] == "pc1= pc2=")
        #expect(lines[3] == "pc1=examples/office/in/db1.pcap")
        #expect(lines[4] == "topologies/office.yaml")
    }

    /// A `control:` path in a directory that does not exist is an error that names it; the
    /// directory is not created (only the default path's directory is the switch's to make).
    @Test func controlPathInAMissingDirectoryIsAnError() throws {
        let missing = "/tmp/tapestry-missing-\(getpid())/sub"
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tapestry-control-\(getpid()).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try """
            name: ctl
            control: \(missing)/x.sock
            networks: { lan: { vlan: 10 } }
            ports: { vm: { socket: /tmp/tapestry-control-\(getpid())-vm.sock, network: lan } }
            """.write(to: file, atomically: true, encoding: .utf8)
        let result = try tapestry("run", file.path)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("control socket \(missing)/x.sock: the directory \(missing) does not exist; create it, or leave `control:` out for the default path"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/tapestry-missing-\(getpid())"), "the directory was created")
    }

    @Test func checkValidPrintsASummary() throws {
        let result = try tapestry("check", "topologies/office.yaml")
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("Topology 'office' is valid: 2 networks"))
        #expect(result.stderr.isEmpty)
    }

    @Test func checkInvalidPrintsPositionsAndExits1() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tapestry-cli-\(getpid()).yaml")
        try "name: Bad\nnetworks:\n  web: { vlan: 5000 }\nports: {}\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try tapestry("check", file.path)
        #expect(result.status == 1)
        let lines = result.stderr.split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(lines)")
        #expect(lines.first?.hasPrefix("\(file.path):1:7: error: name 'Bad'") == true)
        #expect(lines.allSatisfy { $0.hasPrefix(file.path + ":") && $0.contains(": error: ") })
        #expect(result.stdout.isEmpty)
    }

    @Test func usageErrorsExit64() throws {
        #expect(try tapestry("replay", "topologies/office.yaml").status == 64, "--out missing")
        #expect(try tapestry("replay", "topologies/office.yaml", "--in", "pc1", "--out", "/tmp/x").status == 64)
        #expect(try tapestry("frobnicate").status == 64)
        let twice = try tapestry(
            "replay", "topologies/office.yaml", "--in", "pc1=a.pcap", "--out", "/tmp/x", "--expect", "pc1=a.pcap",
            "--expect", "pc1=b.pcap")
        #expect(twice.status == 64 && twice.stderr.contains("more than once"))
        #expect(try tapestry("--help").status == 0)
        #expect(try tapestry("replay", "--help").stdout.contains("--expect"))
    }

    @Test func replayTheBundledExampleAndReadItWithTcpdump() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tapestry-cli-out-\(getpid())")
        defer { try? FileManager.default.removeItem(at: out) }
        var arguments = ["replay", "topologies/office.yaml", "--out", out.path]
        for port in ["pc1", "pc2", "db1", "uplink"] {
            arguments += ["--in", "\(port)=examples/office/in/\(port).pcap", "--expect", "\(port)=examples/office/expect/\(port).pcap"]
        }
        let binary = try #require(Self.binary)
        let result = try Self.run(binary, arguments)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("drops: vlan 2, invalid 1"))
        #expect(result.stdout.contains("expect: all 4 port captures match"))

        let json = try Self.run(binary, arguments + ["--json"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["dropped"] as? Int == 3)

        let tcpdump = ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let tcpdump else {
            print("skipping the tcpdump check: tcpdump is not installed (scripts/setup-debian.sh installs it)")
            return
        }
        let read = try Self.run(URL(fileURLWithPath: tcpdump), ["-r", out.appendingPathComponent("uplink.pcap").path, "-e", "-nn"])
        #expect(read.status == 0, "\(read.stderr)")
        #expect(read.stdout.contains("vlan 20"), "tcpdump sees the tag the switch pushed: \(read.stdout)")
    }

    @Test func packetTestsAndDecode() throws {
        let junit = FileManager.default.temporaryDirectory.appendingPathComponent("tapestry-cli-junit-\(getpid()).xml")
        defer { try? FileManager.default.removeItem(at: junit) }
        let passing = try tapestry("test", "examples/tests", "--junit", junit.path)
        #expect(passing.status == 0, "\(passing.stdout)\(passing.stderr)")
        #expect(passing.stdout.hasSuffix("16 passed, 0 failed\n"), "\(passing.stdout)")
        let xml = try String(contentsOf: junit, encoding: .utf8)
        #expect(xml.contains("<testsuite name=\"examples/tests/web-db.test.yaml\" tests=\"4\" failures=\"0\">"), "\(xml)")
        let filtered = try tapestry("test", "examples/tests", "--filter", "ssh", "--json")
        #expect(filtered.status == 0 && filtered.stdout.contains("\"passed\" : 2"), "\(filtered.stdout)")
        let missing = try tapestry("test", "no/such/folder")
        #expect(missing.status == 1 && missing.stderr.contains("no/such/folder: no such file or folder"))
        #expect(try tapestry("test").status == 64, "a path is required")
        let decoded = try tapestry("decode", "examples/office/in/pc1.pcap", "--frame", "1")
        #expect(decoded.status == 0 && decoded.stdout.hasPrefix("# frame 1: t="), "\(decoded.stdout)")
        #expect(decoded.stdout.contains("\n- eth: { src: "), "\(decoded.stdout)")
        let past = try tapestry("decode", "examples/office/in/pc1.pcap", "--frame", "999")
        #expect(past.status == 1 && past.stderr.contains("there is no frame 999"), "\(past.stderr)")
        #expect(try tapestry("decode", "topologies/office.yaml").status == 1, "not a capture")
        let tracedPast = try tapestry("trace", "examples/office/topology.yaml", "--in", "pc1=examples/office/in/pc1.pcap", "--frame", "999")
        #expect(tracedPast.status == 1 && tracedPast.stderr.contains("there is no frame 999") && tracedPast.stdout.isEmpty, "\(tracedPast.stderr)")
    }

    @Test func replayWithADifferenceExits1AndNamesTheField() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tapestry-cli-diff-\(getpid())")
        defer { try? FileManager.default.removeItem(at: out) }
        // pc2's expected capture checked against pc1's output: they differ.
        let result = try tapestry(
            "replay", "topologies/office.yaml", "--in", "pc1=examples/office/in/pc1.pcap", "--in",
            "pc2=examples/office/in/pc2.pcap", "--out", out.path, "--expect", "pc1=examples/office/expect/pc2.pcap")
        #expect(result.status == 1)
        #expect(result.stdout.contains("port pc1, frame 1: field eth.dst"), "\(result.stdout)")
    }

    @Test func traceExplainsEachStage() throws {
        let scenario = "Tests/TapestryReplayTests/Scenarios/lb-firewall"
        let inputs = ["b1", "b2", "c"].flatMap { ["--in", "\($0)=\(scenario)/in/\($0).pcap"] }
        let all = try tapestry(["trace", "\(scenario)/topology.yaml"] + inputs)
        #expect(all.status == 0, "\(all.stderr)")
        #expect(all.stdout.contains("frame 3: port c"))
        #expect(all.stdout.contains("connection #0 (original direction): none -> SYN_SENT; new, allowed by rule 1"))
        #expect(all.stdout.contains("to backend 10.0.10.11:8080 (new connection, next in round robin)"))
        #expect(all.stdout.contains("reply from backend 10.0.10.11:8080: source rewritten to 10.0.10.100:80"))
        let one = try tapestry(["trace", "\(scenario)/topology.yaml"] + inputs + ["--frame", "8"])
        let lines = one.stdout.split(separator: "\n")
        #expect(lines.count == 3, "\(one.stdout)")
        #expect(lines.last?.contains("firewall      dropped (firewall): new connection; no rule matched and default is drop") == true)
    }

    @Test func replayErrorsExit1WithAMessage() throws {
        let result = try tapestry("replay", "topologies/office.yaml", "--in", "nosuch=examples/office/in/pc1.pcap", "--out", "/tmp/tapestry-never")
        #expect(result.status == 1)
        #expect(result.stderr.contains("no port named 'nosuch'"))
        let typo = try tapestry("replay", "topologies/office.yaml", "--in", "pcl=examples/office/in/pc1.pcap", "--out", "/tmp/tapestry-never")
        #expect(typo.status == 1 && typo.stderr.contains("no port named 'pcl' in the topology (did you mean 'pc1'?) (ports: pc1, pc2, db1, uplink)"), "\(typo.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/tapestry-never"))
        let missing = try tapestry("check", "topologies/does-not-exist.yaml")
        #expect(missing.status == 1 && missing.stderr.contains("does-not-exist.yaml:1:1: error: no such file"))
    }

    /// `ctl` checks a request before it connects: bad usage exits 64 even with no switch running.
    @Test func ctlRefusesBadUsageBeforeConnecting() throws {
        let binary = try #require(Self.binary)
        let socket = "/tmp/tapestry-cli-test-\(getpid())-none.sock"
        for arguments in [["frobnicate"], ["show", "--bogus"], ["conntrack", "proto=tpc"], ["conntrack", "state=OPEN"],
                          ["fdb", "flush", "vlan=10"], ["trace", "a", "0"], ["lb", "drain", "web"]] {
            let outcome = try Self.run(binary, ["ctl", "--control", socket] + arguments)
            #expect(outcome.status == 64, "\(arguments): \(outcome.stderr)")
            #expect(outcome.stderr.contains("usage: tapestry ctl"), "\(arguments): \(outcome.stderr)")
        }
        // A valid request gets as far as the socket: nothing listens there.
        let valid = try Self.run(binary, ["ctl", "--control", socket, "conntrack", "flush", "proto=tcp"])
        #expect(valid.status == 1 && valid.stderr.contains("no switch listening"), "\(valid.stderr)")
    }
}
