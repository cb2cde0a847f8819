import ArgumentParser
import Logging
import TapestryPorts
import TapestryTopology

extension Tapestry {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Attach every port of a topology and switch frames until SIGINT or SIGTERM.",
            discussion: """
                Attaches every port: creates TAP devices (or attaches to persistent ones) and moves those with \
                `netns:` into that namespace (creating it when missing); listens on socket ports for QEMU \
                (`-netdev stream` over unix or TCP, `-netdev dgram`); opens packet sockets on `interface:` \
                ports; binds the UDP socket of `vxlan:` ports. Prints a line containing `ready` on standard \
                error once all are attached, serves `tapestry ctl` on the control socket (and metrics when \
                the topology asks), re-reads the topology on SIGHUP, and on SIGINT or SIGTERM detaches (TAP \
                devices and namespaces it created disappear) and exits 0. A port that cannot be attached is \
                an error naming the port; nothing is left behind. TAP, interface and netns ports need \
                CAP_NET_ADMIN (root); socket and vxlan ports need no privilege.
                """
        )

        @Argument(help: "The topology file (YAML).", completion: Complete.topology)
        var topology: String

        @Flag(name: .customLong("no-offloads"), help: "Open TAP devices without virtio-net headers and TSO (for comparison).")
        var noOffloads = false

        @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "LEVEL"))
        var logLevel: Logger.Level = .info

        func run() throws {
            let loaded = try loadTopologyOrExit(topology)
            LoggingSystem.bootstrap(StreamLogHandler.standardError)
            var logger = Logger(label: "tapestry")
            logger.logLevel = logLevel
            logger[metadataKey: "switch"] = "\(loaded.name)"
            let log = logger
            let live: LiveSwitch
            do {
                live = try LiveSwitch(topology: loaded, offloads: !noOffloads) { log.notice("\($0)") }
            } catch {
                printError("tapestry run: \(error)")
                throw ExitCode(1)
            }
            live.topologyPath = topology
            let names = loaded.ports.map(\.name).joined(separator: ", ")
            log.notice("switch '\(loaded.name)' ready: \(loaded.ports.count) ports attached (\(names))")
            let signal = live.run()
            live.detach()
            let counters = live.datapath.counters
            let framesIn = counters.ports.reduce(0) { $0 + $1.framesIn }
            let framesOut = counters.ports.reduce(0) { $0 + $1.framesOut }
            let drops = counters.drops.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.name) \($0.value)" }
            log.notice(
                "stopped on \(signal): \(framesIn) frames in, \(framesOut) out, drops: \(drops.isEmpty ? "none" : drops.joined(separator: ", "))"
            )
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
