import Foundation
import TapestryControl
import TapestryDatapath
import TapestryTopology
import TapestryWire

#if canImport(Glibc)
import Glibc
#endif

/// The control protocol: the client sends one line, `COMMAND [ARGUMENT ...]` (`ControlRequest`
/// parses it, for the switch and for `ctl` alike), and gets one JSON document back,
/// `{"ok": true, ...}` or `{"ok": false, "error": "...", "usage": true?}` (`usage`: the request
/// was wrong, `ctl` exits 64). `tapestry ctl` renders it.
///
/// Clients are served by the control thread (`ControlServer`). This side is the datapath
/// thread's: between two batches it takes the waiting jobs, each a bounded piece of work (a copy
/// of counters and names, one chunk of a table, a drain, a reload), and hands the copies back.
extension LiveSwitch {
    /// At most this many ids of the MAC table's and the connection table's slabs are copied per
    /// job, and a job stops early once it has taken `chunkBudget`: a listing's pieces stay short
    /// whatever the table's size, the build (debug is several times slower) or the machine.
    static let macChunkEntries = 4096
    static let connectionChunkEntries = 4096
    static let chunkBudget: Int64 = 100_000
    /// Jobs are taken until this much time went on them (ns); the rest wait for the next turn of
    /// the loop, after the ports' next batches.
    static let controlBudget: Int64 = 200_000

    /// Runs waiting control jobs, within `controlBudget`.
    func serveControl() {
        channel.acknowledgeJobs()
        let start = ControlServer.monotonic()
        // Wall time is what forwarding waits; the thread's CPU time is the work itself (the two
        // differ when the machine is busy and the thread is preempted in the middle of a job).
        var paused: Int64 = 0
        var worked: Int64 = 0
        var answered = false
        while let (client, job) = channel.takeJob() {
            let began = ControlServer.monotonic()
            let cpuBegan = Self.threadCPUTime()
            if let result = perform(job, for: client) {
                channel.answer(result, for: client)
                answered = true
            }
            let ended = ControlServer.monotonic()
            // A reload is the operator's own request to rebuild the switch; it is not counted.
            if case .reload = job {} else {
                paused += ended - began
                worked += Self.threadCPUTime() - cpuBegan
            }
            if ended - start >= Self.controlBudget { break }
        }
        longestControlPause = max(longestControlPause, paused)
        longestControlWork = max(longestControlWork, worked)
        controlBacklog = channel.hasJobs
        if answered { channel.wakeServer() }
    }

    private func perform(_ job: ControlJob, for client: UInt64) -> ControlResult? {
        switch job {
        case .snapshot:
            return .snapshot(snapshot())
        case .drain(let balancer, let backend, let drain):
            if let error = self.drain(balancer, backend, drain) { return .failed(error) }
            return .snapshot(snapshot())
        case .reload:
            let result = reload()
            log(result.message)
            return .reloaded(ok: result.ok, message: result.message)
        case .macEntries(let from):
            let table = datapath.macTable
            let now = Self.wallClock()
            let end = min(table.maxEntries, min(max(0, from), table.maxEntries) + Self.macChunkEntries)
            var entries: [MACTable.Entry] = []
            let next = Self.inPieces(from: from, to: end) { entries += table.entries(now: now, ids: $0) }
            return .macEntries(MACChunk(entries: entries, next: next < table.maxEntries ? next : nil, generation: reloads))
        case .connections(let from):
            let now = Self.wallClock()
            guard let table = datapath.connectionTable else {
                return .connections(ConnectionChunk(entries: [], next: nil, now: now, generation: reloads))
            }
            let end = min(table.maxEntries, min(max(0, from), table.maxEntries) + Self.connectionChunkEntries)
            var entries: [(id: Int, entry: ConnectionEntry)] = []
            entries.reserveCapacity(256)
            let next = Self.inPieces(from: from, to: end) { table.liveEntriesWithIDs(now: now.nanoseconds, ids: $0, into: &entries) }
            return .connections(ConnectionChunk(entries: entries, next: next < table.maxEntries ? next : nil, now: now, generation: reloads))
        case .trace(let port, let count, let seconds):
            return armTrace(port: port, count: count, seconds: seconds, client: client)
        case .cancelTrace:
            if pendingTrace?.client == client { pendingTrace = nil }
            return nil
        case .flushMACs(let network, let from):
            if let refusal = configuration.refusal(network: network) { return .refused(refusal) }
            let id = network.flatMap { name in configuration.networks.firstIndex { $0.name == name } }.map { NetworkID($0) }
            let table = datapath.macTable
            let end = min(table.maxEntries, min(max(0, from), table.maxEntries) + Self.macChunkEntries)
            var removed = 0
            let next = Self.inPieces(from: from, to: end) { removed += table.flush(network: id, ids: $0) }
            return .flushed(count: removed, next: next < table.maxEntries ? next : nil)
        case .flushConnections(let filter, let from):
            if let refusal = configuration.refusal(network: filter.network) { return .refused(refusal) }
            guard let table = datapath.connectionTable else { return .flushed(count: 0, next: nil) }
            let configuration = self.configuration
            let end = min(table.maxEntries, min(max(0, from), table.maxEntries) + Self.connectionChunkEntries)
            var removed = 0
            let next = Self.inPieces(from: from, to: end) { ids in
                for id in ids.clamped(to: 0..<table.maxEntries) where table.entry(id).pointee.inUse {
                    guard let fields = Self.fields(of: table.entry(id).pointee, configuration), filter.matches(fields) else { continue }
                    table.remove(id: id)
                    removed += 1
                }
            }
            return .flushed(count: removed, next: next < table.maxEntries ? next : nil)
        }
    }

    var configuration: DatapathConfiguration { datapath.configuration }

    /// A connection as `conntrack` shows it and its filters see it; nil for an entry whose
    /// network is not in `configuration` (left over across a reload).
    static func fields(of entry: ConnectionEntry, _ configuration: DatapathConfiguration) -> ConnectionFields? {
        guard Int(entry.key.network) < configuration.networks.count else { return nil }
        let a = address(entry.key.aHigh, entry.key.aLow)
        let b = address(entry.key.bHigh, entry.key.bLow)
        let (source, sourcePort, destination, destinationPort) = entry.originIsA
            ? (a, entry.key.aPort, b, entry.key.bPort) : (b, entry.key.bPort, a, entry.key.aPort)
        return ConnectionFields(
            proto: protoName(entry.key.proto), source: source, sourcePort: sourcePort, destination: destination,
            destinationPort: destinationPort,
            state: entry.kind == .tcp ? "\(entry.tcpState)" : (entry.replied ? "REPLIED" : "UNREPLIED"),
            network: configuration.networks[Int(entry.key.network)].name)
    }

    static func threadCPUTime() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    /// Calls `copy` on pieces of 64 from `from` up to `end` until `chunkBudget` is spent;
    /// returns where it stopped (`end` when it got there).
    private static func inPieces(from: Int, to end: Int, _ copy: (Range<Int>) -> Void) -> Int {
        let started = ControlServer.monotonic()
        var position = max(0, min(from, end))
        while position < end {
            let next = min(end, position + 64)
            copy(position..<next)
            position = next
            if ControlServer.monotonic() - started >= chunkBudget { break }
        }
        return position
    }

    /// A copy of what `show`, `stats`, `lb` and the metrics need (small: counters and names).
    func snapshot() -> SwitchSnapshot {
        let configuration = datapath.configuration
        let balancers = configuration.loadBalancers
        return SwitchSnapshot(
            generation: reloads, now: Self.wallClock(), topology: topology, configuration: configuration,
            counters: datapath.counters, up: slots.map(\.isUp), peers: slots.map(\.port.peer),
            refused: slots.map(\.port.refusedConnections),
            tunnels: slots.map { slot in
                guard case .vxlan(let tunnel) = slot.port else { return ([], []) }
                return (tunnel.remoteCounters, tunnel.sourcePortList)
            },
            macEntries: datapath.macTable.count,
            drained: balancers.indices.map { b in balancers[b].backends.indices.map { datapath.isDrained(balancer: b, backend: $0) } },
            backendMACs: balancers.indices.map { b in balancers[b].backends.indices.map { datapath.backendMAC(balancer: b, backend: $0) } },
            health: balancers.indices.map { b in balancers[b].backends.indices.map { datapath.backendHealth(balancer: b, backend: $0) } },
            connectionCapacity: datapath.connectionTable?.maxEntries, connectionCount: datapath.connectionTable?.count ?? 0,
            longestControlPause: longestControlPause, longestControlWork: longestControlWork)
    }

    /// `lb drain NAME ADDRESS:PORT` / `lb undrain NAME ADDRESS:PORT`; nil when fine.
    private func drain(_ name: String, _ address: String, _ drain: Bool) -> String? {
        let balancers = datapath.configuration.loadBalancers
        guard let balancer = balancers.firstIndex(where: { $0.name == name }) else {
            return "no load balancer named '\(name)'\(DidYouMean.suffix(name, in: balancers.map(\.name)))"
        }
        guard let backend = balancers[balancer].backends.firstIndex(where: { $0.address.withPort($0.port) == address }) else {
            let backends = balancers[balancer].backends.map { $0.address.withPort($0.port) }
            return "load balancer '\(name)' has no backend \(address)\(DidYouMean.suffix(address, in: backends)); backends: \(backends.joined(separator: ", "))"
        }
        datapath.setDrained(balancer: balancer, backend: backend, drain)
        log("load balancer '\(name)': backend \(address) \(drain ? "drained (no new connections)" : "back in rotation")")
        return nil
    }

    static func protoName(_ proto: UInt8) -> String {
        switch proto {
        case 6: return "tcp"
        case 17: return "udp"
        case 1: return "icmp"
        case 58: return "icmpv6"
        default: return "\(proto)"
        }
    }

    static func address(_ high: UInt64, _ low: UInt64) -> String { HostAddress.text(IPv6Address(high: high, low: low)) }
}

/// Rendering, on the control thread, from the copies alone.
extension SwitchSnapshot {
    func show() -> ControlAnswer.Show {
        let listed = topology.ports.enumerated().filter { $0.offset < counters.ports.count }
        let ports = listed.map { index, port -> ControlAnswer.Show.Port in
            var device = ""
            var kind = ""
            switch port.attachment {
            case .tap(let name): (kind, device) = ("tap", name)
            case .socket(let endpoint): (kind, device) = ("socket", endpoint.description)
            case .interface(let name): (kind, device) = ("interface", name)
            case .vxlan(let tunnel):
                (kind, device) = ("vxlan", "\(tunnel.local):\(tunnel.port) mtu \(tunnel.mtu)")
            }
            let mode: String
            switch port.mode {
            case .access(let network): mode = "access \(network)"
            case .trunk(let networks, let native): mode = "trunk \(networks.joined(separator: ","))" + (native.map { " native \($0)" } ?? "")
            }
            let c = counters.ports[index]
            // Stream ports refuse connections (a second VM, a source outside `peers`): how many.
            var refusedHere: UInt64?
            if case .socket(let endpoint) = port.attachment, endpoint.isStream {
                refusedHere = index < refused.count ? refused[index] : 0
            }
            var row = ControlAnswer.Show.Port(
                name: port.name, kind: kind, device: device, mode: mode, netns: port.netns ?? "",
                state: index < up.count && up[index] ? "up" : "down", peer: index < peers.count ? peers[index] : "",
                framesIn: c.framesIn, framesOut: c.framesOut, bytesIn: c.bytesIn, bytesOut: c.bytesOut,
                drops: c.drops.reduce(0, &+), refused: refusedHere)
            if case .vxlan(let tunnel) = port.attachment, index < tunnels.count {
                let counted = tunnels[index].remotes
                row.remotes = tunnel.remotes.enumerated().map { number, address in
                    let c = number < counted.count ? counted[number] : VXLANPort.RemoteCounters()
                    return ControlAnswer.Show.Remote(
                        address: "\(address)", framesIn: c.framesIn, framesOut: c.framesOut, bytesIn: c.bytesIn,
                        bytesOut: c.bytesOut, sendFailures: c.sendFailures)
                }
                row.sourcePorts = tunnels[index].sourcePorts
            }
            return row
        }
        return ControlAnswer.Show(switch: topology.name, ports: ports)
    }

    /// The MAC table from the copied chunks, sorted (an entry copied twice, which the slab never
    /// does today, would be shown once).
    func fdb(_ entries: [MACTable.Entry]) -> ControlAnswer.FDB {
        var rows: [ControlAnswer.FDB.Entry] = []
        var last: (NetworkID, MACAddress)?
        for entry in entries.sorted(by: { ($0.network, $0.mac) < ($1.network, $1.mac) }) {
            if let last, last == (entry.network, entry.mac) { continue }
            last = (entry.network, entry.mac)
            guard Int(entry.network) < configuration.networks.count, Int(entry.port) < configuration.ports.count else { continue }
            rows.append(
                ControlAnswer.FDB.Entry(
                    network: configuration.networks[Int(entry.network)].name, vlan: configuration.networks[Int(entry.network)].vid,
                    mac: "\(entry.mac)", port: configuration.ports[Int(entry.port)].name,
                    ageSeconds: Double(now.nanoseconds &- entry.lastSeen.nanoseconds) / 1e9,
                    remote: configuration.ports[Int(entry.port)].tunnel.flatMap {
                        Int(entry.remote) < $0.remotes.count ? "\($0.remotes[Int(entry.remote)])" : nil
                    }))
        }
        return ControlAnswer.FDB(
            switch: topology.name, entries: rows, capacity: configuration.macTableSize, agingSeconds: configuration.macAgingSeconds)
    }

    /// One `conntrack` row, or nil when the filter excludes it.
    func connectionRow(_ id: Int, _ entry: ConnectionEntry, now: Timestamp, filter: ConnectionFilter) -> ControlAnswer.Conntrack.Connection? {
        guard let fields = LiveSwitch.fields(of: entry, configuration), filter.matches(fields) else { return nil }
        var row = ControlAnswer.Conntrack.Connection(
            id: id, network: fields.network, proto: fields.proto, source: fields.source, sourcePort: fields.sourcePort,
            destination: fields.destination, destinationPort: fields.destinationPort, state: fields.state,
            ageSeconds: Double(now.nanoseconds &- entry.created) / 1e9,
            expiresInSeconds: Double(entry.lastSeen &+ entry.timeout &- now.nanoseconds) / 1e9,
            packetsOriginal: entry.packetsOriginal, packetsReply: entry.packetsReply, bytesOriginal: entry.bytesOriginal,
            bytesReply: entry.bytesReply,
            // Adopted by a reload and not seen since: the new rules judge it at its next packet.
            rule: entry.needsRecheck ? "recheck" : entry.rule < 0 ? "default" : "\(Int(entry.rule) + 1)")
        if entry.backend >= 0, Int(entry.balancer) >= 0, Int(entry.balancer) < configuration.loadBalancers.count {
            let balancer = configuration.loadBalancers[Int(entry.balancer)]
            if Int(entry.backend) < balancer.backends.count {
                let backend = balancer.backends[Int(entry.backend)]
                row.loadBalancer = balancer.name
                row.backend = backend.address.withPort(backend.port)
            }
        }
        return row
    }

    func balancers() -> ControlAnswer.Balancers {
        let list = configuration.loadBalancers.enumerated().map { index, balancer in
            let backends = balancer.backends.enumerated().map { backendIndex, backend in
                ControlAnswer.Balancers.Backend(
                    address: backend.address.withPort(backend.port), weight: backend.weight,
                    connections: counters.backendSelections.isEmpty ? 0 : counters.backendSelections[index][backendIndex],
                    drained: drained[index][backendIndex], mac: backendMACs[index][backendIndex].map { "\($0)" } ?? "unknown",
                    health: balancer.health == nil ? "unchecked" : health[index][backendIndex].up ? "up" : "down",
                    healthChanged: health[index][backendIndex].lastChange.map { Double($0.nanoseconds) / 1e9 })
            }
            return ControlAnswer.Balancers.Balancer(
                name: balancer.name, vip: "\(balancer.vip)", port: balancer.port, proto: balancer.proto == 6 ? "tcp" : "udp",
                mac: "\(balancer.mac)", backends: backends)
        }
        return ControlAnswer.Balancers(switch: topology.name, loadBalancers: list)
    }

    func stats() -> ControlAnswer.Stats {
        var ports: [String: ControlAnswer.Stats.Port] = [:]
        for (index, port) in topology.ports.enumerated() where index < counters.ports.count {
            let c = counters.ports[index]
            var drops: [String: UInt64] = [:]
            for reason in DropReason.allCases where c.drops[reason.index] > 0 { drops[reason.name] = c.drops[reason.index] }
            ports[port.name] = .init(framesIn: c.framesIn, framesOut: c.framesOut, bytesIn: c.bytesIn, bytesOut: c.bytesOut, drops: drops)
        }
        var drops: [String: UInt64] = [:]
        for reason in DropReason.allCases { drops[reason.name] = counters.drops[reason] ?? 0 }
        return ControlAnswer.Stats(
            switch: topology.name, ports: ports, drops: drops,
            macTable: .init(entries: macEntries, learned: counters.macLearned, moved: counters.macMoved, evicted: counters.macEvicted),
            connections: .init(
                tracked: counters.connections, created: counters.connectionsCreated, evicted: counters.connectionsEvicted,
                related: counters.relatedPassed),
            loadBalancers: .init(
                answers: counters.loadBalancerAnswers, heldForARP: counters.backendUnresolved,
                heldReleased: counters.heldReleased, heldExpired: counters.heldExpired, heldWaiting: counters.heldWaiting),
            control: .init(
                longestPauseSeconds: Double(longestControlPause) / 1e9, longestWorkSeconds: Double(longestControlWork) / 1e9),
            rules: ruleRows().map { .init(rule: $0.rule, location: $0.location, connections: $0.connections) })
    }

    /// The firewall's rules in order, then `default`: each with where it is written, its text,
    /// and the new connections it decided.
    func rules() -> ControlAnswer.Rules {
        ControlAnswer.Rules(
            switch: topology.name, firewall: topology.firewall != nil, default: topology.firewall?.defaultAction.rawValue,
            rules: ruleRows())
    }

    func ruleRows() -> [ControlAnswer.Rules.Row] {
        guard let firewall = topology.firewall else { return [] }
        func decided(_ slot: Int) -> UInt64 { slot < counters.ruleDecisions.count ? counters.ruleDecisions[slot] : 0 }
        var rows = firewall.rules.enumerated().map { index, rule in
            ControlAnswer.Rules.Row(
                rule: "\(index + 1)", location: rule.location, text: rule.text, action: rule.action.rawValue, log: rule.log,
                connections: decided(index))
        }
        rows.append(
            ControlAnswer.Rules.Row(
                rule: "default", location: "-", text: "default: \(firewall.defaultAction.rawValue)",
                action: firewall.defaultAction.rawValue, log: firewall.logDefault, connections: decided(firewall.rules.count)))
        return rows
    }
}

extension DatapathConfiguration {
    /// Nil when `network` is nil or one of this switch's networks; else why the request is refused.
    func refusal(network: String?) -> String? {
        guard let network, !networks.contains(where: { $0.name == network }) else { return nil }
        return "unknown network '\(network)'\(DidYouMean.suffix(network, in: networks.map(\.name))); networks: \(networks.map(\.name).joined(separator: ", "))"
    }
}
