import CTapestryLinux
import Foundation
import TapestryProcess
import TapestryWire

#if canImport(Glibc)
import Glibc
#endif

/// A TAP device opened through /dev/net/tun: created if missing, attached if it already exists
/// as a persistent device; non-blocking; brought up; optionally moved into a named network
/// namespace (the descriptor keeps working there). A persistent device already in that namespace
/// (a restart after it was moved there) is attached where it is.
///
/// Closing the descriptor destroys a device this process created (non-persistent), so a failed
/// attach leaves nothing behind.
public final class TAPDevice {
    public let port: String
    public let name: String
    public let fileDescriptor: Int32
    /// True when frames carry a 12-byte virtio-net header and the device takes checksum and TSO
    /// offloads (64 KB TCP segments cross in one read and one write).
    public let offloads: Bool
    private var closed = false

    /// Opens (or creates) TAP device `name` for `port` with IFF_TAP | IFF_NO_PI, non-blocking and up;
    /// with `offloads`, also IFF_VNET_HDR, a 12-byte header and checksum/TSO offloads; then, if
    /// `netns` is given, moves it into that namespace and brings it up there.
    public init(port: String, name: String, netns: String? = nil, offloads: Bool = false) throws(PortError) {
        self.port = port
        guard (1...15).contains(name.utf8.count) else {
            throw PortError(
                port: port, operation: "open tap '\(name)'", detail: "device names are 1 to 15 bytes")
        }
        let flags = TAPESTRY_IFF_TAP | TAPESTRY_IFF_NO_PI | (offloads ? TAPESTRY_IFF_VNET_HDR : 0)
        let inNamespace = netns.map { Self.exists(name, in: $0) } ?? false
        let fd: Int32
        if inNamespace, let netns {
            var step: UnsafePointer<CChar>? = nil
            let opened = tapestry_tap_open_in("/run/netns/\(netns)", name, flags, &step)
            guard opened >= 0 else {
                let what = step.map { String(cString: $0) } ?? "attach"
                throw PortError(port: port, operation: "attach tap '\(name)' in netns '\(netns)' (\(what))", errno: -opened)
            }
            fd = opened
        } else {
            fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else {
                throw PortError(port: port, operation: "open /dev/net/tun", errno: errno)
            }
            var request = ifreq()
            InterfaceFlags.setName(&request, name)
            request.ifr_ifru.ifru_flags = flags
            guard ioctl(fd, TAPESTRY_TUNSETIFF, &request) == 0 else {
                let code = errno
                close(fd)
                var hint = code == EBUSY ? "the device is in use by another process" : nil
                if code == EINVAL, FileManager.default.fileExists(atPath: "/sys/class/net/\(name)"),
                    !FileManager.default.fileExists(atPath: "/sys/class/net/\(name)/tun_flags")
                {
                    hint = "a device named '\(name)' exists and is not a TAP device; name another, or attach it with an `interface:` port"
                }
                throw PortError(port: port, operation: "attach tap '\(name)' (TUNSETIFF)", errno: code, detail: hint)
            }
        }
        if offloads {
            var headerSize: Int32 = Int32(VirtioNetHeader.length)
            let features = TAPESTRY_TUN_F_CSUM | TAPESTRY_TUN_F_TSO4 | TAPESTRY_TUN_F_TSO6 | TAPESTRY_TUN_F_TSO_ECN
            guard ioctl(fd, TAPESTRY_TUNSETVNETHDRSZ, &headerSize) == 0,
                ioctl(fd, TAPESTRY_TUNSETOFFLOAD, Int32(bitPattern: features)) == 0
            else {
                let code = errno
                close(fd)
                throw PortError(port: port, operation: "enable offloads on tap '\(name)'", errno: code)
            }
        }
        self.name = name
        self.fileDescriptor = fd
        self.offloads = offloads
        do {
            if inNamespace, let netns {
                try Self.ip(["-n", netns, "link", "set", name, "up"], port: port)
            } else {
                try InterfaceFlags.setUp(name: name, port: port)
                if let netns { try Self.move(name: name, into: netns, port: port) }
            }
        } catch {
            close(fd)
            closed = true
            throw error
        }
    }

    deinit { closeDevice() }

    /// Closes the descriptor (destroying the device unless it is persistent).
    public func closeDevice() {
        guard !closed else { return }
        closed = true
        close(fileDescriptor)
    }

    /// Reads one frame into `buffer`; nil when none is waiting (EAGAIN).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(PortError) -> Int? {
        while true {
            let count = Glibc.read(fileDescriptor, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            switch errno {
            case EINTR: continue
            case EAGAIN: return nil
            default: throw PortError(port: port, operation: "read from tap '\(name)'", errno: errno)
            }
        }
    }

    /// Writes one frame; false when the device's queue is full (EAGAIN): the caller counts that drop.
    public func write(_ frame: UnsafeRawBufferPointer) throws(PortError) -> Bool {
        while true {
            let count = Glibc.write(fileDescriptor, frame.baseAddress, frame.count)
            if count >= 0 { return true }
            switch errno {
            case EINTR: continue
            case EAGAIN: return false
            default: throw PortError(port: port, operation: "write to tap '\(name)'", errno: errno)
            }
        }
    }

    /// Moves the device into a named namespace (as `ip netns` names them) and brings it up there.
    /// Uses iproute2, which knows where named namespaces live.
    private static func move(name: String, into netns: String, port: String) throws(PortError) {
        guard FileManager.default.fileExists(atPath: "/run/netns/\(netns)") else {
            throw PortError(port: port, operation: "move '\(name)' into netns '\(netns)'", detail: "no such namespace")
        }
        for arguments in [["link", "set", name, "netns", netns], ["-n", netns, "link", "set", name, "up"]] {
            try ip(arguments, port: port)
        }
    }

    private static func ip(_ arguments: [String], port: String) throws(PortError) {
        let (status, output) = runIP(arguments)
        guard status == 0 else {
            throw PortError(
                port: port, operation: "ip \(arguments.joined(separator: " "))",
                detail: output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// Whether device `name` exists in namespace `netns` (and not, by that name, here: a device
    /// here is the one to attach and move).
    private static func exists(_ name: String, in netns: String) -> Bool {
        guard FileManager.default.fileExists(atPath: "/run/netns/\(netns)"),
            !FileManager.default.fileExists(atPath: "/sys/class/net/\(name)")
        else { return false }
        return runIP(["-n", netns, "link", "show", "dev", name]).0 == 0
    }

    /// `ip` with a clean signal mask: this thread blocks SIGTERM, SIGINT and SIGHUP for the
    /// switch's signalfd, and a child must not inherit that (ChildProcess).
    private static func runIP(_ arguments: [String]) -> (Int32, String) {
        let result = ChildProcess.run(ChildProcess.ip, arguments, timeout: 30)
        return (result.status, result.output)
    }
}
