/// The TCP connection-tracking state machine, as a pure value: given a packet's flags and
/// direction it returns the next state or says the packet is invalid. No packets, clocks or
/// tables involved, so every transition is tested on its own (NIO's state-machine style, OVS's
/// `ct_update_res`).
public enum TCPConnectionState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case synSent, synReceived, established, finWait, closeWait, lastAck, timeWait, close

    public enum Direction: UInt8, Sendable { case original, reply }

    /// What a packet does to a connection.
    public enum Transition: Equatable, Sendable {
        /// The packet passes; the connection is now in this state (possibly unchanged).
        case move(TCPConnectionState, closer: Direction?)
        /// The packet does not fit the connection: drop it as `invalid`, keep the state.
        case invalid
        /// A new connection on the same 4-tuple (SYN after TIME_WAIT or CLOSE): evaluate the rules
        /// again as for an unknown flow.
        case reopen
        /// The packet passes without changing the connection or being checked against its
        /// window (Linux conntrack's "ignore"): the switch's view may be out of date and this may be
        /// how the two hosts get back in step. A SYN from the original side of a connection
        /// past its handshake (its client restarted; the server answers with a challenge ACK,
        /// RFC 5961 4), and a reply-side ACK while the SYN is unanswered (that challenge ACK,
        /// from a server still holding an older connection the switch no longer knows).
        case ignore
    }

    public var description: String {
        switch self {
        case .synSent: return "SYN_SENT"
        case .synReceived: return "SYN_RECV"
        case .established: return "ESTABLISHED"
        case .finWait: return "FIN_WAIT"
        case .closeWait: return "CLOSE_WAIT"
        case .lastAck: return "LAST_ACK"
        case .timeWait: return "TIME_WAIT"
        case .close: return "CLOSE"
        }
    }

    /// The flag combinations a TCP segment may carry (Linux's `tcp_valid_flags`, ignoring PSH,
    /// ECE and CWR): SYN, SYN+URG, SYN+ACK, RST, RST+ACK, FIN+ACK, FIN+ACK+URG, ACK, ACK+URG.
    /// Anything else (SYN+RST, SYN+FIN, FIN without ACK, no flags, ...) is no segment a TCP
    /// sends: it is `invalid` before the state machine or the windows see it.
    @inline(__always)
    public static func hasValidFlags(_ flags: UInt8) -> Bool {
        // One bit per valid value of FIN|SYN|RST|ACK|URG (0x37 -> indices 0...0x37).
        let valid: UInt64 = 1 << 0x02 | 1 << 0x22 | 1 << 0x12 | 1 << 0x04 | 1 << 0x14 | 1 << 0x11 | 1 << 0x31
            | 1 << 0x10 | 1 << 0x30
        return valid >> UInt64(flags & 0x37) & 1 != 0
    }

    /// A packet that may open a connection: SYN without ACK, RST or FIN.
    @inline(__always)
    public static func isOpening(_ flags: UInt8) -> Bool { flags & 0x17 == 0x02 }

    /// The next state for a packet with `flags` (the TCP flag byte) travelling in `direction`, in a
    /// connection whose first FIN came from `closer` (nil before any FIN).
    @inline(__always)
    public func on(flags: UInt8, from direction: Direction, closer: Direction?) -> Transition {
        let syn = flags & 0x02 != 0
        let ack = flags & 0x10 != 0
        let fin = flags & 0x01 != 0
        let rst = flags & 0x04 != 0
        guard Self.hasValidFlags(flags) else { return .invalid }
        if rst { return .move(.close, closer: closer) }
        if direction == .original && Self.isOpening(flags) && self != .synSent && self != .timeWait && self != .close {
            return .ignore
        }
        switch self {
        case .synSent:
            if direction == .original && syn && !ack { return .move(.synSent, closer: nil) }
            if direction == .reply && syn && ack { return .move(.synReceived, closer: nil) }
            if direction == .reply && ack && !syn && !fin { return .ignore }
            return .invalid
        case .synReceived:
            if fin { return .move(.finWait, closer: direction) }
            if direction == .original && ack && !syn { return .move(.established, closer: nil) }
            return .move(.synReceived, closer: nil)
        case .established:
            if fin { return .move(.finWait, closer: direction) }
            return .move(.established, closer: nil)
        case .finWait:
            guard let closer, direction != closer else { return .move(.finWait, closer: closer) }
            if fin { return .move(.lastAck, closer: closer) }
            if ack { return .move(.closeWait, closer: closer) }
            return .move(.finWait, closer: closer)
        case .closeWait:
            if let closer, direction != closer, fin { return .move(.lastAck, closer: closer) }
            return .move(.closeWait, closer: closer)
        case .lastAck:
            if let closer, direction == closer, ack, !fin { return .move(.timeWait, closer: closer) }
            return .move(.lastAck, closer: closer)
        case .timeWait:
            if Self.isOpening(flags) { return .reopen }
            return .move(.timeWait, closer: closer)
        case .close:
            if Self.isOpening(flags) { return .reopen }
            return .invalid
        }
    }
}
