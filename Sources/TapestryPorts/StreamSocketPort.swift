import CTapestryLinux
import Foundation
import TapestryControl
import TapestryDatapath
import TapestryTopology
import TapestryWire

#if canImport(Glibc)
import Glibc
#endif

/// A `socket:` port for QEMU's `-netdev stream` (unix or TCP): the switch listens, one VM
/// connects, and each frame crosses as a 4-byte big-endian length and the frame. The port is down
/// while no VM is connected. One VM per port: while one is connected, another connection is
/// accepted and closed at once (logged, counted), so nobody else who can reach the socket takes
/// the port over; a TCP port also refuses sources outside its `peers`. A TCP peer that vanished
/// without closing is found by keepalive (and a user timeout while data waits), within 45 s.
///
/// Input is read in large chunks into a reassembly buffer and whole frames are copied into the
/// batch. Output goes out with one writev per batch; bytes the socket does not take are kept in a
/// backlog (whole frames only, so the stream never loses its framing) and sent when it is
/// writable again; what does not fit the backlog is dropped as `tx-full`.
final class StreamSocketPort {
    let port: String
    let endpoint: Topology.SocketEndpoint
    /// Who may connect: `peers` is read at each accept (a reload may change it).
    var access: Topology.SocketAccess
    let listener: Int32
    /// Connections refused: a second one while a VM is connected, or a source outside `peers`.
    private(set) var refused: UInt64 = 0
    /// Refusals are logged at most once a second; the others are counted into the next line.
    private var lastRefusalLog: Int64 = .min
    private var unloggedRefusals = 0
    private(set) var connection: Int32 = -1
    /// Whether the port has its VM (`SocketPortLifecycle`): decides refusals, and when a closed
    /// connection takes the port down.
    private(set) var lifecycle = SocketPortLifecycle()
    var peer: String { lifecycle.peer ?? "" }
    let maxFrameLength: Int
    /// Whether the connection is also watched for EPOLLOUT (the backlog is not empty).
    private(set) var wantsWritable = false
    private var closed = false

    /// The reassembly buffer and its framing (pure, so it is fuzzed without sockets).
    private let input: StreamReassembly
    private let backlog: UnsafeMutableRawPointer
    private let backlogCapacity: Int
    private var backlogStart = 0
    private var backlogEnd = 0
    /// What the backlog holds, frame by frame: where each piece ends (counted in bytes ever put
    /// into the backlog) and whether it is the last piece of a queued frame, so frames lost with
    /// a connection are counted once each.
    private struct Pending {
        var end: UInt64
        /// The length of the queued frame the piece came from.
        var frameBytes: Int32
        var lastPiece: Bool
    }
    private let pending: UnsafeMutablePointer<Pending>
    private let pendingCapacity: Int
    private var pendingHead = 0
    private var pendingCount = 0
    private var backlogIn: UInt64 = 0
    private var backlogOut: UInt64 = 0
    private var fileIdentity: SocketFile.Identity?
    private let vectors: UnsafeMutablePointer<iovec>
    let plain = PlainFrames(gap: 4)


    init(port: String, endpoint: Topology.SocketEndpoint, access: Topology.SocketAccess, maxFrameLength: Int) throws(PortError) {
        self.port = port
        self.endpoint = endpoint
        self.access = access
        self.maxFrameLength = maxFrameLength
        listener = try Self.listen(port: port, endpoint: endpoint, access: access)
        input = StreamReassembly(maxFrameLength: maxFrameLength)
        backlogCapacity = 4 * (4 + maxFrameLength)
        backlog = .allocate(byteCount: backlogCapacity, alignment: 64)
        pendingCapacity = backlogCapacity / 18 + 2
        pending = .allocate(capacity: pendingCapacity)
        vectors = .allocate(capacity: plain.capacity)
        if case .unixStream(let path) = endpoint { fileIdentity = SocketFile.identity(path) }
    }

    deinit {
        close()
        backlog.deallocate()
        pending.deallocate()
        vectors.deallocate()
    }

    /// Stops listening (removing a unix socket's file) and drops the connection.
    func close() {
        disconnect()
        guard !closed else { return }
        closed = true
        Glibc.close(listener)
        if case .unixStream(let path) = endpoint { SocketFile.remove(path, ifStill: fileIdentity) }
    }

    var isConnected: Bool { connection >= 0 }

    enum Accepted {
        /// The VM's connection (the port comes up: `change`).
        case connected(Int32, SocketPortLifecycle.Change)
        /// Accepted and closed at once; the reason, for the log when it is due (nil: not yet,
        /// the refusal is counted into the next line).
        case refused(String?)
    }

    /// Accepts a waiting connection: the port's VM if none is connected and the source is
    /// allowed; anything else is closed at once.
    func accept() -> Accepted? {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                tapestry_accept(listener, $0, &length)
            }
        }
        guard fd >= 0 else { return nil }
        let isTCP: Bool
        if case .tcpStream = endpoint { isTCP = true } else { isTCP = false }
        let who = isTCP ? Self.describe(&address) : "a unix client"
        let allowed = !isTCP || access.peers.isEmpty || Self.source(&address, isIn: access.peers)
        if let reason = lifecycle.refusal(
            of: who, allowedSource: allowed, peers: access.peers.map(\.description).joined(separator: ", "))
        {
            Glibc.close(fd)
            refused &+= 1
            var clock = timespec()
            clock_gettime(CLOCK_MONOTONIC, &clock)
            let now = Int64(clock.tv_sec) * 1_000_000_000 + Int64(clock.tv_nsec)
            guard lastRefusalLog == .min || now - lastRefusalLog >= 1_000_000_000 else {
                unloggedRefusals += 1
                return .refused(nil)
            }
            lastRefusalLog = now
            let more = unloggedRefusals > 0 ? " (and \(unloggedRefusals) more refused since the last such line)" : ""
            unloggedRefusals = 0
            return .refused(reason + more)
        }
        adopt(fd)
        if isTCP { Self.keepAlive(fd) }
        return .connected(fd, lifecycle.connected(who))
    }

    /// Takes `fd`, a connected stream socket, as the VM's connection (socket options for a VM's
    /// traffic). Tests hand it one end of a socketpair.
    func adopt(_ fd: Int32) {
        connection = fd
        var size: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        if case .tcpStream = endpoint {
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// For tests: a connection handed over by `adopt` from `who` comes up as `accept` would.
    func adoptForTesting(_ fd: Int32, from who: String) -> SocketPortLifecycle.Change {
        adopt(fd)
        return lifecycle.connected(who)
    }

    /// A TCP peer that went away without closing (a host that lost power, a cut link) would hold
    /// the port forever, and with it the one-VM slot. Keepalive probes after 15 s of silence,
    /// every 5 s, 6 unanswered: dead within 45 s; the user timeout ends it likewise when sent
    /// data stays unacknowledged for 45 s (keepalive does not probe while data is in flight).
    /// Unix sockets need neither: a peer process that ends, however it ends, closes its side.
    static let keepAliveIdle: Int32 = 15, keepAliveInterval: Int32 = 5, keepAliveCount: Int32 = 6
    static let userTimeoutMilliseconds: Int32 = 45_000

    private static func keepAlive(_ fd: Int32) {
        let size = socklen_t(MemoryLayout<Int32>.size)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, size)
        var idle = keepAliveIdle, interval = keepAliveInterval, count = keepAliveCount, timeout = userTimeoutMilliseconds
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &interval, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, &count, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, &timeout, size)
    }

    /// Whether a TCP source address is in `prefixes` (an IPv4 client of a dual-stack `::`
    /// listener, seen as ::ffff:a.b.c.d, is matched as the IPv4 address it is).
    static func source(_ address: inout sockaddr_storage, isIn prefixes: [IPPrefix]) -> Bool {
        if address.ss_family == sa_family_t(AF_INET) {
            let v4 = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee } }
            let ip = IPv4Address(rawValue: UInt32(bigEndian: v4.sin_addr.s_addr))
            return prefixes.contains { $0.contains(ip) }
        }
        guard address.ss_family == sa_family_t(AF_INET6) else { return false }
        let v6 = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee } }
        var bytes = [UInt8](repeating: 0, count: 16)
        withUnsafeBytes(of: v6.sin6_addr) { raw in for index in 0..<16 { bytes[index] = raw[index] } }
        let high = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let low = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        if high == 0, low >> 32 == 0xFFFF {
            let ip = IPv4Address(rawValue: UInt32(truncatingIfNeeded: low))
            return prefixes.contains { $0.contains(ip) }
        }
        let ip = IPv6Address(high: high, low: low)
        return prefixes.contains { $0.contains(ip) }
    }

    /// The batch holding a closed connection's last frames has run: a closing port goes down
    /// now, its backlog reported lost (`port-down`).
    func batchRan(_ drops: PortDrops) -> SocketPortLifecycle.Change {
        let change = lifecycle.batchRan()
        if case .down = change { disconnect { drops.unsent(.portDown, bytes: $0) } }
        return change
    }

    /// The connection broke while sending (or the loop cannot watch it): down at once, its
    /// backlog reported lost.
    func broke(_ reason: String, _ drops: PortDrops) -> SocketPortLifecycle.Change {
        let change = lifecycle.connectionBroke(reason)
        disconnect { drops.unsent(.portDown, bytes: $0) }
        return change
    }

    /// Closes the connection and forgets its buffered bytes (a partial frame cannot be finished);
    /// `lost` is called with the length of each frame the backlog still held.
    private func disconnect(lost: (Int) -> Void = { _ in }) {
        if connection >= 0 { Glibc.close(connection) }
        connection = -1
        input.reset()
        for index in 0..<pendingCount {
            let piece = pending[(pendingHead + index) % pendingCapacity]
            if piece.lastPiece { lost(Int(piece.frameBytes)) }
        }
        pendingHead = 0
        pendingCount = 0
        backlogIn = 0
        backlogOut = 0
        backlogStart = 0
        backlogEnd = 0
        wantsWritable = false
    }

    /// Whether a whole frame is buffered (it would be lost to epoll, which only reports the socket).
    var hasBufferedFrame: Bool { input.hasWholeFrame }

    /// Moves up to `limit` frames into `batch`, reading the socket when no whole frame is
    /// buffered. A length over `maxFrameLength` ends the connection: the stream cannot be trusted.
    /// When the connection ends the lifecycle is `closing` (the port goes down after the batch
    /// ran, `batchRan`) and a frame it left unfinished is reported as `invalid`.
    func receive(into batch: FrameBatch, limit: Int, _ drops: PortDrops) {
        guard isConnected, case .up = lifecycle.state else { return }
        func closed(_ reason: String, brokenFrame: Int?) {
            if let brokenFrame { drops.received(.invalid, bytes: brokenFrame) }
            lifecycle.inputEnded(reason)
        }
        var taken = 0
        var mayRead = true
        while taken < limit, !batch.isFull {
            switch input.next() {
            case .frame(let frame):
                batch.append(frame)
                taken += 1
                continue
            case .tooLong(let length):
                return closed(
                    "the peer announced a \(length)-byte frame, more than \(maxFrameLength); the stream is not QEMU's framing",
                    brokenFrame: input.buffered)
            case .needMore:
                break
            }
            guard mayRead else { break }
            let room = input.room()
            let count = Glibc.read(connection, room.baseAddress, room.count)
            if count > 0 {
                input.didFill(count)
                // A short read emptied the socket; epoll reports it again when more arrives.
                if count < room.count { mayRead = false }
                continue
            }
            if count == 0 {
                let pending = input.buffered
                if pending == 0 { return closed("the peer closed the connection", brokenFrame: nil) }
                let wanted = input.announcedLength.map { "\(4 + $0)" } ?? "at least 4"
                return closed(
                    "the peer closed the connection in the middle of a frame (\(pending) of \(wanted) bytes; the partial frame is dropped)",
                    brokenFrame: pending)
            }
            if errno == EINTR { continue }
            if errno == EAGAIN { break }
            return closed("read failed: \(String(cString: strerror(errno)))", brokenFrame: nil)
        }
    }

    /// Sends `port`'s transmit queue. Returns a reason when the connection broke.
    func transmit(_ queues: TransmitQueues, _ portID: PortID, _ drops: PortDrops) -> String? {
        var broken: String?
        plain.gather(queues, portID, drops) {
            broken = send(queues, portID, drops)
            return broken == nil
        }
        return broken
    }

    /// Writes the gathered frames: straight to the socket when nothing is waiting, else (and for
    /// what the socket does not take) into the backlog.
    private func send(_ queues: TransmitQueues, _ portID: PortID, _ drops: PortDrops) -> String? {
        let count = plain.count
        guard count > 0 else { return nil }
        var first = 0
        var skip = 0  // bytes of frame `first` already written
        if backlogEnd == backlogStart {
            var total = 0
            for i in 0..<count {
                vectors[i] = iovec(iov_base: plain.starts[i] - 4, iov_len: plain.lengths[i] + 4)
                total += plain.lengths[i] + 4
            }
            var written = writev(connection, vectors, Int32(count))
            while written < 0, errno == EINTR { written = writev(connection, vectors, Int32(count)) }
            if written < 0 {
                guard errno == EAGAIN else {
                    let reason = "write failed: \(String(cString: strerror(errno)))"
                    plain.countDropped(from: 0, .portDown, queues, portID, drops)
                    return reason
                }
                written = 0
            }
            if written == total { return nil }
            var left = written
            while left >= plain.lengths[first] + 4 {
                left -= plain.lengths[first] + 4
                first += 1
            }
            skip = left
        }
        // Into the backlog, keeping room for the rest of a partly written frame.
        var lastCounted = -1
        for i in first..<count where plain.sources[i] != lastCounted {
            let whole = plain.lengths[i] + 4
            let part = whole - (i == first ? skip : 0)
            let mustKeep = i == first && skip > 0
            // Room for this piece and still for one whole frame (the rest of a partly written one).
            if backlogCapacity - backlogEnd - part < 4 + maxFrameLength, backlogStart > 0 {
                memmove(backlog, backlog + backlogStart, backlogEnd - backlogStart)
                backlogEnd -= backlogStart
                backlogStart = 0
            }
            if (mustKeep || backlogCapacity - backlogEnd - part >= 4 + maxFrameLength), pendingCount < pendingCapacity {
                (backlog + backlogEnd).copyMemory(from: plain.starts[i] - 4 + (whole - part), byteCount: part)
                backlogEnd += part
                backlogIn += UInt64(part)
                let lastPiece = i == count - 1 || plain.sources[i + 1] != plain.sources[i]
                pending[(pendingHead + pendingCount) % pendingCapacity] = Pending(
                    end: backlogIn, frameBytes: Int32(queues.frame(portID, plain.sources[i]).count), lastPiece: lastPiece)
                pendingCount += 1
            } else {
                lastCounted = plain.sources[i]
                drops.unsent(.txFull, bytes: queues.frame(portID, plain.sources[i]).count)
            }
        }
        return flushBacklog()
    }

    /// Writes as much of the backlog as the socket takes; watches for EPOLLOUT while some is left.
    func flushBacklog() -> String? {
        while backlogEnd > backlogStart {
            let written = Glibc.write(connection, backlog + backlogStart, backlogEnd - backlogStart)
            if written > 0 {
                backlogStart += written
                backlogOut += UInt64(written)
                while pendingCount > 0, pending[pendingHead].end <= backlogOut {
                    pendingHead = (pendingHead + 1) % pendingCapacity
                    pendingCount -= 1
                }
                continue
            }
            if written < 0, errno == EINTR { continue }
            if written < 0, errno != EAGAIN { return "write failed: \(String(cString: strerror(errno)))" }
            break
        }
        if backlogStart == backlogEnd {
            backlogStart = 0
            backlogEnd = 0
        }
        wantsWritable = backlogEnd > backlogStart
        return nil
    }

    // MARK: listening

    private static func listen(port: String, endpoint: Topology.SocketEndpoint, access: Topology.SocketAccess) throws(PortError) -> Int32 {
        let fd: Int32
        switch endpoint {
        case .unixStream(let path):
            try SocketFile.prepare(path, port: port)
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { throw PortError(port: port, operation: "open a unix socket", errno: errno) }
            guard SocketFile.bindPrivately(fd, path) == 0 else {
                let code = errno
                Glibc.close(fd)
                throw PortError(port: port, operation: "listen on \(path)", errno: code)
            }
            if let failure = SocketFile.apply(access, to: path) {
                Glibc.close(fd)
                unlink(path)
                throw PortError(port: port, operation: "listen on \(path)", detail: failure)
            }
        case .tcpStream(let address):
            let family = address.host.contains(":") ? AF_INET6 : AF_INET
            fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { throw PortError(port: port, operation: "open a TCP socket", errno: errno) }
            var reuse: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
            guard SocketFile.bind(fd, address) == 0 else {
                let code = errno
                Glibc.close(fd)
                throw PortError(port: port, operation: "listen on \(address)", errno: code)
            }
        case .unixDatagram:
            throw PortError(port: port, operation: "listen", detail: "a dgram socket is not a stream")
        }
        guard Glibc.listen(fd, 4) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw PortError(port: port, operation: "listen on \(endpoint)", errno: code)
        }
        return fd
    }

    private static func describe(_ address: inout sockaddr_storage) -> String {
        var host = [CChar](repeating: 0, count: 64)
        var service = [CChar](repeating: 0, count: 16)
        let length = socklen_t(address.ss_family == sa_family_t(AF_INET6) ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, 64, &service, 16, NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard status == 0 else { return "a TCP client" }
        let text = { (chars: [CChar]) in String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return "\(text(host)):\(text(service))"
    }
}

/// Socket files and addresses the socket ports share.
enum SocketFile {
    /// Makes room for a unix socket at `path`: creates its directory, removes a stale socket file
    /// (nothing answers there), refuses a live one or a file that is not a socket.
    static func prepare(_ path: String, port: String, datagram: Bool = false) throws(PortError) {
        let directory = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var status = stat()
        guard lstat(path, &status) == 0 else { return }
        guard status.st_mode & S_IFMT == S_IFSOCK else {
            throw PortError(port: port, operation: "listen on \(path)", detail: "the path exists and is not a socket")
        }
        if datagram ? answersDatagrams(path) : SocketListener.answers(unixPath: path) {
            throw PortError(port: port, operation: "listen on \(path)", detail: "something is already listening there")
        }
        unlink(path)
    }

    /// Whether a live datagram socket is bound at `path` (a stale file refuses the connect).
    static func answersDatagrams(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        // Only a refused connection means nothing is bound there; EPERM or EACCES mean something is.
        return tapestry_dgram_connect(fd, path) != -ECONNREFUSED
    }

    /// Which file a socket was bound to, so closing removes its own file and not one that
    /// replaced it (a reload that turns a stream port into a datagram port on the same path).
    struct Identity: Equatable {
        var device: UInt64
        var inode: UInt64
    }

    static func identity(_ path: String) -> Identity? {
        var status = stat()
        guard lstat(path, &status) == 0 else { return nil }
        return Identity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }

    /// Unlinks `path` if it is still the file `identity` names.
    static func remove(_ path: String, ifStill identity: Identity?) {
        guard let identity, Self.identity(path) == identity else { return }
        unlink(path)
    }

    /// Binds a unix socket at `path` under umask 0177: its file is 0600 from the moment it exists,
    /// whatever the process umask, so nobody else can connect before `apply` (or ever, by
    /// default). The umask is the process's; no other thread creates files meanwhile (the
    /// control thread only accepts and reads).
    static func bindPrivately(_ fd: Int32, _ path: String) -> Int32 {
        let previous = umask(0o177)
        defer { umask(previous) }
        return UnixSocketAddress.with(path, { Glibc.bind(fd, $0, $1) })
    }

    /// Gives a bound socket file its group, then its mode (in that order, so a wider mode never
    /// applies to the switch's own group first). nil when done, else what failed.
    static func apply(_ access: Topology.SocketAccess, to path: String) -> String? {
        if let name = access.group {
            var group = group()
            var result: UnsafeMutablePointer<group>?
            var buffer = [CChar](repeating: 0, count: 16_384)
            guard getgrnam_r(name, &group, &buffer, buffer.count, &result) == 0, result != nil else {
                return "group '\(name)' does not exist"
            }
            guard chown(path, uid_t.max, group.gr_gid) == 0 else {
                return "cannot give the socket file to group '\(name)': \(String(cString: strerror(errno)))"
                    + (errno == EPERM ? " (the switch's user must be root or a member of it)" : "")
            }
        }
        guard chmod(path, mode_t(access.mode)) == 0 else {
            return "cannot set the socket file's mode \(String(access.mode, radix: 8)): \(String(cString: strerror(errno)))"
        }
        return nil
    }

    /// Binds `fd` to an IPv4 or IPv6 address.
    static func bind(_ fd: Int32, _ address: Topology.SocketAddress) -> Int32 {
        if address.host.contains(":") {
            var v6 = sockaddr_in6()
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = address.port.bigEndian
            inet_pton(AF_INET6, address.host, &v6.sin6_addr)
            return withUnsafePointer(to: &v6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        var v4 = sockaddr_in()
        v4.sin_family = sa_family_t(AF_INET)
        v4.sin_port = address.port.bigEndian
        inet_pton(AF_INET, address.host, &v4.sin_addr)
        return withUnsafePointer(to: &v4) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
}
