import ArgumentParser
import Foundation
import TapestryLab
import TapestryProcess
import TapestryTopology
import TapestryWire

#if canImport(Glibc)
import Glibc
#endif

extension Tapestry {
    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A live demonstration: namespaces as VMs on a running switch, its networks, firewall and load balancer.",
            discussion: """
                For every tap port with `netns:` in the topology it creates that network namespace, starts \
                `tapestry run` on the topology and gives the hosts 10.0.0.1, 10.0.0.2, ... in port order. \
                Then: every pair pings (hosts on one network reach each other, hosts on different networks \
                do not); each TCP load balancer whose backends are hosts gets a small web server on each, and \
                the first other host fetches the VIP twice per backend (the answers alternate); with a \
                firewall, the first host connects to a port the rules allow and one they refuse, and \
                `tapestry ctl trace` shows, stage by stage, why the refused connection's SYN was dropped. \
                Each result is compared with what the topology says; the exit status is 1 when one differs. \
                Then it stops the switch and removes every namespace and file it made. Needs root.
                """
        )

        @Argument(
            help: "The topology to demonstrate (default: topologies/demo.yaml here, else the one installed with tapestry).",
            completion: Complete.topology)
        var file: String?

        /// topologies/demo.yaml in a checkout; an installed binary's is PREFIX/share/tapestry/topologies/demo.yaml.
        static var bundledDemo: String {
            let local = "topologies/demo.yaml"
            if FileManager.default.fileExists(atPath: local) { return local }
            let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            let installed = binary.deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("share/tapestry/topologies/demo.yaml").path
            return FileManager.default.fileExists(atPath: installed) ? installed : local
        }

        struct Host {
            var port: String
            var tap: String
            var netns: String
            var network: String
            var address: String
        }

        func run() throws {
            guard geteuid() == 0 else {
                printError("tapestry demo: needs root (network namespaces and TAP devices); try: sudo \(CommandLine.arguments[0]) demo")
                throw ExitCode(1)
            }
            let topology = file ?? Self.bundledDemo
            let loaded = try loadTopologyOrExit(topology)
            let hosts = loaded.ports.compactMap { port -> (String, String, String, String)? in
                guard case .tap(let tap) = port.attachment, let netns = port.netns, case .access(let network) = port.mode
                else { return nil }
                return (port.name, tap, netns, network)
            }.enumerated().map { Host(port: $1.0, tap: $1.1, netns: $1.2, network: $1.3, address: "10.0.0.\($0 + 1)") }
            guard hosts.count >= 2, hosts.count <= 250 else {
                printError("tapestry demo: the topology needs 2 to 250 access tap ports with netns")
                throw ExitCode(1)
            }
            for host in hosts where FileManager.default.fileExists(atPath: "/run/netns/\(host.netns)") {
                printError("tapestry demo: namespace '\(host.netns)' already exists; remove it (ip netns del \(host.netns)) or pick another topology")
                throw ExitCode(1)
            }
            let lab = Lab(files: "tapestry-demo-\(getpid())")
            let webRoot = NSTemporaryDirectory() + "tapestry-demo-\(getpid())-www"
            defer {
                let created = lab.namespaces
                lab.tearDown()
                try? FileManager.default.removeItem(atPath: webRoot)
                if !created.isEmpty { print("removed namespaces \(created.joined(separator: ", "))") }
            }
            print("creating \(hosts.count) hosts as network namespaces: "
                + hosts.map { "\($0.port) (network \($0.network))" }.joined(separator: ", "))
            for host in hosts {
                do {
                    try lab.addNamespace(host.netns)
                } catch {
                    printError("tapestry demo: \(error)")
                    throw ExitCode(1)
                }
            }
            let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
            do {
                try lab.startSwitch(binary: binary, file: topology, timeout: 15)
            } catch {
                printError("tapestry demo: the switch did not start: \(error)")
                throw ExitCode(1)
            }
            print("switch '\(loaded.name)' is running (pid \(lab.switchPID ?? 0)) on \(topology)")
            for host in hosts {
                lab.sh("ip -n \(host.netns) addr add \(host.address)/24 dev \(host.tap)")
                print("  \(host.port): \(host.address) on network \(host.network)")
            }
            var show = Showcase(lab: lab, topology: loaded, file: topology, binary: binary, hosts: hosts, webRoot: webRoot)
            show.pingEveryPair()
            show.loadBalancers()
            show.firewall()
            let status = lab.stopSwitch()
            let stopped = lab.log.split(separator: "\n").last { $0.contains("stopped on") }
                .flatMap { line in line.range(of: "stopped on").map { String(line[$0.lowerBound...]) } } ?? ""
            print("switch stopped (exit \(status.map { "\($0)" } ?? "killed")): \(stopped)")
            if show.surprises > 0 {
                printError("tapestry demo: \(show.surprises) result(s) differ from what the topology says")
                throw ExitCode(1)
            }
        }
    }
}

/// The demonstration's steps on a running lab, each result compared with what the topology says.
private struct Showcase {
    let lab: Lab
    let topology: Topology
    let file: String
    let binary: String
    let hosts: [Tapestry.Demo.Host]
    let webRoot: String
    var surprises = 0
    /// host port name -> TCP ports it serves.
    var serving: [String: Set<UInt16>] = [:]

    init(lab: Lab, topology: Topology, file: String, binary: String, hosts: [Tapestry.Demo.Host], webRoot: String) {
        self.lab = lab
        self.topology = topology
        self.file = file
        self.binary = binary
        self.hosts = hosts
        self.webRoot = webRoot
    }

    mutating func check(_ happened: Bool, expected: Bool) {
        if happened != expected { surprises += 1 }
    }

    mutating func pingEveryPair() {
        for (i, from) in hosts.enumerated() {
            for to in hosts[(i + 1)...] {
                let sameNetwork = from.network == to.network
                let firewall = decision(proto: .icmp, network: from.network, from: from.address, to: to.address, port: nil)
                let expected = sameNetwork && firewall?.allowed != false
                let ping = lab.sh("ping -c 3 -i 0.2 -W 1 \(to.address)", in: from.netns)
                let reached = ping.status == 0
                let summary = ping.output.split(separator: "\n").first { $0.contains("packets transmitted") }.map(String.init) ?? ""
                let verdict: String
                switch (reached, expected) {
                case (true, true): verdict = "reaches it (same network): \(summary)"
                case (false, false) where !sameNetwork: verdict = "cannot reach it (different networks), as it should be"
                case (false, false): verdict = "cannot reach it: the firewall drops ping (\(firewall?.by ?? "")), as it should"
                case (true, false): verdict = "REACHES it: unexpected!"
                case (false, true): verdict = "CANNOT reach it on the same network: unexpected! \(summary)"
                }
                check(reached, expected: expected)
                print("ping \(from.port) -> \(to.port): \(verdict)")
            }
        }
    }

    /// A web server on `host` at `port` whose page names the host (busybox httpd).
    mutating func serve(_ host: Tapestry.Demo.Host, port: UInt16) -> Bool {
        if serving[host.port]?.contains(port) == true { return true }
        let directory = "\(webRoot)/\(host.port)"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        guard (try? "\(host.port)\n".write(toFile: directory + "/index.html", atomically: true, encoding: .utf8)) != nil,
            (try? lab.background("exec busybox httpd -f -p \(port) -h \(directory)", in: host.netns)) != nil
        else { return false }
        for _ in 0..<50 {
            if !lab.sh("ss -Hltn 'sport = :\(port)'", in: host.netns).output.isEmpty {
                serving[host.port, default: []].insert(port)
                return true
            }
            usleep(50_000)
        }
        return false
    }

    func fetch(_ url: String, from host: Tapestry.Demo.Host, seconds: Int = 3) -> String? {
        let result = lab.sh("curl -s --max-time \(seconds) \(url)", in: host.netns, timeout: Double(seconds + 2))
        return result.status == 0 ? result.output.trimmingCharacters(in: .whitespacesAndNewlines) : nil
    }

    mutating func loadBalancers() {
        for balancer in topology.loadBalancers where balancer.proto == .tcp {
            guard case .v4 = balancer.vip else { continue }
            let servers = balancer.backends.compactMap { backend in hosts.first { $0.address == backend.address.description } }
            guard servers.count == balancer.backends.count,
                let client = hosts.first(where: { host in host.network == balancer.network && !servers.contains { $0.port == host.port } })
            else {
                print("load balancer \(balancer.name): skipped (its backends are not all demo hosts, or no other host is on \(balancer.network))")
                continue
            }
            for (server, backend) in zip(servers, balancer.backends) where !serve(server, port: backend.port) {
                print("load balancer \(balancer.name): could not start a web server on \(server.port)")
                surprises += 1
                return
            }
            let vip = "\(balancer.vip):\(balancer.port)"
            let answers = (0..<(2 * servers.count)).map { _ in fetch("http://\(vip)/", from: client) ?? "(no answer)" }
            let names = servers.map(\.port)
            // Equal weights: smooth weighted round robin takes the backends in order, from the first.
            let expected = balancer.backends.allSatisfy { $0.weight == 1 } ? names + names : nil
            let alternates = expected.map { answers == $0 } ?? (Set(answers) == Set(names))
            check(alternates, expected: true)
            print("curl \(vip) (load balancer \(balancer.name)) from \(client.port), \(answers.count) times: "
                + answers.joined(separator: ", ")
                + (alternates ? " (round robin over \(names.joined(separator: " and ")))" : ": unexpected!"))
        }
    }

    mutating func firewall() {
        guard let rules = topology.firewall else { return }
        let from = hosts[0]
        guard let to = hosts.dropFirst().first(where: { $0.network == from.network }) else { return }
        let candidates: [UInt16] = (topology.loadBalancers.map(\.backends).joined().map(\.port)) + [80, 443, 8080, 22, 23, 5432]
        let decided = candidates.compactMap { port in
            decision(proto: .tcp, network: from.network, from: from.address, to: to.address, port: port).map { (port, $0) }
        }
        guard let allowed = decided.first(where: { $0.1.allowed }), let refused = decided.first(where: { !$0.1.allowed }) else {
            print("firewall (default \(rules.defaultAction)): skipped (no port the rules both allow and refuse between \(from.port) and \(to.port))")
            return
        }
        for port in [allowed.0, refused.0] where !serve(to, port: port) {
            print("firewall: could not start a web server on \(to.port) port \(port)")
            surprises += 1
            return
        }
        let passed = fetch("http://\(to.address):\(allowed.0)/", from: from) != nil
        check(passed, expected: true)
        print("connect \(from.port) -> \(to.port) port \(allowed.0): "
            + (passed ? "allowed" : "NOT allowed: unexpected!") + " by \(allowed.1.by)")
        // Armed before the connection, so the next frame from the host is the refused SYN.
        let trace = try? ChildProcess(binary, ["ctl", "--topology", file, "trace", from.port, "1", "5"])
        usleep(500_000)
        let refusedPassed = fetch("http://\(to.address):\(refused.0)/", from: from, seconds: 2) != nil
        check(refusedPassed, expected: false)
        print("connect \(from.port) -> \(to.port) port \(refused.0) (a server listens there): "
            + (refusedPassed ? "ALLOWED: unexpected!" : "refused by \(refused.1.by): the SYN never reaches it"))
        guard let trace else { return }
        let traced = trace.waitForOutput(timeout: 8)
        let lines = traced.output.split(separator: "\n", omittingEmptySubsequences: true)
        let explainsDrop = traced.status == 0 && lines.contains { $0.contains("drop") }
        check(explainsDrop, expected: true)
        print("tapestry ctl trace \(from.port) 1 (armed before that connection):")
        for line in lines { print("    \(line)") }
    }

    /// What the topology's firewall decides for a new connection: the first matching rule or
    /// the default. Nil without a firewall, or when a rule's match depends on what the demo does
    /// not know (a source port).
    func decision(proto: Topology.Rule.Proto, network: String, from: String, to: String, port: UInt16?) -> (allowed: Bool, by: String)? {
        guard let firewall = topology.firewall, let source = IPv4Address(from), let destination = IPv4Address(to) else { return nil }
        func matches(_ prefixes: [IPPrefix], _ address: IPv4Address) -> Bool {
            prefixes.isEmpty || prefixes.contains { $0.contains(address) }
        }
        for rule in firewall.rules {
            guard rule.proto == .any || rule.proto == proto else { continue }
            if let ruleNetwork = rule.network, ruleNetwork != network { continue }
            guard matches(rule.sources, source), matches(rule.destinations, destination) else { continue }
            if !rule.destinationPorts.isEmpty {
                guard let port, rule.destinationPorts.contains(where: { $0.contains(port) }) else { continue }
            }
            if !rule.sourcePorts.isEmpty { return nil }
            return (rule.action == .allow, "the rule at \(rule.location) (\(rule.text))")
        }
        return (firewall.defaultAction == .allow, "the firewall's default (\(firewall.defaultAction.rawValue))")
    }
}
