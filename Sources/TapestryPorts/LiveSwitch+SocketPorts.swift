import CTapestryLinux
import TapestryDatapath

#if canImport(Glibc)
import Glibc
#endif

/// The socket ports' side of the loop: VMs connecting to stream ports and going away, datagram
/// VMs' sockets, and output that waits for a VM to read (EPOLLOUT interest, retries, frames
/// already read but not yet run).
extension LiveSwitch {
    /// A stream port whose connection `receive` found ended goes down now that the batch with
    /// its last frames has run (so those frames' MACs are flushed with the port).
    func finishClosing(_ port: PortID) {
        guard case .stream(let socket) = slots[Int(port)].port else { return }
        apply(socket.batchRan(drops), to: port)
        drops.settle(on: port, into: datapath)
    }

    /// Carries out what a socket port's lifecycle decided: up or down, the MAC entries of a VM
    /// that left or was replaced flushed, and the log line.
    func apply(_ change: SocketPortLifecycle.Change, to port: PortID) {
        let index = Int(port)
        let name = "port '\(topology.ports[index].name)' (\(slots[index].port.label))"
        switch change {
        case .none:
            return
        case .up(let peer, let replacing):
            if replacing != nil { datapath.macTable.flush(port: port) }
            slots[index].isUp = true
            if case .stream = slots[index].port {
                log("\(name) is up: a VM connected (\(peer))")
            } else {
                log("\(name) is up: the VM sends from \(peer)" + (replacing != nil ? " (a new socket: the VM restarted)" : ""))
            }
        case .down(let reason, let until):
            slots[index].watchingWritable = false
            guard slots[index].isUp else { return }
            slots[index].isUp = false
            datapath.macTable.flush(port: port)
            log("\(name) is down: \(reason); \(until)")
        }
    }

    /// A datagram port's VM drained its queue: send what waits.
    func datagramWritable(_ port: PortID) {
        guard case .datagram(let socket) = slots[Int(port)].port else { return }
        defer { drops.settle(on: port, into: datapath) }
        let waiting = socket.backlogBytes
        if case .peerGone(let change) = socket.flushBacklog(drops) {
            apply(change, to: port)
        } else if waiting > 0, socket.backlogBytes == waiting, socket.sender >= 0 {
            // Writable, yet nothing went: `sender` is connected to a VM that restarted on the same
            // path. Connect it to the new one.
            slots[Int(port)].watchingWritable = false
            if socket.reconnectSender() {
                watchSender(port, socket)
            } else {
                apply(socket.forget("the VM's socket is gone", drops), to: port)
            }
        }
        updateWritableInterest(port)
    }

    /// Watches a datagram port's `sender`, if it has one, for drain notifications.
    func watchSender(_ port: PortID, _ socket: DatagramSocketPort) {
        guard socket.sender >= 0 else { return }
        do {
            try watch(
                socket.sender, tag: .port(Int(port), .sending), port: topology.ports[Int(port)].name,
                events: slots[Int(port)].interest(.sending))
        } catch {
            log("port '\(topology.ports[Int(port)].name)': cannot watch the socket to the VM: \(error)")
        }
    }

    /// A connection to a stream port: its VM, which brings it up, or one it refuses (a second
    /// connection while a VM is connected, a source outside `peers`), closed at once.
    func acceptVM(port index: Int) {
        guard case .stream(let socket) = slots[index].port, let accepted = socket.accept() else { return }
        let name = topology.ports[index].name
        switch accepted {
        case .refused(let reason):
            if let reason { log("port '\(name)' (\(slots[index].port.label)) refused a connection: \(reason)") }
        case .connected(let fd, let change):
            slots[index].watchingWritable = false
            do {
                try watch(fd, tag: .port(index, .frames), port: name, events: slots[index].interest(.frames))
            } catch {
                _ = socket.broke("cannot watch the new connection", drops)
                drops.settle(on: PortID(index), into: datapath)
                log("port '\(name)' (\(slots[index].port.label)) refused a connection: cannot watch it: \(error)")
                return
            }
            apply(change, to: PortID(index))
        }
    }

    /// Watches a socket port for EPOLLOUT exactly while its backlog holds frames.
    func updateWritableInterest(_ port: PortID) {
        let slot = slots[Int(port)]
        let wants: Bool
        switch slot.port {
        case .stream(let socket): wants = socket.wantsWritable
        case .datagram(let socket): wants = socket.wantsWritable
        case .tap, .packet, .vxlan: return
        }
        guard wants != slot.watchingWritable, let role = slot.port.writableRole,
            let fd = slot.port.descriptors.first(where: { $0.role == role })?.fd
        else { return }
        slots[Int(port)].watchingWritable = wants
        rewatch(fd, tag: .port(Int(port), role), events: slots[Int(port)].interest(role))
    }

    func datagramsWaiting() -> Bool {
        for slot in slots {
            if case .datagram(let socket) = slot.port, socket.needsRetry { return true }
        }
        return false
    }

    func hasBufferedInput() -> Bool {
        for slot in slots {
            if case .stream(let socket) = slot.port, socket.hasBufferedFrame { return true }
        }
        return false
    }

    func serviceBufferedInput() {
        for index in slots.indices {
            if case .stream(let socket) = slots[index].port, socket.hasBufferedFrame {
                service(port: PortID(index), events: EPOLLIN.rawValue)
            }
        }
    }
}
