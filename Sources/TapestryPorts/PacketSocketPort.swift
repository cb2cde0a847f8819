import CTapestryLinux
import TapestryDatapath
import TapestryWire

#if canImport(Glibc)
import Glibc
#endif

/// An `interface:` port: an existing host interface (a veth, a TAP device QEMU opened, a
/// physical NIC) attached through an AF_PACKET socket, as a Linux bridge port would be. It is
/// made promiscuous and brought up; frames the host itself sends on it are not switched
/// (PACKET_IGNORE_OUTGOING, or the packet type where the kernel lacks it).
///
/// The socket carries a virtio-net header (PACKET_VNET_HDR), so checksum and TSO offloads cross
/// it as they cross a TAP device. The kernel takes VLAN tags off received frames before packet
/// sockets see them; PACKET_AUXDATA reports them and they are put back, so trunks work.
final class PacketSocketPort {
    let port: String
    let name: String
    let descriptor: Int32
    let ignoresOutgoing: Bool
    /// The interface's index when attached: a new interface of the same name is another one.
    let ifindex: Int32
    private let messages: UnsafeMutablePointer<tapestry_message>
    private var closed = false
    /// The kernel's virtio_net_hdr for packet sockets has no num_buffers field.
    static let headerLength = 10

    init(port: String, name: String) throws(PortError) {
        self.port = port
        self.name = name
        guard (1...15).contains(name.utf8.count) else {
            throw PortError(port: port, operation: "attach interface '\(name)'", detail: "interface names are 1 to 15 bytes")
        }
        var index: Int32 = 0
        var ignores: Int32 = 0
        var step: UnsafePointer<CChar>?
        let fd = tapestry_packet_open(name, &index, &ignores, &step)
        guard fd >= 0 else {
            let what = step.map { String(cString: $0) } ?? "open"
            let hint = -fd == ENODEV ? "no such interface" : -fd == EPERM ? "packet sockets need root or CAP_NET_RAW" : nil
            throw PortError(port: port, operation: "attach interface '\(name)' (\(what))", errno: -fd, detail: hint)
        }
        descriptor = fd
        ifindex = index
        ignoresOutgoing = ignores != 0
        messages = .allocate(capacity: Int(TAPESTRY_BATCH_MAX))
        do {
            try InterfaceFlags.setUp(name: name, port: port)
        } catch {
            // deinit closes the socket and frees `messages`.
            throw error
        }
    }

    deinit {
        close()
        messages.deallocate()
    }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(descriptor)
    }

    /// Whether the attached interface still exists (a receive error after it is deleted; one
    /// deleted and created again under its name is not the one this socket is bound to).
    var exists: Bool { Int32(bitPattern: if_nametoindex(name)) == ifindex }

    /// Receives up to `limit` frames into `batch` with their virtio-net headers. Returns the
    /// error (a positive errno) when the socket failed, else nil.
    func receive(into batch: FrameBatch, limit: Int, _ drops: PortDrops) -> Int32? {
        var wanted = 0
        while wanted < min(limit, Int(TAPESTRY_BATCH_MAX)), let area = batch.freeFrameArea(ahead: wanted) {
            messages[wanted] = tapestry_message(
                header: area.baseAddress! - VirtioNetHeader.length, header_length: UInt32(Self.headerLength),
                frame: area.baseAddress, capacity: UInt32(area.count), length: 0, flags: 0, vlan_tci: 0, vlan_tpid: 0)
            wanted += 1
        }
        guard wanted > 0 else { return nil }
        let received = tapestry_packet_recv(descriptor, messages, Int32(wanted))
        if received < 0 { return -received == EINTR ? nil : -received }
        var skipped = 0
        for index in 0..<Int(received) {
            let message = messages[index]
            let length = Int(message.length)
            if message.flags & TAPESTRY_RX_OUTGOING != 0 {
                skipped += 1
                continue
            }
            if message.flags & TAPESTRY_RX_TRUNCATED != 0 {
                drops.received(.oversize, bytes: length)
                skipped += 1
                continue
            }
            guard let target = batch.freeFrameArea(ahead: 0) else { break }
            if skipped > 0 {
                (target.baseAddress! - VirtioNetHeader.length).copyMemory(
                    from: message.header, byteCount: VirtioNetHeader.length + length)
            }
            // The 10-byte header sits where the 12-byte one does; its missing num_buffers is unused.
            var offload = VirtioNetHeader(loading: target.baseAddress! - VirtioNetHeader.length)
            batch.commit(length: length)
            let frameIndex = batch.count - 1
            if message.vlan_tpid != 0 {
                let (region, start) = batch.slot(frameIndex)
                if let newStart = FrameRewriter.pushTag(
                    region, start: start, length: length, tpid: message.vlan_tpid, tci: message.vlan_tci)
                {
                    batch.setBounds(frameIndex, start: newStart, length: length + 4)
                    offload = offload.shifted(by: 4)
                }
            }
            batch.setOffload(frameIndex, offload)
        }
        return nil
    }

    enum Sent {
        case ok
        /// The interface is gone or down: the remaining frames were counted as `port-down`.
        case failed(Int32)
    }

    /// Sends `portID`'s transmit queue with one sendmmsg per batch; the kernel segments TSO
    /// frames itself. A frame over the interface's MTU is dropped as `oversize`.
    func transmit(_ queues: TransmitQueues, _ portID: PortID, _ drops: PortDrops) -> Sent {
        let queued = queues.count(portID)
        var first = 0
        while first < queued {
            let chunk = min(queued - first, Int(TAPESTRY_BATCH_MAX))
            for i in 0..<chunk {
                let bytes = queues.frameWithVirtioHeader(portID, first + i)
                messages[i] = tapestry_message(
                    header: UnsafeMutableRawPointer(mutating: bytes.baseAddress!), header_length: UInt32(Self.headerLength),
                    frame: UnsafeMutableRawPointer(mutating: bytes.baseAddress! + VirtioNetHeader.length),
                    capacity: 0, length: UInt32(bytes.count - VirtioNetHeader.length), flags: 0, vlan_tci: 0, vlan_tpid: 0)
            }
            let sent = tapestry_batch_send(descriptor, messages, Int32(chunk))
            if sent > 0 {
                first += Int(sent)
                continue
            }
            let code = -sent
            switch code {
            case EINTR:
                continue
            case EMSGSIZE, EINVAL:
                drops.unsent(code == EMSGSIZE ? .oversize : .invalid, bytes: queues.frame(portID, first).count)
                first += 1
            case EAGAIN, ENOBUFS:
                for i in first..<queued { drops.unsent(.txFull, bytes: queues.frame(portID, i).count) }
                return .ok
            default:
                for i in first..<queued { drops.unsent(.portDown, bytes: queues.frame(portID, i).count) }
                return .failed(code)
            }
        }
        return .ok
    }
}

/// Interface flags through an AF_INET control socket in the current namespace.
enum InterfaceFlags {
    static func setUp(name: String, port: String) throws(PortError) {
        let control = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard control >= 0 else { throw PortError(port: port, operation: "open a control socket", errno: errno) }
        defer { close(control) }
        var request = ifreq()
        setName(&request, name)
        guard ioctl(control, TAPESTRY_SIOCGIFFLAGS, &request) == 0 else {
            throw PortError(port: port, operation: "read flags of '\(name)'", errno: errno)
        }
        if request.ifr_ifru.ifru_flags & TAPESTRY_IFF_UP != 0 { return }
        request.ifr_ifru.ifru_flags |= TAPESTRY_IFF_UP
        guard ioctl(control, TAPESTRY_SIOCSIFFLAGS, &request) == 0 else {
            throw PortError(port: port, operation: "bring '\(name)' up", errno: errno)
        }
    }

    static func setName(_ request: inout ifreq, _ name: String) {
        withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { bytes in
            bytes.initializeMemory(as: UInt8.self, repeating: 0)
            for (index, byte) in name.utf8.prefix(15).enumerated() { bytes[index] = byte }
        }
    }
}
