import TapestryWire

extension Topology {
    /// Who may connect to a socket port. `peers` (TCP stream ports): the source prefixes allowed,
    /// empty for any source that reaches the address. `mode` and `group` (unix stream and
    /// datagram ports): the socket file's permission bits and group, set right after it is bound;
    /// connecting to a unix stream socket, or sending to a datagram one, needs write permission
    /// on its file.
    public struct SocketAccess: Sendable, Equatable {
        public var peers: [IPPrefix] = []
        public var mode: UInt16 = 0o600
        public var group: String?
        public init(peers: [IPPrefix] = [], mode: UInt16 = 0o600, group: String? = nil) {
            self.peers = peers
            self.mode = mode
            self.group = group
        }
    }
}
