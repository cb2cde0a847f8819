#if canImport(Glibc)
import Glibc
#endif

/// Why a port could not be attached or used: the port, the operation, and the system's reason.
public struct PortError: Error, CustomStringConvertible, Sendable, Equatable {
    public var port: String
    public var operation: String
    public var errno: Int32?
    public var detail: String?

    public init(port: String, operation: String, errno: Int32? = nil, detail: String? = nil) {
        self.port = port
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        if port.isEmpty, operation.isEmpty { return detail ?? "unknown error" }
        var text = port.isEmpty ? "\(operation) failed" : "port '\(port)': \(operation) failed"
        if let errno { text += ": \(String(cString: strerror(errno)))" }
        if let detail { text += " (\(detail))" }
        return text
    }
}
