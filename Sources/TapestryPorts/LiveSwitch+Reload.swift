import CTapestryLinux
import TapestryDatapath
import TapestryReplay
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

        // Devices: keep the ones whose attachment and namespace are unchanged, open the new ones.
        var newDevices: [TAPDevice] = []
        var newUp: [Bool] = []
        var opened: [TAPDevice] = []
        var kept = Set<Int>()
        for port in new.ports {
            guard case .tap(let name) = port.attachment else {
                opened.forEach { $0.closeDevice() }
                return ReloadResult(ok: false, message: "reload refused, nothing changed: port '\(port.name)': only tap ports are supported by run so far")
            }
            if let index = topology.ports.indices.first(where: {
                !kept.contains($0) && topology.ports[$0].attachment == port.attachment && topology.ports[$0].netns == port.netns
            }) {
                kept.insert(index)
                newDevices.append(devices[index])
                newUp.append(up[index])
                continue
            }
            do {
                let device = try TAPDevice(port: port.name, name: name, netns: port.netns, offloads: offloads)
                opened.append(device)
                newDevices.append(device)
                newUp.append(true)
            } catch {
                opened.forEach { $0.closeDevice() }
                return ReloadResult(ok: false, message: "reload refused, nothing changed: \(error)")
            }
        }

        let newDatapath = Datapath(
            configuration: DatapathConfiguration(topology: new), batchCapacity: datapath.batchCapacity,
            maxFrameLength: datapath.maxFrameLength)
        let adoption = newDatapath.adoptState(from: datapath, now: Self.wallClock())

        // Re-register the descriptors under their new port indices; close the removed devices.
        for device in devices { epoll_ctl(epoll, EPOLL_CTL_DEL, device.fileDescriptor, nil) }
        let removed = devices.indices.filter { !kept.contains($0) }.map { devices[$0] }
        for device in removed { device.closeDevice() }
        for (index, device) in newDevices.enumerated() where newUp[index] {
            try? watch(device.fileDescriptor, tag: UInt32(index), port: new.ports[index].name)
        }
        let added = opened.map(\.port)
        let gone = removed.map(\.port)
        topology = new
        datapath = newDatapath
        devices = newDevices
        up = newUp
        batch = newDatapath.makeBatch()
        reloads += 1
        var parts = ["reloaded '\(new.name)'"]
        if !added.isEmpty { parts.append("ports added: \(added.joined(separator: ", "))") }
        if !gone.isEmpty { parts.append("ports removed: \(gone.joined(separator: ", "))") }
        parts.append("kept \(adoption.macEntries) MAC entries and \(adoption.connections) connections")
        if adoption.connectionsDropped > 0 { parts.append("\(adoption.connectionsDropped) connections dropped (network or backend gone)") }
        return ReloadResult(ok: true, message: parts.joined(separator: "; "))
    }
}
