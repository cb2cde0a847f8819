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
        var newSlots: [PortSlot] = []
        var opened: [(name: String, port: LivePort)] = []
        var kept = Set<Int>()
        var reopenedPorts: [(old: Int, port: LivePort)] = []
        let configuration = DatapathConfiguration(topology: new)
        let namespacesBefore = createdNamespaces.count
        for (newIndex, port) in new.ports.enumerated() {
            if let index = topology.ports.indices.first(where: {
                !kept.contains($0) && Self.sameAttachment(topology.ports[$0], port)
            }) {
                kept.insert(index)
                if !slots[index].isUp, slots[index].port.startsUp, let reopened = try? LivePort.open(
                    port, index: newIndex, configuration: configuration, offloads: offloads,
                    maxFrameLength: Self.maxFrameLength)
                {
                    // Down because its device went away (a VM stopped): its device is back.
                    reopenedPorts.append((index, reopened))
                    newSlots.append(PortSlot(port: reopened, isUp: true))
                    continue
                }
                newSlots.append(slots[index])
                continue
            }
            do {
                try createMissingNamespaces(for: [port])
                let live = try LivePort.open(
                    port, index: newIndex, configuration: configuration, offloads: offloads,
                    maxFrameLength: Self.maxFrameLength)
                opened.append((port.name, live))
                newSlots.append(PortSlot(port: live, isUp: live.startsUp))
            } catch {
                opened.forEach { $0.port.close() }
                reopenedPorts.forEach { $0.port.close() }
                removeCreatedNamespaces(since: namespacesBefore)
                return ReloadResult(ok: false, message: "reload refused, nothing changed: \(error)")
            }
        }


        // Re-register the descriptors under their new port indices; close the removed ports.
        for slot in slots { unwatch(slot.port) }
        let removed = slots.indices.filter { !kept.contains($0) }
        for index in removed { slots[index].port.close() }
        for (old, _) in reopenedPorts { slots[old].port.close() }
        for (index, slot) in newSlots.enumerated() where slot.isUp || !slot.port.startsUp {
            try? watch(slot, index: index, name: new.ports[index].name)
        }
        let added = opened.map(\.name)
        let gone = removed.map { topology.ports[$0].name }
        let reattached = reopenedPorts.map { topology.ports[$0.old].name }
        // The old datapath's log lines, quoted with the old rules, before it goes.
        core.drainFirewallLog(now: Self.wallClock()) { log($0) }
        let adoption = core.reload(to: new, now: Self.wallClock())
        slots = newSlots
        tunnelPorts = core.configuration.ports.map { $0.tunnel != nil }
        reloads += 1
        var parts = ["reloaded '\(new.name)'"]
        // Kept socket ports take the new `peers` (checked from the next connection on; a
        // connected VM stays) and their socket file the new mode and group.
        for (index, slot) in newSlots.enumerated() {
            switch slot.port {
            case .stream(let socket):
                socket.access = new.ports[index].access
                if let path = socket.endpoint.path, let failure = SocketFile.apply(socket.access, to: path) {
                    parts.append("port '\(new.ports[index].name)': \(failure)")
                }
            case .datagram(let socket):
                if let failure = SocketFile.apply(new.ports[index].access, to: socket.path) {
                    parts.append("port '\(new.ports[index].name)': \(failure)")
                }
            case .vxlan(let tunnel):
                // Remotes, networks, MTU and the port's number may have changed; the socket stays.
                if let endpoint = VXLANEndpoint(configuration: core.configuration, port: PortID(index)) {
                    tunnel.endpoint = endpoint
                }
            case .tap, .packet:
                break
            }
        }
        // Backends the new topology added (or whose MAC the old datapath never heard).
        core.askForBackendMACs(now: Self.wallClock()) { port, queues in transmit(port, queues) }
        if !added.isEmpty { parts.append("ports added: \(added.joined(separator: ", "))") }
        if !gone.isEmpty { parts.append("ports removed: \(gone.joined(separator: ", "))") }
        if !reattached.isEmpty { parts.append("ports attached again: \(reattached.joined(separator: ", "))") }
        parts.append("kept \(adoption.macEntries) MAC entries and \(adoption.connections) connections")
        if adoption.connectionsDropped > 0 { parts.append("\(adoption.connectionsDropped) connections dropped (network or backend gone)") }
        return ReloadResult(ok: true, message: parts.joined(separator: "; "))
    }

    /// Whether a reload keeps `old`'s device or socket for `new`: the same attachment in the same
    /// namespace; for a tunnel, the same socket (local address and port), whatever else changed.
    static func sameAttachment(_ old: Topology.Port, _ new: Topology.Port) -> Bool {
        guard old.netns == new.netns else { return false }
        if case .vxlan(let a) = old.attachment, case .vxlan(let b) = new.attachment {
            return a.local == b.local && a.port == b.port
        }
        return old.attachment == new.attachment
    }
}
