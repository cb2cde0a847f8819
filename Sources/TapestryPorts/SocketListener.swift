import CTapestryLinux
import Foundation
import TapestryTopology

#if canImport(Glibc)
import Glibc
#endif

/// A listening socket the live loop polls with its other descriptors: a unix socket for control
/// (mode 0600) or a TCP socket for metrics. Each request is one short exchange: read what the
/// client sends (up to a newline, or an HTTP header's end), answer, close. The accepted socket
/// gets a 200 ms receive timeout, so a silent client costs the switch at most that.
final class SocketListener {
    let descriptor: Int32
    let path: String?

    enum ListenError: Error, CustomStringConvertible {
        case inUse(String)
        case failed(String, Int32)

        var description: String {
            switch self {
            case .inUse(let text): return text
            case .failed(let what, let code): return "\(what): \(String(cString: strerror(code)))"
            }
        }
    }

    /// A unix stream socket at `path`. Refuses when a switch already answers there; removes a
    /// stale socket file left by one that died.
    init(unixPath path: String, switchName: String) throws(ListenError) {
        let directory = (path as NSString).deletingLastPathComponent
        // 0700: for an ordinary user this may be /tmp/tapestry-UID, which nobody else may enter.
        try? FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var status = stat()
        if geteuid() != 0, stat(directory, &status) == 0, status.st_uid != geteuid() {
            throw .inUse("\(directory) belongs to another user; set `control:` to a path of yours")
        }
        if FileManager.default.fileExists(atPath: path) {
            if Self.answers(unixPath: path) {
                throw .inUse("a switch is already running with control socket \(path); stop it first (or give this topology another name or `control:` path)")
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw .failed("socket", errno) }
        guard UnixSocketAddress.with(path, { bind(fd, $0, $1) }) == 0 else {
            let code = errno
            close(fd)
            throw .failed("bind \(path)", code)
        }
        chmod(path, 0o600)
        guard listen(fd, 16) == 0 else {
            let code = errno
            close(fd)
            unlink(path)
            throw .failed("listen \(path)", code)
        }
        descriptor = fd
        self.path = path
    }

    /// A TCP socket on `host:port` (an IPv4 or IPv6 literal).
    init(tcpHost host: String, port: UInt16) throws(ListenError) {
        let family = host.contains(":") ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw .failed("socket", errno) }
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        let bound = SocketFile.bind(fd, Topology.SocketAddress(host: host, port: port))
        guard bound == 0, listen(fd, 16) == 0 else {
            let code = errno
            close(fd)
            throw .failed("listen on \(host):\(port)", code)
        }
        descriptor = fd
        path = nil
    }

    deinit {
        close(descriptor)
        if let path { unlink(path) }
    }

    /// Accepts one waiting client, reads its request, and writes `respond(request)` back. A nil
    /// answer keeps the client: the caller answers later with `reply(to:_:)` (a live trace).
    func serveOne(_ respond: (String, Int32) -> String?) {
        let client = accept(descriptor, nil, nil)
        guard client >= 0 else { return }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while request.count < 16_384 {
            let count = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            request += buffer[0..<count]
            if request.contains(UInt8(ascii: "\n")) && (request.starts(with: Array("GET".utf8)) == false
                || String(decoding: request, as: UTF8.self).contains("\r\n\r\n"))
            {
                break
            }
        }
        guard let text = respond(String(decoding: request, as: UTF8.self), client) else { return }
        Self.reply(to: client, text)
    }

    /// Writes `text` to a kept client and closes it.
    static func reply(to client: Int32, _ text: String) {
        defer { close(client) }
        let answer = Array(text.utf8)
        var offset = 0
        while offset < answer.count {
            // MSG_NOSIGNAL: a client that hung up must not kill the switch with SIGPIPE.
            let written = answer[offset...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { break }
            offset += written
        }
    }

    /// Whether something accepts connections on the unix socket at `path`.
    static func answers(unixPath path: String) -> Bool {
        guard let fd = UnixSocketAddress.connect(path) else { return false }
        close(fd)
        return true
    }
}
