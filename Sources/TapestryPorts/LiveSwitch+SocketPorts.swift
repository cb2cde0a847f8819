import CTapestryLinux
import TapestryDatapath

#if canImport(Glibc)
import Glibc
#endif

/// The socket ports' side of the loop: VMs connecting to stream ports and going away, datagram
/// VMs' sockets, and output that waits for a VM to read (EPOLLOUT interest, retries, frames
/// already read but not yet run).
extension LiveSwitch {
    /// Closes the stream connection `receive` found ended, now that its last frames have run.
    func finishClosing() {
        guard let (port, reason) = closing else { return }
        closing = nil
        streamClosed(port, reason)
    }

    /// A datagram port's VM drained its queue: send what waits.
    func datagramWritable(_ port: PortID) {
        guard case .datagram(let socket) = slots[Int(port)].port else { return }
        defer { drops.settle(on: port, into: datapath) }
        let waiting = socket.backlogBytes
        if case .peerGone(let why) = socket.flushBacklog(drops) {
            datagramPeerGone(port, why)
        } else if waiting > 0, socket.backlogBytes == waiting, socket.sender >= 0 {
            // Writable, yet nothing went: `sender` is connected to a VM that restarted on the same
            // path. Connect it to the new one.
            slots[Int(port)].watchingWritable = false
            if socket.reconnectSender() {
                watchSender(port, socket)
            } else {
                socket.forget(drops)
                datagramPeerGone(port, "the VM's socket is gone")
            }
        }
        updateWritableInterest(port)
    }

    /// Watches a datagram port's `sender`, if it has one, for drain notifications.
    func watchSender(_ port: PortID, _ socket: DatagramSocketPort) {
        guard socket.sender >= 0 else { return }
        do {
            try watch(socket.sender, tag: .port(Int(port), .sending), port: topology.ports[Int(port)].name, events: 0)
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
        case .connected(let fd):
            slots[index].watchingWritable = false
            do {
                try watch(fd, tag: .port(index, .frames), port: name)
            } catch {
                streamClosed(PortID(index), "cannot watch the new connection: \(error)")
                return
            }
            slots[index].isUp = true
            log("port '\(name)' (\(slots[index].port.label)) is up: a VM connected (\(socket.peer))")
        }
    }

    /// A stream port's VM went away or broke the framing: the port is down until one connects.
    func streamClosed(_ port: PortID, _ reason: String) {
        guard case .stream(let socket) = slots[Int(port)].port else { return }
        defer { drops.settle(on: port, into: datapath) }
        if socket.isConnected { epoll_ctl(epoll, EPOLL_CTL_DEL, socket.connection, nil) }
        socket.disconnect { length in drops.unsent(.portDown, bytes: length) }
        slots[Int(port)].watchingWritable = false
        guard slots[Int(port)].isUp else { return }
        slots[Int(port)].isUp = false
        datapath.macTable.flush(port: port)
        log("port '\(topology.ports[Int(port)].name)' (\(slots[Int(port)].port.label)) is down: \(reason); waiting for a VM to connect")
    }

    /// A datagram port's VM went away: down until it sends again (its socket stays watched).
    func datagramPeerGone(_ port: PortID, _ why: String) {
        guard slots[Int(port)].isUp else { return }
        slots[Int(port)].isUp = false
        datapath.macTable.flush(port: port)
        log("port '\(topology.ports[Int(port)].name)' (\(slots[Int(port)].port.label)) is down: \(why); it comes back when the VM sends again")
    }

    /// Watches a socket port for EPOLLOUT exactly while its backlog holds frames.
    func updateWritableInterest(_ port: PortID) {
        let fd: Int32
        let wants: Bool
        switch slots[Int(port)].port {
        case .stream(let socket):
            guard socket.isConnected else { return }
            (fd, wants) = (socket.connection, socket.wantsWritable)
        case .datagram(let socket):
            guard socket.sender >= 0 else { return }
            (fd, wants) = (socket.sender, socket.wantsWritable)
        case .tap, .packet:
            return
        }
        guard wants != slots[Int(port)].watchingWritable else { return }
        if case .datagram = slots[Int(port)].port {
            rewatch(fd, tag: .port(Int(port), .sending), events: wants ? EPOLLOUT.rawValue : 0)
        } else {
            rewatch(fd, tag: .port(Int(port), .frames), events: EPOLLIN.rawValue | (wants ? EPOLLOUT.rawValue : 0))
        }
        slots[Int(port)].watchingWritable = wants
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
