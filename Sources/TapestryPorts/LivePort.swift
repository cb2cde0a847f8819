import CTapestryLinux
import TapestryDatapath
import TapestryTopology

#if canImport(Glibc)
import Glibc
#endif

/// One attached port of the live switch, whatever carries its frames. An enum, not a protocol:
/// the loop switches on the kind once per batch, with no existential in the way.
enum LivePort {
    case tap(TAPDevice)
    case stream(StreamSocketPort)
    case datagram(DatagramSocketPort)
    case packet(PacketSocketPort)
    case vxlan(VXLANPort)

    /// Attaches `port` (number `index` of `configuration`) as its topology entry says.
    static func open(
        _ port: Topology.Port, index: Int, configuration: DatapathConfiguration, offloads: Bool, maxFrameLength: Int
    ) throws(PortError) -> LivePort {
        switch port.attachment {
        case .vxlan:
            guard let endpoint = VXLANEndpoint(configuration: configuration, port: PortID(index)) else {
                throw PortError(port: port.name, operation: "open the tunnel", detail: "not a VXLAN port in the datapath")
            }
            let listening = Set(configuration.ports.compactMap { $0.tunnel?.udpPort })
            return .vxlan(try VXLANPort(port: port.name, endpoint: endpoint, netns: port.netns, reserved: listening))
        case .tap(let name):
            return .tap(try TAPDevice(port: port.name, name: name, netns: port.netns, offloads: offloads))
        case .interface(let name):
            return .packet(try PacketSocketPort(port: port.name, name: name))
        case .socket(let endpoint):
            if case .unixDatagram(let path) = endpoint {
                return .datagram(try DatagramSocketPort(port: port.name, path: path, access: port.access, maxFrameLength: maxFrameLength))
            }
            return .stream(try StreamSocketPort(port: port.name, endpoint: endpoint, access: port.access, maxFrameLength: maxFrameLength))
        }
    }

    /// What a descriptor does for its port, in the epoll loop.
    enum Role {
        /// Frames arrive on it (watched for input; for a stream connection, output too while
        /// its backlog holds frames).
        case frames
        /// A stream port's listening socket: a VM connects.
        case listening
        /// A datagram port's sending socket: watched only for output while its backlog holds frames.
        case sending
    }

    /// Receives up to `limit` frames into `batch`, reporting what it drops to `drops`: the one
    /// receive of every port kind.
    func receive(into batch: FrameBatch, limit: Int, _ drops: PortDrops) -> PortOutcome {
        switch self {
        case .tap(let device):
            return device.receive(into: batch, limit: limit, drops).map { .failed($0) } ?? .ok
        case .stream(let socket):
            socket.receive(into: batch, limit: limit, drops)  // an end shows after the batch ran
            return .ok
        case .datagram(let socket):
            switch socket.receive(into: batch, limit: limit, drops) {
            case nil:
                let reason = "receive failed: \(String(cString: strerror(errno)))"
                _ = socket.forget(reason, drops)
                return .failed(reason)
            case .newPeer(let change)?: return .newSender(change)
            case .unreachable(let change)?: return .lifecycle(change)
            case .ok?: return .ok
            }
        case .vxlan(let tunnel):
            guard let code = tunnel.receive(into: batch, limit: limit, drops) else { return .ok }
            return .failed("receive failed: \(String(cString: strerror(code)))")
        case .packet(let socket):
            guard let code = socket.receive(into: batch, limit: limit, drops) else { return .ok }
            // ENETDOWN while the interface exists only means its link went down for a moment.
            guard code != ENETDOWN || !socket.exists else { return .ok }
            return .failed(socket.exists ? "receive failed: \(String(cString: strerror(code)))" : "the interface is gone")
        }
    }

    /// Sends `port`'s transmit queue, reporting what it could not send to `drops`: the one send of
    /// every port kind. `plain` is the TAP ports' scratch for `--no-offloads`.
    /// `merge`: TAP devices merge TCP segments into TSO frames (`MergeBuffer`).
    func transmit(
        _ queues: TransmitQueues, _ port: PortID, _ drops: PortDrops, plain: PlainFrames, merge: MergeBuffer? = nil
    ) -> PortOutcome {
        switch self {
        case .tap(let device):
            return device.transmit(queues, port, drops, plain: plain, merge: merge).map { .failed($0) } ?? .ok
        case .stream(let socket):
            guard let broken = socket.transmit(queues, port, drops) else { return .ok }
            return .lifecycle(socket.broke(broken, drops))
        case .datagram(let socket):
            if case .peerGone(let change) = socket.transmit(queues, port, drops) { return .lifecycle(change) }
            return .ok
        case .vxlan(let tunnel):
            tunnel.transmit(queues, port, drops)
            return .ok
        case .packet(let socket):
            guard case .failed(let code) = socket.transmit(queues, port, drops), !socket.exists || code != ENETDOWN else {
                return .ok
            }
            return .failed(socket.exists ? "send failed: \(String(cString: strerror(code)))" : "the interface is gone")
        }
    }

    /// What epoll watches for this port now.
    var descriptors: [(fd: Int32, role: Role)] {
        switch self {
        case .tap(let device): return [(device.fileDescriptor, .frames)]
        case .packet(let socket): return [(socket.descriptor, .frames)]
        case .vxlan(let tunnel): return [(tunnel.descriptor, .frames)]
        case .datagram(let socket):
            return [(socket.descriptor, .frames)] + (socket.sender >= 0 ? [(socket.sender, .sending)] : [])
        case .stream(let socket):
            return [(socket.listener, .listening)] + (socket.isConnected ? [(socket.connection, .frames)] : [])
        }
    }

    /// The descriptor role that is also watched for EPOLLOUT while output waits in a backlog: a
    /// stream connection itself, a datagram port's socket to the VM; none for TAP and interface ports.
    var writableRole: Role? {
        switch self {
        case .stream: return .frames
        case .datagram: return .sending
        case .tap, .packet, .vxlan: return nil
        }
    }

    /// Whether the port carries frames as soon as it is attached (a socket port waits for its VM).
    var startsUp: Bool {
        switch self {
        case .tap, .packet, .vxlan: return true
        case .stream, .datagram: return false
        }
    }

    /// The device or address, for logs: "tap 'vm1'", "socket /run/tapestry/vm3.sock".
    var label: String {
        switch self {
        case .tap(let device): return "tap '\(device.name)'"
        case .packet(let socket): return "interface '\(socket.name)'"
        case .stream(let socket): return "socket \(socket.endpoint)"
        case .datagram(let socket): return "socket dgram:\(socket.path)"
        case .vxlan(let tunnel): return "vxlan \(tunnel.endpoint.tunnel.local):\(tunnel.endpoint.tunnel.udpPort)"
        }
    }

    /// The connected VM, for `ctl show` ("" when none or not a socket port).
    var peer: String {
        switch self {
        case .stream(let socket): return socket.isConnected ? socket.peer : ""
        case .datagram(let socket): return socket.peer ?? ""
        case .vxlan(let tunnel): return tunnel.endpoint.tunnel.remotes.map(\.description).joined(separator: ",")
        case .tap, .packet: return ""
        }
    }

    /// Connections a stream socket port refused (0 for the other kinds).
    var refusedConnections: UInt64 {
        if case .stream(let socket) = self { return socket.refused }
        return 0
    }

    /// Releases the port: closes descriptors, removes a created TAP device or a socket's file.
    func close() {
        switch self {
        case .tap(let device): device.closeDevice()
        case .packet(let socket): socket.close()
        case .stream(let socket): socket.close()
        case .datagram(let socket): socket.close()
        case .vxlan(let tunnel): tunnel.close()
        }
    }
}

/// What a port's receive or send asks of the loop.
enum PortOutcome: Equatable {
    case ok
    /// The device or socket failed: the port is down until a reload.
    case failed(String)
    /// A socket port's VM came or went (`LiveSwitch.apply` carries it out).
    case lifecycle(SocketPortLifecycle.Change)
    /// A datagram port has a new socket to its VM, to watch for drain notifications, and the change.
    case newSender(SocketPortLifecycle.Change)
}

/// One port of the running switch: its device or socket, and what the loop knows about it.
struct PortSlot {
    var port: LivePort
    /// Frames are read from and sent to it: a TAP or interface port while its device works, a
    /// socket port while a VM is there.
    var isUp: Bool
    /// A socket port's descriptor is watched for EPOLLOUT too (its backlog holds frames).
    var watchingWritable = false

    /// What epoll watches the port's descriptor in `role` for: input (not on a datagram port's
    /// socket to the VM, which only says when the VM's queue drained), and output on the
    /// `writableRole` descriptor while `watchingWritable`.
    func interest(_ role: LivePort.Role) -> UInt32 {
        let input = role == .sending ? 0 : EPOLLIN.rawValue
        return input | (watchingWritable && role == port.writableRole ? EPOLLOUT.rawValue : 0)
    }
}
