import CTapestryLinux
import TapestryDatapath
import TapestryTopology

#if canImport(Glibc)
import Glibc
#endif

/// A `socket: dgram:PATH` port for QEMU's `-netdev dgram` over unix sockets: the switch binds
/// PATH, QEMU binds its own `local.path` and sends one frame per datagram to PATH. The switch
/// answers to the path the last datagram came from, so the port is down until the VM's first
/// frame, and follows a restarted VM that binds a new path. A peer whose socket is gone
/// (ECONNREFUSED, ENOENT) takes the port down until it sends again.
///
/// Frames are received with one recvmmsg per batch straight into the batch's slots and sent with
/// one sendmmsg per batch, from the bound socket to the VM's path: a VM that connected its socket
/// to the switch's accepts datagrams from that socket only. A send to a VM whose queue is full
/// (Linux queues only `net.unix.max_dgram_qlen` datagrams, 10 by default) fails with EAGAIN;
/// frames then wait in a backlog (up to `backlogCapacity` bytes; beyond that they are dropped as
/// `tx-full`), as QEMU itself waits rather than drops. To learn when the VM's queue drains, a
/// second socket is connected to the VM's and watched for EPOLLOUT: epoll reports that only for
/// a connected socket. (A VM whose socket is connected to the switch's refuses that connection;
/// then the switch retries its backlog every millisecond instead.) The bound socket stays unconnected, since a connected unix datagram socket
/// takes datagrams from its peer only and a restarted VM sends from a new socket.
final class DatagramSocketPort {
    let port: String
    let path: String
    let descriptor: Int32
    let maxFrameLength: Int
    /// Where replies go: the path of the VM's socket, learned from what it sends (nil while
    /// there is none to send to).
    private(set) var peer: String?
    /// Whether the port has its VM (`SocketPortLifecycle`).
    private(set) var lifecycle = SocketPortLifecycle()
    /// A socket connected to `peer`, only for epoll to report when the VM's queue drains (-1
    /// while no VM is known).
    private(set) var sender: Int32 = -1
    /// The last sender path could not be connected to (not retried until another path sends).
    private var refused = false
    private let messages: UnsafeMutablePointer<tapestry_message>
    private let peerBuffer: UnsafeMutablePointer<CChar>
    /// `peer` as C bytes, to compare each batch's sender without making a String.
    private let peerBytes: UnsafeMutablePointer<CChar>
    let plain = PlainFrames(gap: 0)
    private var closed = false
    /// Frames waiting for the VM's queue to drain: each a 4-byte length, the 4-byte length of the
    /// queued frame it came from, and the bytes. The length's top bit marks the last piece of a
    /// queued frame (a TSO segment's pieces count once, with the queued frame's length).
    private let backlog: UnsafeMutableRawPointer
    let backlogCapacity: Int
    private var backlogStart = 0
    private var backlogEnd = 0
    var backlogBytes: Int { backlogEnd - backlogStart }
    /// Whether `sender` should be watched for EPOLLOUT (the backlog holds frames).
    var wantsWritable: Bool { sender >= 0 && backlogEnd > backlogStart }
    /// Whether frames wait with no `sender` to say when they can go: retry on a timer.
    var needsRetry: Bool { sender < 0 && peer != nil && backlogEnd > backlogStart }
    private var fileIdentity: SocketFile.Identity?

    enum Received {
        case ok
        /// A datagram came from a new path (the port comes up, or follows a restarted VM);
        /// `sender` is new.
        case newPeer(SocketPortLifecycle.Change)
        /// A datagram came from a path the switch cannot send to (the port goes down if it was up).
        case unreachable(SocketPortLifecycle.Change)
    }

    init(port: String, path: String, access: Topology.SocketAccess, maxFrameLength: Int) throws(PortError) {
        self.port = port
        self.path = path
        self.maxFrameLength = maxFrameLength
        try SocketFile.prepare(path, port: port, datagram: true)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw PortError(port: port, operation: "open a unix datagram socket", errno: errno) }
        // The file's mode and group say who may send frames to this port (sending to a unix
        // datagram socket needs write permission on its file): 0600 unless `mode`/`group` say.
        guard SocketFile.bindPrivately(fd, path) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw PortError(port: port, operation: "bind \(path)", errno: code)
        }
        if let failure = SocketFile.apply(access, to: path) {
            Glibc.close(fd)
            unlink(path)
            throw PortError(port: port, operation: "bind \(path)", detail: failure)
        }
        var size: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        descriptor = fd
        fileIdentity = SocketFile.identity(path)
        messages = .allocate(capacity: Int(TAPESTRY_BATCH_MAX))
        peerBuffer = .allocate(capacity: 110)
        peerBytes = .allocate(capacity: 110)
        peerBytes.initialize(repeating: 0, count: 110)
        backlogCapacity = 8 * (8 + maxFrameLength)
        backlog = .allocate(byteCount: backlogCapacity, alignment: 64)
    }

    deinit {
        close()
        messages.deallocate()
        peerBuffer.deallocate()
        peerBytes.deallocate()
        backlog.deallocate()
    }

    func close() {
        guard !closed else { return }
        closed = true
        closeSender()
        Glibc.close(descriptor)
        SocketFile.remove(path, ifStill: fileIdentity)
    }

    private func closeSender() {
        if sender >= 0 { Glibc.close(sender) }
        sender = -1
    }

    /// Receives up to `limit` frames into `batch`; a datagram longer than `maxFrameLength` is
    /// dropped as `oversize`. Returns nil when the socket failed (the reason is in errno).
    func receive(into batch: FrameBatch, limit: Int, _ drops: PortDrops) -> Received? {
        var wanted = 0
        while wanted < min(limit, Int(TAPESTRY_BATCH_MAX)), let area = batch.freeFrameArea(ahead: wanted) {
            messages[wanted] = tapestry_message(
                header: nil, header_length: 0, frame: area.baseAddress, capacity: UInt32(area.count), length: 0,
                flags: 0, vlan_tci: 0, vlan_tpid: 0)
            wanted += 1
        }
        guard wanted > 0 else { return .ok }
        var named: Int32 = 0
        let received = tapestry_dgram_recv(descriptor, messages, Int32(wanted), peerBuffer, 110, &named)
        if received < 0 {
            if -received == EINTR { return .ok }
            errno = -received
            return nil
        }
        var moved = 0  // frames moved down over a dropped one's slot
        for index in 0..<Int(received) {
            let message = messages[index]
            if message.flags & TAPESTRY_RX_TRUNCATED != 0 {
                drops.received(.oversize, bytes: Int(message.length))
                moved += 1
                continue
            }
            if moved > 0, let target = batch.freeFrameArea(ahead: 0) {
                target.baseAddress!.copyMemory(from: message.frame, byteCount: Int(message.length))
            }
            batch.commit(length: Int(message.length))
        }
        if named != 0, strcmp(peerBuffer, peerBytes) != 0 || (peer == nil && !refused) {
            strcpy(peerBytes, peerBuffer)
            return follow(String(cString: peerBuffer), drops)
        }
        return .ok
    }

    /// Sends to `path` from now on, through a new socket connected to it.
    private func follow(_ path: String, _ drops: PortDrops) -> Received {
        discardBacklog(drops)
        closeSender()
        peer = nil
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        let status = fd >= 0 ? tapestry_dgram_connect(fd, path) : -errno
        // EPERM: the VM's socket is connected to ours and takes nothing from another; frames still
        // go out from the bound socket, only without a drain notification.
        guard status == 0 || -status == EPERM else {
            if fd >= 0 { Glibc.close(fd) }
            // Not allowed to write there: say so once. Gone (ECONNREFUSED, ENOENT): try again at the
            // next datagram from that path, which may come from a VM restarted on it.
            refused = -status == EACCES
            return .unreachable(lifecycle.peerGone(Self.reason(-status, path)))
        }
        refused = false
        if status == 0 {
            sender = fd
        } else if fd >= 0 {
            Glibc.close(fd)
        }
        peer = path
        return .newPeer(lifecycle.datagram(from: path))
    }

    static let lastPiece: UInt32 = 1 << 31

    static func reason(_ code: Int32, _ path: String) -> String {
        code == EACCES || code == EPERM
            ? "the switch may not write to the VM's socket \(path) (\(String(cString: strerror(code))); give the switch's user write permission)"
            : "the VM's socket \(path) is gone (\(String(cString: strerror(code))))"
    }

    enum Sent {
        case ok
        /// The VM's socket is gone: the port is down until it sends again.
        case peerGone(SocketPortLifecycle.Change)
    }

    /// Sends `portID`'s transmit queue to the peer, one datagram per frame (TSO segments cut).
    func transmit(_ queues: TransmitQueues, _ portID: PortID, _ drops: PortDrops) -> Sent {
        var result = Sent.ok
        plain.gather(queues, portID, drops) {
            result = send(queues, portID, drops)
            if case .peerGone = result { return false }
            return true
        }
        return result
    }

    private func send(_ queues: TransmitQueues, _ portID: PortID, _ drops: PortDrops) -> Sent {
        guard plain.count > 0 else { return .ok }
        guard peer != nil else {
            plain.countDropped(from: 0, .portDown, queues, portID, drops)
            return .ok
        }
        var first = 0
        if backlogEnd == backlogStart {
            while first < plain.count {
                let chunk = min(plain.count - first, Int(TAPESTRY_BATCH_MAX))
                for i in 0..<chunk {
                    messages[i] = tapestry_message(
                        header: nil, header_length: 0, frame: plain.starts[first + i], capacity: 0,
                        length: UInt32(plain.lengths[first + i]), flags: 0, vlan_tci: 0, vlan_tpid: 0)
                }
                let sent = tapestry_dgram_send(descriptor, messages, Int32(chunk), peerBytes)
                if sent > 0 {
                    first += Int(sent)
                    continue
                }
                if -sent == EINTR { continue }
                if -sent == EAGAIN || -sent == ENOBUFS { break }
                plain.countDropped(from: first, .portDown, queues, portID, drops)
                return peerGone(-sent, drops)
            }
            if first == plain.count { return .ok }
        }
        // The VM's queue is full (or frames already wait): keep the rest, in order, while they fit.
        var last = -1
        for i in first..<plain.count where plain.sources[i] != last {
            let length = plain.lengths[i]
            if backlogCapacity - backlogEnd < 8 + length, backlogStart > 0 {
                memmove(backlog, backlog + backlogStart, backlogEnd - backlogStart)
                backlogEnd -= backlogStart
                backlogStart = 0
            }
            if backlogCapacity - backlogEnd >= 8 + length {
                let lastPiece = i == plain.count - 1 || plain.sources[i + 1] != plain.sources[i]
                let header = UInt32(length) | (lastPiece ? Self.lastPiece : 0)
                (backlog + backlogEnd).storeBytes(of: header, toByteOffset: 0, as: UInt32.self)
                (backlog + backlogEnd).storeBytes(
                    of: UInt32(queues.frame(portID, plain.sources[i]).count), toByteOffset: 4, as: UInt32.self)
                (backlog + backlogEnd + 8).copyMemory(from: plain.starts[i], byteCount: length)
                backlogEnd += 8 + length
            } else {
                last = plain.sources[i]
                drops.unsent(.txFull, bytes: queues.frame(portID, last).count)
            }
        }
        return flushBacklog(drops)
    }

    /// Connects `sender` afresh to the VM's path: after EPOLLOUT with nothing sent, `sender` may
    /// still be connected to the socket of a VM that restarted on the same path. Returns false
    /// when the path no longer takes connections (the VM is gone).
    func reconnectSender() -> Bool {
        guard peer != nil else { return false }
        closeSender()
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return true }
        let status = tapestry_dgram_connect(fd, peerBytes)
        if status == 0 {
            sender = fd
            return true
        }
        Glibc.close(fd)
        return -status == EPERM
    }

    /// Forgets the VM and what waits for it, for `reason` (its socket is gone, or the port's own failed).
    func forget(_ reason: String, _ drops: PortDrops) -> SocketPortLifecycle.Change {
        discardBacklog(drops)
        closeSender()
        peer = nil
        return lifecycle.peerGone(reason)
    }

    /// Sends what the backlog holds, as far as the VM's queue takes it.
    func flushBacklog(_ drops: PortDrops) -> Sent {
        guard peer != nil else { return .ok }
        while backlogEnd > backlogStart {
            var count = 0
            var offset = backlogStart
            while count < Int(TAPESTRY_BATCH_MAX), offset < backlogEnd {
                let length = Int(backlog.loadUnaligned(fromByteOffset: offset, as: UInt32.self) & ~Self.lastPiece)
                messages[count] = tapestry_message(
                    header: nil, header_length: 0, frame: backlog + offset + 8, capacity: 0, length: UInt32(length),
                    flags: 0, vlan_tci: 0, vlan_tpid: 0)
                offset += 8 + length
                count += 1
            }
            let sent = tapestry_dgram_send(descriptor, messages, Int32(count), peerBytes)
            if sent > 0 {
                for i in 0..<Int(sent) { backlogStart += 8 + Int(messages[i].length) }
                continue
            }
            if -sent == EINTR { continue }
            if -sent == EAGAIN || -sent == ENOBUFS { break }
            return peerGone(-sent, drops)
        }
        if backlogStart == backlogEnd {
            backlogStart = 0
            backlogEnd = 0
        }
        return .ok
    }

    /// The VM's socket is gone (or refuses us): forget it until it sends again.
    private func peerGone(_ code: Int32, _ drops: PortDrops) -> Sent {
        let path = peer ?? "?"
        return .peerGone(forget(Self.reason(code, path), drops))
    }

    /// Empties the backlog, counting each frame in it as `port-down`.
    private func discardBacklog(_ drops: PortDrops) {
        var offset = backlogStart
        while offset < backlogEnd {
            let header = backlog.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
            let length = Int(header & ~Self.lastPiece)
            if header & Self.lastPiece != 0 {
                let frameBytes = Int(backlog.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
                drops.unsent(.portDown, bytes: frameBytes)
            }
            offset += 8 + length
        }
        backlogStart = 0
        backlogEnd = 0
    }
}
