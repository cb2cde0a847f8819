import ArgumentParser
import Foundation
import TapestryLab
import TapestryTopology

#if canImport(Glibc)
import Glibc
#endif

extension Tapestry {
    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A live demonstration: namespaces as VMs, a running switch, ping within and across networks.",
            discussion: """
                For every tap port with `netns:` in the topology (default: topologies/demo.yaml) it creates that \
                network namespace, starts `tapestry run` on the topology, gives each host an address in \
                10.0.0.0/24, pings every pair of hosts, and shows which pairs reach each other: hosts on one \
                network do, hosts on different networks do not. Then it stops the switch and removes every \
                namespace it created. Needs root.
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

        func run() throws {
            guard geteuid() == 0 else {
                printError("tapestry demo: needs root (network namespaces and TAP devices); try: sudo \(CommandLine.arguments[0]) demo")
                throw ExitCode(1)
            }
            let topology = file ?? Self.bundledDemo
            let loaded = try loadTopologyOrExit(topology)
            let hosts = loaded.ports.compactMap { port -> (port: String, tap: String, netns: String, network: String)? in
                guard case .tap(let tap) = port.attachment, let netns = port.netns, case .access(let network) = port.mode
                else { return nil }
                return (port.name, tap, netns, network)
            }
            guard hosts.count >= 2 else {
                printError("tapestry demo: the topology needs at least two access tap ports with netns")
                throw ExitCode(1)
            }
            for host in hosts where FileManager.default.fileExists(atPath: "/run/netns/\(host.netns)") {
                printError("tapestry demo: namespace '\(host.netns)' already exists; remove it (ip netns del \(host.netns)) or pick another topology")
                throw ExitCode(1)
            }
            let lab = Lab(files: "tapestry-demo-\(getpid())")
            defer {
                let created = lab.namespaces
                lab.tearDown()
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
            for (index, host) in hosts.enumerated() {
                lab.sh("ip -n \(host.netns) addr add 10.0.0.\(index + 1)/24 dev \(host.tap)")
                print("  \(host.port): 10.0.0.\(index + 1) on network \(host.network)")
            }
            var surprises = 0
            for (i, from) in hosts.enumerated() {
                for (j, to) in hosts.enumerated() where j > i {
                    let expected = from.network == to.network
                    let ping = lab.sh("ping -c 3 -i 0.2 -W 1 10.0.0.\(j + 1)", in: from.netns)
                    let reached = ping.status == 0
                    let summary = ping.output.split(separator: "\n").first { $0.contains("packets transmitted") }
                        .map { String($0) } ?? ""
                    let verdict: String
                    switch (reached, expected) {
                    case (true, true): verdict = "reaches it (same network): \(summary)"
                    case (false, false): verdict = "cannot reach it (different networks), as it should be"
                    case (true, false): verdict = "REACHES it across networks: unexpected!"
                    case (false, true): verdict = "CANNOT reach it on the same network: unexpected! \(summary)"
                    }
                    if reached != expected { surprises += 1 }
                    print("ping \(from.port) -> \(to.port): \(verdict)")
                }
            }
            let status = lab.stopSwitch()
            let stopped = lab.log.split(separator: "\n").last { $0.contains("stopped on") }
                .flatMap { line in line.range(of: "stopped on").map { String(line[$0.lowerBound...]) } } ?? ""
            print("switch stopped (exit \(status.map { "\($0)" } ?? "killed")): \(stopped)")
            if surprises > 0 {
                printError("tapestry demo: \(surprises) pair(s) did not behave as the topology says")
                throw ExitCode(1)
            }
        }
    }
}
