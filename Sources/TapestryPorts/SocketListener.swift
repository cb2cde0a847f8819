import CTapestryLinux
import Foundation
import TapestryControl
import TapestryTopology

#if canImport(Glibc)
import Glibc
#endif

/// A listening socket of the control thread (`ControlServer`): a unix socket for control (mode
/// 0600) or a TCP socket for metrics. This only opens and closes it; clients are served there.
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
    /// stale socket file left by one that died. `createDirectory`: for the default path only (the
    /// switch's own directory); a directory the user named must exist, so a typo in `control:`
    /// is an error rather than a new directory somewhere.
    init(unixPath path: String, switchName: String, createDirectory: Bool) throws(ListenError) {
        let directory = (path as NSString).deletingLastPathComponent
        if createDirectory {
            // 0700: for an ordinary user this may be /tmp/tapestry-UID, which nobody else may enter.
            try? FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } else {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw .inUse("control socket \(path): the directory \(directory) does not exist; create it, or leave `control:` out for the default path")
            }
        }
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
        // Bound under umask 0177, so the file is 0600 from the moment it exists (a chmod after
        // bind would leave a window in which the process umask decides who may connect).
        guard SocketFile.bindPrivately(fd, path) == 0 else {
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

    /// Whether something accepts connections on the unix socket at `path`.
    static func answers(unixPath path: String) -> Bool {
        guard let fd = UnixSocketAddress.connect(path) else { return false }
        close(fd)
        return true
    }
}
