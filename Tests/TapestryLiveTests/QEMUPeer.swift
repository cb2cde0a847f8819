import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A test client that speaks what QEMU's socket backends speak: `-netdev stream` (each frame a
/// 4-byte big-endian length, then the frame, over a unix or TCP connection) and `-netdev dgram`
/// (one frame per unix datagram, from a bound socket of its own).
final class QEMUPeer {
    let fd: Int32
    private let localPath: String?
    private let datagram: Bool

    private init(fd: Int32, localPath: String?, datagram: Bool) {
        self.fd = fd
        self.localPath = localPath
        self.datagram = datagram
    }

    deinit {
        close(fd)
        if let localPath { unlink(localPath) }
    }

    /// Connects to a stream port at a unix path.
    static func stream(unix path: String) throws -> QEMUPeer {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard with(path, { connect(fd, $0, $1) }) == 0 else {
            close(fd)
            throw LabError("connect \(path): \(String(cString: strerror(errno)))")
        }
        return QEMUPeer(fd: fd, localPath: nil, datagram: false)
    }

    /// Connects to a stream port on 127.0.0.1:`port`.
    static func stream(tcpPort port: UInt16) throws -> QEMUPeer {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            close(fd)
            throw LabError("connect 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
        }
        return QEMUPeer(fd: fd, localPath: nil, datagram: false)
    }

    /// Binds `local` and sends to the datagram port at `remote`, as QEMU's dgram backend does.
    static func datagram(local: String, remote: String) throws -> QEMUPeer {
        unlink(local)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard with(local, { bind(fd, $0, $1) }) == 0, with(remote, { connect(fd, $0, $1) }) == 0 else {
            close(fd)
            throw LabError("dgram \(local) -> \(remote): \(String(cString: strerror(errno)))")
        }
        // The switch may run as another user (nobody): it needs write permission to answer.
        chmod(local, 0o666)
        return QEMUPeer(fd: fd, localPath: local, datagram: true)
    }

    private static func with(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { bytes in
            for (index, byte) in path.utf8.prefix(bytes.count - 1).enumerated() { bytes[index] = byte }
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// The bytes QEMU writes for `frames` on a stream (each length-prefixed), or one datagram.
    static func framed(_ frames: [[UInt8]]) -> [UInt8] {
        frames.flatMap { frame in
            withUnsafeBytes(of: UInt32(frame.count).bigEndian) { Array($0) } + frame
        }
    }

    /// Sends raw bytes as they are (for a stream: framing included, or deliberately broken).
    func sendRaw(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw LabError("send: \(String(cString: strerror(errno)))") }
            offset += sent
        }
    }

    func send(_ frame: [UInt8]) throws {
        if datagram {
            let sent = frame.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            guard sent == frame.count else { throw LabError("send datagram: \(String(cString: strerror(errno)))") }
        } else {
            try sendRaw(Self.framed([frame]))
        }
    }

    private func waitReadable(_ timeout: Double) -> Bool {
        var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return Glibc.poll(&poll, 1, Int32(timeout * 1000)) == 1
    }

    private func readExactly(_ count: Int, deadline: Date) -> [UInt8]? {
        var bytes = [UInt8]()
        while bytes.count < count {
            guard waitReadable(max(0, deadline.timeIntervalSinceNow)) else { return nil }
            var chunk = [UInt8](repeating: 0, count: count - bytes.count)
            let got = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard got > 0 else { return nil }
            bytes += chunk[0..<got]
        }
        return bytes
    }

    /// The next frame, or nil when none arrives within `timeout` seconds (or the switch closed).
    func receive(timeout: Double = 2) -> [UInt8]? {
        let deadline = Date().addingTimeInterval(timeout)
        if datagram {
            guard waitReadable(timeout) else { return nil }
            var buffer = [UInt8](repeating: 0, count: 70_000)
            let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            return got >= 0 ? Array(buffer[0..<got]) : nil
        }
        guard let header = readExactly(4, deadline: deadline) else { return nil }
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        return readExactly(length, deadline: deadline)
    }

    /// Whether the switch closed this stream connection within `timeout` seconds.
    func closedBySwitch(timeout: Double = 2) -> Bool {
        guard waitReadable(timeout) else { return false }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    /// An Ethernet frame of `length` bytes with a local experimental EtherType (0x88B5), so no
    /// pipeline stage looks inside; the payload counts up from `seed`.
    static func frame(to destination: String, from source: String, length: Int = 64, seed: UInt8 = 0) -> [UInt8] {
        func mac(_ text: String) -> [UInt8] { text.split(separator: ":").map { UInt8($0, radix: 16)! } }
        let header = mac(destination) + mac(source) + [0x88, 0xB5]
        return header + (0..<(length - 14)).map { UInt8(truncatingIfNeeded: Int(seed) + $0) }
    }
}
