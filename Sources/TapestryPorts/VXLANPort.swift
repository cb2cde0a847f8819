import CTapestryLinux
import TapestryDatapath
import TapestryTopology
import TapestryWire

#if canImport(Glibc)
import Glibc
#endif

/// A `vxlan:` port: one UDP socket bound to `local:port` (in `netns` when set) carrying VXLAN
/// (RFC 7348) to and from the listed remotes. No root is needed without `netns`.
///
/// Receiving: one recvmmsg per batch, each datagram straight into a batch slot with its 8-byte
/// VXLAN header in the slot's headroom, so the inner frame lands where frames start; the
/// datapath's `VXLANEndpoint.admit` decides remote and network (else a `tunnel` drop).
/// Sending: TSO frames are cut into segments whose outer packets fit the underlay MTU, then
/// every frame goes out with one sendmmsg per batch, the VXLAN header in its own iovec (nothing
/// is copied): to the remote its destination MAC was learned behind, or to every remote for a
/// flood (head-end replication). A send the socket buffer refuses is a `tx-full` drop: the
/// underlay is a datagram network and Linux's vxlan drops likewise.
///
/// The outer UDP source port is a hash of the inner flow in the dynamic range (49152-65535), as
/// RFC 7348 asks: frames go out through a pool of `sourcePorts` sockets bound to `local` and
/// consecutive ports from `sourcePortBase`, the flow hash choosing the socket.
final class VXLANPort {
    let port: String
    /// Replaced by a reload (port numbers, networks, remotes and MTU may change; the socket stays).
    var endpoint: VXLANEndpoint {
        didSet {
            plain.maxFrameLength = endpoint.maxInnerFrame
            // A new topology may route the tunnel elsewhere: try GSO again.
            gso = true
            // Counters follow their remote's address; the table is sized for the new list.
            let oldRemotes = oldValue.tunnel.remotes
            let old = Array(UnsafeBufferPointer(start: counters, count: oldRemotes.count))
            counters.deallocate()
            counters = .allocate(capacity: max(1, endpoint.tunnel.remotes.count))
            for (index, address) in endpoint.tunnel.remotes.enumerated() {
                let kept = oldRemotes.firstIndex(of: address).map { old[$0] } ?? RemoteCounters()
                (counters + index).initialize(to: kept)
            }
            if endpoint.tunnel.remotes.isEmpty { counters.initialize(to: RemoteCounters()) }
        }
    }
    let netns: String?
    /// Receives from the remotes (bound to the tunnel's port).
    let descriptor: Int32
    private let senders: [Int32]
    private let messages: UnsafeMutablePointer<tapestry_message>
    private let sources: UnsafeMutablePointer<UInt32>
    private let destinations: UnsafeMutablePointer<UInt32>
    /// One 8-byte VXLAN header per gathered frame (sent as the header iovec).
    private let headers: UnsafeMutableRawPointer
    /// Per message of a send: the first gathered frame it carries and how many (a GSO send
    /// carries a TSO frame's segments), their inner bytes, and the GSO segment size (0: none).
    private let owners: UnsafeMutablePointer<Int>
    private let spans: UnsafeMutablePointer<Int>
    private let innerBytes: UnsafeMutablePointer<Int>
    private let segmentSizes: UnsafeMutablePointer<UInt16>
    /// A TSO frame's segments leave in one UDP GSO send (`UDP_SEGMENT`): on unless the kernel
    /// refused it.
    private var gso = true
    /// Per gathered frame: a copy of it could not be sent.
    private let failed: UnsafeMutablePointer<Bool>
    let plain: PlainFrames
    private var closed = false

    /// Per remote, in `tunnel.remotes` order: frames and bytes (inner frames) in and out, and
    /// copies the socket refused.
    struct RemoteCounters: Sendable, Equatable {
        var framesIn: UInt64 = 0
        var bytesIn: UInt64 = 0
        var framesOut: UInt64 = 0
        var bytesOut: UInt64 = 0
        var sendFailures: UInt64 = 0
    }
    /// `endpoint.tunnel.remotes.count` entries (at least one), replaced with the endpoint.
    private var counters: UnsafeMutablePointer<RemoteCounters>
    var remoteCounters: [RemoteCounters] { Array(UnsafeBufferPointer(start: counters, count: endpoint.tunnel.remotes.count)) }

    /// Source-port sockets per tunnel port; their ports follow `VXLAN.sourcePort`'s range.
    static let sourcePorts = 8

    /// - Parameter reserved: UDP ports the source-port pool must leave alone (every tunnel's
    ///   listening port).
    init(port: String, endpoint: VXLANEndpoint, netns: String?, reserved: Set<UInt16> = []) throws(PortError) {
        self.port = port
        self.endpoint = endpoint
        self.netns = netns
        let tunnel = endpoint.tunnel
        let path = netns.map { "/run/netns/\($0)" }
        if let netns, access(path!, F_OK) != 0 {
            throw PortError(
                port: port, operation: "open the tunnel socket in netns '\(netns)'",
                detail: "no such namespace; create it (ip netns add \(netns)) and give it the underlay address \(tunnel.local)")
        }
        func open(_ localPort: UInt16) throws(PortError) -> Int32 {
            var step: UnsafePointer<CChar>? = nil
            let fd = path.map { tapestry_udp_open($0, tunnel.local.rawValue, localPort, &step) }
                ?? tapestry_udp_open(nil, tunnel.local.rawValue, localPort, &step)
            guard fd >= 0 else {
                let what = step.map { String(cString: $0) } ?? "open a UDP socket"
                var hint: String?
                if -fd == EADDRNOTAVAIL {
                    hint = "\(tunnel.local) is not an address of \(netns.map { "namespace '\($0)'" } ?? "this host")"
                } else if -fd == EADDRINUSE {
                    hint = "another socket has \(tunnel.local):\(localPort)"
                } else if -fd == EPERM && netns != nil {
                    hint = "entering a namespace needs root (CAP_SYS_ADMIN)"
                }
                throw PortError(port: port, operation: "\(what) (\(tunnel.local):\(localPort))", errno: -fd, detail: hint)
            }
            return fd
        }
        descriptor = try open(tunnel.udpPort)
        var opened: [Int32] = []
        // The pool's ports are a hash of the tunnel's address and port into the dynamic range,
        // so two tunnels on one host rarely collide; a taken port moves on to the next.
        var candidate = Self.poolBase(tunnel)
        var attempts = 0
        while opened.count < Self.sourcePorts && attempts < 64 {
            attempts += 1
            if !reserved.contains(candidate) && candidate != tunnel.udpPort, let fd = try? open(candidate) {
                // Nothing is read from these: a small receive buffer bounds what a peer sending
                // to them can make the kernel hold.
                var size: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
                opened.append(fd)
            }
            candidate = candidate == UInt16.max ? 49152 : candidate + 1
        }
        guard !opened.isEmpty else {
            Glibc.close(descriptor)
            throw PortError(port: port, operation: "open the tunnel's source-port sockets", detail: "every port tried was taken")
        }
        senders = opened
        messages = .allocate(capacity: Int(TAPESTRY_BATCH_MAX))
        sources = .allocate(capacity: Int(TAPESTRY_BATCH_MAX))
        destinations = .allocate(capacity: Int(TAPESTRY_BATCH_MAX))
        // An 8-byte gap before each TSO segment: its VXLAN header, for GSO sends.
        plain = PlainFrames(gap: VXLAN.headerLength, maxFrameLength: endpoint.maxInnerFrame)
        headers = .allocate(byteCount: plain.capacity * VXLAN.headerLength, alignment: 8)
        owners = .allocate(capacity: Int(TAPESTRY_BATCH_MAX))
        spans = .allocate(capacity: Int(TAPESTRY_BATCH_MAX))
        innerBytes = .allocate(capacity: Int(TAPESTRY_BATCH_MAX))
        segmentSizes = .allocate(capacity: Int(TAPESTRY_BATCH_MAX))
        failed = .allocate(capacity: plain.capacity)
        counters = .allocate(capacity: max(1, tunnel.remotes.count))
        counters.initialize(repeating: RemoteCounters(), count: max(1, tunnel.remotes.count))
    }

    deinit {
        close()
        messages.deallocate()
        sources.deallocate()
        destinations.deallocate()
        headers.deallocate()
        owners.deallocate()
        spans.deallocate()
        innerBytes.deallocate()
        segmentSizes.deallocate()
        failed.deallocate()
        counters.deallocate()
    }

    /// The first source port the pool tries.
    static func poolBase(_ tunnel: DatapathConfiguration.Tunnel) -> UInt16 {
        var hash = UInt64(tunnel.local.rawValue) << 16 | UInt64(tunnel.udpPort)
        hash = (hash ^ (hash >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        return 49152 + UInt16(truncatingIfNeeded: (hash >> 40) % UInt64(16384 - Self.sourcePorts))
    }

    /// The local ports frames leave from, for `ctl show`.
    var sourcePortList: [UInt16] {
        guard !closed else { return [] }
        return senders.compactMap { fd in
            var address = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let status = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            return status == 0 ? UInt16(bigEndian: address.sin_port) : nil
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(descriptor)
        for fd in senders { Glibc.close(fd) }
    }

    /// Receives up to `limit` packets into `batch`; what `admit` refuses is a `tunnel` drop, a
    /// datagram longer than a slot an `oversize` one. Returns errno when the socket failed.
    func receive(into batch: FrameBatch, limit: Int, _ drops: PortDrops) -> Int32? {
        var wanted = 0
        while wanted < min(limit, Int(TAPESTRY_BATCH_MAX)), let area = batch.freeFrameArea(ahead: wanted) {
            // The VXLAN header goes into the slot's headroom, just before where frames start.
            messages[wanted] = tapestry_message(
                header: nil, header_length: 0, frame: area.baseAddress! - VXLAN.headerLength,
                capacity: UInt32(area.count + VXLAN.headerLength), length: 0, flags: 0, vlan_tci: 0, vlan_tpid: 0)
            wanted += 1
        }
        guard wanted > 0 else { return nil }
        // One copy of the endpoint per batch: reading the stored property per packet would
        // retain and release its tables each time.
        let endpoint = self.endpoint
        let received = tapestry_udp_recv(descriptor, messages, Int32(wanted), sources)
        if received < 0 { return -received == EINTR ? nil : -received }
        for index in 0..<Int(received) {
            let message = messages[index]
            let length = Int(message.length)
            if message.flags & TAPESTRY_RX_TRUNCATED != 0 {
                drops.received(.oversize, bytes: length)
                continue
            }
            let payload = UnsafeRawBufferPointer(start: message.frame, count: length)
            guard case .success(let admission) = endpoint.admit(source: IPv4Address(rawValue: sources[index]), payload: payload)
            else {
                drops.received(.tunnel, bytes: max(0, length - VXLAN.headerLength))
                continue
            }
            let inner = length - VXLAN.headerLength
            // A refused datagram left a gap: move this one down to the next free slot.
            if let target = batch.freeFrameArea(ahead: 0), target.baseAddress! != message.frame + VXLAN.headerLength {
                target.baseAddress!.copyMemory(from: message.frame + VXLAN.headerLength, byteCount: inner)
            }
            batch.commitTunnelFrame(length: inner, network: admission.network, remote: admission.remote)
            counters[Int(admission.remote)].framesIn &+= 1
            counters[Int(admission.remote)].bytesIn &+= UInt64(inner)
        }
        return nil
    }

    /// Sends `portID`'s transmit queue: each frame (or TSO segment) to its remote, floods to all.
    func transmit(_ queues: TransmitQueues, _ portID: PortID, _ drops: PortDrops) {
        plain.gather(queues, portID, drops) {
            send(queues, portID, drops)
            return true
        }
    }

    /// The most segments one UDP GSO send carries (the kernel's UDP_MAX_SEGMENTS is 64 or more),
    /// and the most bytes (a UDP datagram's length field, less the headers).
    static let maxSegmentsPerSend = 64
    static let maxBytesPerSend = 65_000

    /// Entries `first...` of `plain` that go out as one UDP GSO send: the segments of one TSO
    /// frame, contiguous with their 8-byte gaps, all as long as the first but the last. 1 when
    /// GSO is off or the entry stands alone.
    private func run(from first: Int) -> Int {
        guard gso, first + 1 < plain.count else { return 1 }
        let unit = plain.lengths[first]
        var end = first + 1
        var bytes = unit + VXLAN.headerLength
        while end < plain.count, end - first < Self.maxSegmentsPerSend, plain.sources[end] == plain.sources[first],
            plain.starts[end] == plain.starts[end - 1] + plain.lengths[end - 1] + VXLAN.headerLength,
            plain.lengths[end] <= unit, plain.lengths[end - 1] == unit,
            bytes + plain.lengths[end] + VXLAN.headerLength <= Self.maxBytesPerSend
        {
            bytes += plain.lengths[end] + VXLAN.headerLength
            end += 1
        }
        return end - first
    }

    private func send(_ queues: TransmitQueues, _ portID: PortID, _ drops: PortDrops) {
        let endpoint = self.endpoint  // once per batch, as in `receive`
        let remotes = endpoint.tunnel.remotes
        for i in 0..<plain.count {
            let vni = queues.vni(portID, plain.sources[i])
            VXLAN.writeHeader(
                vni: vni, at: UnsafeMutableRawBufferPointer(start: headers + i * VXLAN.headerLength, count: VXLAN.headerLength))
            // A TSO segment also gets its header in the gap before it, where a GSO send reads it.
            if plain.isSegment(i) {
                VXLAN.writeHeader(
                    vni: vni, at: UnsafeMutableRawBufferPointer(start: plain.starts[i] - VXLAN.headerLength, count: VXLAN.headerLength))
            }
            failed[i] = false
        }
        // One pass per source-port socket: a flow's frames all leave from the socket its hash picks.
        for (socketIndex, fd) in senders.enumerated() {
            var count = 0
            func fail(_ m: Int) {
                for entry in owners[m]..<(owners[m] + spans[m]) { failed[entry] = true }
                counters[Int(sources[m])].sendFailures &+= UInt64(spans[m])
            }
            func flush() {
                guard count > 0 else { return }
                var first = 0
                while first < count {
                    let sent = tapestry_udp_send_segments(
                        fd, messages + first, Int32(count - first), destinations + first, endpoint.tunnel.udpPort,
                        segmentSizes + first)
                    if sent > 0 {
                        for m in first..<(first + Int(sent)) {
                            let remote = Int(sources[m])
                            counters[remote].framesOut &+= UInt64(spans[m])
                            counters[remote].bytesOut &+= UInt64(innerBytes[m])
                        }
                        first += Int(sent)
                        continue
                    }
                    if -sent == EINTR { continue }
                    if -sent == EAGAIN || -sent == ENOBUFS {
                        // The socket buffer is full: the rest of these copies are lost.
                        for m in first..<count { fail(m) }
                        break
                    }
                    if segmentSizes[first] != 0 && (-sent == EIO || -sent == EINVAL || -sent == ENOPROTOOPT) {
                        // The path does not take UDP GSO: these go out one by one from now on.
                        gso = false
                    }
                    // This copy's remote refused it (no route, a smaller path MTU): only this
                    // copy is lost, the others still go.
                    fail(first)
                    first += 1
                }
                count = 0
            }
            var i = 0
            while i < plain.count {
                let source = plain.sources[i]
                let span = run(from: i)
                defer { i += span }
                guard Int(queues.flowHash(portID, source) % UInt32(senders.count)) == socketIndex else { continue }
                var bytes = 0
                for entry in i..<(i + span) { bytes += plain.lengths[entry] }
                for remote in endpoint.destinations(queues, source) {
                    if count == Int(TAPESTRY_BATCH_MAX) { flush() }
                    if span > 1 {
                        // The segments and their headers back to back: the kernel cuts them apart.
                        messages[count] = tapestry_message(
                            header: nil, header_length: 0, frame: plain.starts[i] - VXLAN.headerLength, capacity: 0,
                            length: UInt32(bytes + span * VXLAN.headerLength), flags: 0, vlan_tci: 0, vlan_tpid: 0)
                        segmentSizes[count] = UInt16(plain.lengths[i] + VXLAN.headerLength)
                    } else {
                        messages[count] = tapestry_message(
                            header: headers + i * VXLAN.headerLength, header_length: UInt32(VXLAN.headerLength),
                            frame: plain.starts[i], capacity: 0, length: UInt32(plain.lengths[i]), flags: 0, vlan_tci: 0,
                            vlan_tpid: 0)
                        segmentSizes[count] = 0
                    }
                    destinations[count] = remotes[remote].rawValue
                    sources[count] = UInt32(remote)  // reused: the remote of each message
                    owners[count] = i
                    spans[count] = span
                    innerBytes[count] = bytes
                    count += 1
                }
            }
            flush()
        }
        var last = -1
        for i in 0..<plain.count where failed[i] && plain.sources[i] != last {
            last = plain.sources[i]
            drops.unsent(.txFull, bytes: queues.frame(portID, last).count)
        }
    }
}
