import CTapestryLinux
import TapestryDatapath
import TapestrySwitchCore
import TapestryTopology

#if canImport(Glibc)
import Glibc
#endif

/// Hot reload (`ctl reload`, SIGHUP): the topology file is read and validated again; if it is
/// invalid, or a new port cannot be attached, nothing changes. Otherwise the switch moves to it
/// between two batches: ports are added and removed (a kept port keeps its device, so its link
/// never blinks), a new datapath is built, and it adopts the MAC table, the connections (each
/// checks the new rules at its next packet), learned backend MACs, drained backends and counters
/// of everything that still exists.
extension LiveSwitch {
    public struct ReloadResult: Sendable {
        public var ok: Bool
        public var message: String
    }

    public func reload() -> ReloadResult {
        guard let path = topologyPath else { return ReloadResult(ok: false, message: "reload refused: no topology file") }
        let new: Topology
        switch TopologyLoader.load(path: path) {
        case .success(let topology): new = topology
        case .failure(let errors):
            return ReloadResult(ok: false, message: "reload refused, nothing changed:\n\(errors.description)")
        }
        guard new.name == topology.name, new.controlPath == topology.controlPath, new.metrics == topology.metrics else {
            return ReloadResult(
                ok: false, message: "reload refused, nothing changed: name, control and metrics cannot change while running; restart for that")
        }

        // Ports: keep the ones whose attachment and namespace are unchanged, open the new ones.
        var newPorts: [LivePort] = []
        var newUp: [Bool] = []
        var newWritable: [Bool] = []
        var opened: [(name: String, port: LivePort)] = []
        var kept = Set<Int>()
        var reopenedPorts: [(old: Int, port: LivePort)] = []
        for port in new.ports {
            if let index = topology.ports.indices.first(where: {
                !kept.contains($0) && topology.ports[$0].attachment == port.attachment && topology.ports[$0].netns == port.netns
            }) {
                kept.insert(index)
                if !up[index], ports[index].startsUp, let reopened = try? LivePort.open(
                    port, offloads: offloads, maxFrameLength: Self.maxFrameLength)
                {
                    // Down because its device went away (a VM stopped): its device is back.
                    reopenedPorts.append((index, reopened))
                    newPorts.append(reopened)
                    newUp.append(true)
                    newWritable.append(false)
                    continue
                }
                newPorts.append(ports[index])
                newUp.append(up[index])
                newWritable.append(watchingWritable[index])
                continue
            }
            do {
                let live = try LivePort.open(port, offloads: offloads, maxFrameLength: Self.maxFrameLength)
                opened.append((port.name, live))
                newPorts.append(live)
                newUp.append(live.startsUp)
                newWritable.append(false)
            } catch {
                opened.forEach { $0.port.close() }
                reopenedPorts.forEach { $0.port.close() }
                return ReloadResult(ok: false, message: "reload refused, nothing changed: \(error)")
            }
        }


        // Re-register the descriptors under their new port indices; close the removed ports.
        for port in ports { unwatch(port) }
        let removed = ports.indices.filter { !kept.contains($0) }
        for index in removed { ports[index].close() }
        for (old, _) in reopenedPorts { ports[old].close() }
        for (index, port) in newPorts.enumerated() where newUp[index] || !port.startsUp {
            try? watch(port, index: index, name: new.ports[index].name)
            guard newWritable[index] else { continue }
            var event = epoll_event()
            event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue
            event.data.u32 = UInt32(index)
            switch port {
            case .stream(let socket):
                epoll_ctl(epoll, EPOLL_CTL_MOD, socket.connection, &event)
            case .datagram(let socket):
                event.events = EPOLLOUT.rawValue
                event.data.u32 = UInt32(index) | Self.sendingBit
                epoll_ctl(epoll, EPOLL_CTL_MOD, socket.sender, &event)
            case .tap, .packet:
                break
            }
        }
        let added = opened.map(\.name)
        let gone = removed.map { topology.ports[$0].name }
        let reattached = reopenedPorts.map { topology.ports[$0.old].name }
        // The old datapath's log lines, quoted with the old rules, before it goes.
        core.drainFirewallLog(now: Self.wallClock()) { log($0) }
        let adoption = core.reload(to: new, now: Self.wallClock())
        ports = newPorts
        up = newUp
        watchingWritable = newWritable
        reloads += 1
        var parts = ["reloaded '\(new.name)'"]
        // Kept socket ports take the new `peers` (checked from the next connection on; a
        // connected VM stays) and their socket file the new mode and group.
        for (index, port) in newPorts.enumerated() {
            switch port {
            case .stream(let socket):
                socket.access = new.ports[index].access
                if let path = socket.endpoint.path, let failure = SocketFile.apply(socket.access, to: path) {
                    parts.append("port '\(new.ports[index].name)': \(failure)")
                }
            case .datagram(let socket):
                if let failure = SocketFile.apply(new.ports[index].access, to: socket.path) {
                    parts.append("port '\(new.ports[index].name)': \(failure)")
                }
            case .tap, .packet:
                break
            }
        }
        if !added.isEmpty { parts.append("ports added: \(added.joined(separator: ", "))") }
        if !gone.isEmpty { parts.append("ports removed: \(gone.joined(separator: ", "))") }
        if !reattached.isEmpty { parts.append("ports attached again: \(reattached.joined(separator: ", "))") }
        parts.append("kept \(adoption.macEntries) MAC entries and \(adoption.connections) connections")
        if adoption.connectionsDropped > 0 { parts.append("\(adoption.connectionsDropped) connections dropped (network or backend gone)") }
        return ReloadResult(ok: true, message: parts.joined(separator: "; "))
    }
}
