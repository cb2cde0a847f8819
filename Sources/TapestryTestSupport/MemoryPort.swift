/// An in-memory port: frames queued to arrive on it, and frames the switch sent out of it.
public final class MemoryPort {
    public let name: String
    var inbound: [[UInt8]] = []
    var outbound: [[UInt8]] = []

    init(name: String) { self.name = name }

    /// Frames sent out of this port since the last call, oldest first.
    public func drainSent() -> [[UInt8]] {
        defer { outbound.removeAll() }
        return outbound
    }

    public var unreadCount: Int { outbound.count }
}
