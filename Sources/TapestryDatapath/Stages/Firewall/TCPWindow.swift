/// TCP sequence-window tracking for one connection, beside `TCPConnectionState`: a pure value,
/// updated by each segment the state machine lets through, which says whether the segment lies in
/// the window the two ends have shown each other. Modelled on Linux conntrack's `tcp_in_window`
/// (the checks of Guido van Rooij's "Real Stateful TCP Packet Filtering in IP Filter"):
///
/// for a segment from *sender* to *receiver* with sequence `seq`, end `end` (seq + payload, + 1
/// for SYN and for FIN) and acknowledgment `ack`:
/// 1. `seq <= sender.maxEnd`: not beyond what the receiver's windows allowed the sender to send;
/// 2. `end >= sender.end - receiver.maxWindow`: not older than a window's worth of data
///    (retransmissions and keepalives pass, a stale segment of an old connection does not);
/// 3. `ack <= receiver.end`: acknowledges nothing the receiver has not sent;
/// 4. `ack >= receiver.end - max(sender.maxWindow, 66000)`: not an ACK from long ago.
///
/// All comparisons are modulo 2^32 (RFC 793 sequence space). Windows are scaled by the shift each
/// side offered in its SYN, when both did (RFC 7323). SACK blocks are not read (the ACK number
/// alone bounds what was acknowledged), so a SACK option, valid or not, changes nothing.
///
/// RSTs follow RFC 5961: a RST whose sequence number is exactly what the receiver expects next
/// (the highest ACK it sent) closes the connection; one elsewhere in the window passes without
/// closing it, so the receiver can answer it with a challenge ACK and a genuine sender follows
/// with the exact one; one outside the window is invalid. A forged RST must therefore guess the
/// sequence number exactly, not only the four-tuple.
public struct TCPWindow: Sendable, Equatable {
    /// What one side has shown: the highest sequence it sent, the right edge of what the other
    /// side allowed it to send, the largest window it advertised, the highest ACK it sent.
    public struct Side: Sendable, Equatable {
        public var end: UInt32 = 0
        public var maxEnd: UInt32 = 0
        /// Scaled; 0 until the side's first segment.
        public var maxWindow: UInt32 = 0
        public var maxAck: UInt32 = 0
        /// The window scale shift it offered in its SYN (0 when it offered none, at most 14).
        public var scale: UInt8 = 0
        public var offeredScale = false
        public var sentAck = false

        public init() {}

        public var isInitialized: Bool { maxWindow != 0 }
    }

    public var original = Side()
    public var reply = Side()
    /// While SYN_SENT, the ACK number of the last reply-direction ACK let through without a check
    /// (a challenge ACK from a server that still holds an older connection on this tuple, RFC
    /// 5961 4.2): the client's answering RST carries it as its sequence number.
    public var ignoredAck: UInt32 = 0
    /// After the handshake, the last SYN from the original side let through unchecked (its end,
    /// window and scale option): if the server answers it with a SYN-ACK rather than a challenge
    /// ACK (it had forgotten the old connection), the connection starts again from these two.
    public var ignoredSYNEnd: UInt32 = 0
    public var ignoredSYNWindow: UInt16 = 0
    public var ignoredSYNScale: UInt8 = 0
    public var ignoredSYNOfferedScale = false
    public var hasIgnoredSYN = false
    /// Whether `ignoredAck` holds one (declared here, with the other flags, to keep the value at 56 bytes).
    public var hasIgnoredAck = false

    public init() {}

    /// The fields of a segment the window needs.
    public struct Segment: Sendable, Equatable {
        public var sequence: UInt32
        public var acknowledgment: UInt32
        /// The TCP flag byte.
        public var flags: UInt8
        /// The raw (unscaled) window field.
        public var window: UInt16
        public var payloadLength: UInt32
        /// The window scale option's shift, on a SYN that carries one.
        public var windowScale: UInt8?
        /// The first fragment of a fragmented segment: its payload is only part of the segment's.
        public var isFirstFragment = false

        public init(
            sequence: UInt32, acknowledgment: UInt32, flags: UInt8, window: UInt16, payloadLength: UInt32,
            windowScale: UInt8? = nil, isFirstFragment: Bool = false
        ) {
            self.isFirstFragment = isFirstFragment
            self.sequence = sequence
            self.acknowledgment = acknowledgment
            self.flags = flags
            self.window = window
            self.payloadLength = payloadLength
            self.windowScale = windowScale
        }

        var syn: Bool { flags & 0x02 != 0 }
        var fin: Bool { flags & 0x01 != 0 }
        var rst: Bool { flags & 0x04 != 0 }
        var hasAck: Bool { flags & 0x10 != 0 }
        /// The sequence number after the segment: SYN and FIN take one each.
        var end: UInt32 { sequence &+ payloadLength &+ (syn ? 1 : 0) &+ (fin ? 1 : 0) }
    }

    /// Which bound a segment broke.
    public enum Check: UInt8, Sendable, Equatable {
        /// Sequence beyond what the receiver allowed (check 1).
        case sequenceAbove = 1
        /// Segment ends before the window: data long acknowledged, or another connection's (check 2).
        case sequenceBelow
        /// Acknowledges data the receiver never sent (check 3).
        case ackAbove
        /// Acknowledges data from before the window (check 4).
        case ackBelow
        /// A RST whose sequence number is not the one the receiver expects and not in its window.
        case resetOutside
        /// In SYN_SENT, a RST that does not answer the SYN (RFC 793: it must acknowledge it).
        case resetNotForSYN
    }

    public enum Verdict: Sendable, Equatable {
        /// In the window: the state machine's move applies.
        case accept
        /// A RST in the window but not at the expected sequence number: it passes, the
        /// connection stays as it is (RFC 5961 3.2).
        case acceptKeepingState
        /// Outside: `value` (a sequence or ACK number) is not within `low`...`high`. Nothing changed.
        case outside(Check, value: UInt32, low: UInt32, high: UInt32)
        /// A SYN-ACK answering the SYN that was let through unchecked (`ignored`): the windows
        /// start again from the two, and the connection is in SYN_RECV.
        case restarted
    }

    /// Records a packet the state machine let through unchecked (`Transition.ignore`).
    public mutating func ignored(_ segment: Segment, from direction: TCPConnectionState.Direction) {
        if direction == .reply {
            ignoredAck = segment.acknowledgment
            hasIgnoredAck = true
        } else if segment.syn {
            ignoredSYNEnd = segment.end
            ignoredSYNWindow = segment.window
            ignoredSYNScale = min(segment.windowScale ?? 0, 14)
            ignoredSYNOfferedScale = segment.windowScale != nil
            hasIgnoredSYN = true
        }
    }

    /// Linux's `MAXACKWINDOW` floor: ACKs this far behind the receiver's end still pass.
    @usableFromInline static let ackSlack: UInt32 = 66_000

    /// a < b modulo 2^32.
    @inline(__always) @usableFromInline
    static func before(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) < 0 }

    @inline(__always) @usableFromInline
    static func after(_ a: UInt32, _ b: UInt32) -> Bool { before(b, a) }

    /// Checks `segment`, travelling in `direction` of a connection in `state`, and on success
    /// records what it shows. The caller has already run the state machine: this is only called
    /// for segments it would let through.
    // @_transparent, not @inline(__always): the compiler kept the latter a call at the firewall's
    // call site (docs/performance.md, "Firewall: TCP sequence windows").
    @_transparent
    public mutating func update(
        _ segment: Segment, from direction: TCPConnectionState.Direction, state: TCPConnectionState
    ) -> Verdict {
        // The common case, kept small enough to inline: an ACK or data (no SYN, RST or FIN)
        // between two sides that have both shown their SYNs.
        if segment.flags & 0x07 == 0 && original.isInitialized && reply.isInitialized {
            let verdict = direction == .original
                ? Self.inWindow(segment, sender: &original, receiver: &reply)
                : Self.inWindow(segment, sender: &reply, receiver: &original)
            if case .accept = verdict { forgetIgnored() }
            return verdict
        }
        return updateRare(segment, from: direction, state: state)
    }

    /// The common case of `update`, in place and as a yes or no: an ACK or data segment (no SYN,
    /// RST or FIN) between two sides that have both shown their SYNs, inside the window: recorded,
    /// true. False for anything else, changing nothing: `update` then decides it (and says why a
    /// segment is outside). One call site, no copies of the sides and no verdict to build: the
    /// established path's cost (docs/performance.md, "Firewall: TCP sequence windows").
    /// (It stays a call: forced inline, `@_transparent`, the established path took 1% more
    /// instructions.)
    @inline(__always)
    public mutating func acceptsCommon(_ segment: Segment, fromOriginal: Bool) -> Bool {
        guard segment.flags & 0x07 == 0, original.isInitialized, reply.isInitialized else { return false }
        let accepted = withUnsafeMutablePointer(to: &original) { first in
            withUnsafeMutablePointer(to: &reply) { second in
                fromOriginal
                    ? Self.acceptCommon(segment, sender: first, receiver: second)
                    : Self.acceptCommon(segment, sender: second, receiver: first)
            }
        }
        if accepted { forgetIgnored() }
        return accepted
    }

    @inline(__always) @usableFromInline
    static func acceptCommon(
        _ segment: Segment, sender: UnsafeMutablePointer<Side>, receiver: UnsafeMutablePointer<Side>
    ) -> Bool {
        let ack = segment.hasAck ? segment.acknowledgment : receiver.pointee.end
        let slack = max(sender.pointee.maxWindow, ackSlack)
        // `checks` for this case (no SYN, RST or FIN; both sides known).
        guard before(segment.sequence, sender.pointee.maxEnd &+ 1),
            after(segment.end, sender.pointee.end &- receiver.pointee.maxWindow &- 1),
            before(ack, receiver.pointee.end &+ 1),
            after(ack, receiver.pointee.end &- slack &- 1)
        else { return false }
        record(segment, sender: &sender.pointee, receiver: &receiver.pointee)
        return true
    }

    /// An in-window segment brings the two hosts' view and the switch's back in step: what was
    /// let through unchecked no longer vouches for anything (Linux keeps only the last packet's).
    @inline(__always) @usableFromInline
    mutating func forgetIgnored() {
        hasIgnoredAck = false
        hasIgnoredSYN = false
    }

    /// SYNs, RSTs, FINs, and anything before both sides are known.
    @inline(never) @usableFromInline
    mutating func updateRare(
        _ segment: Segment, from direction: TCPConnectionState.Direction, state: TCPConnectionState
    ) -> Verdict {
        if direction == .reply && hasIgnoredSYN && segment.flags & 0x17 == 0x12 && segment.acknowledgment == ignoredSYNEnd
            && state != .synSent && state != .timeWait && state != .close
        {
            // Linux conntrack does the same: the server forgot the old connection and accepts the new one.
            var restarted = TCPWindow()
            let syn = Segment(
                sequence: ignoredSYNEnd &- 1, acknowledgment: 0, flags: 0x02, window: ignoredSYNWindow, payloadLength: 0,
                windowScale: ignoredSYNOfferedScale ? ignoredSYNScale : nil)
            _ = Self.check(syn, sender: &restarted.original, receiver: &restarted.reply, state: .synSent, isOriginal: true, ignoredAck: nil)
            guard case .accept = Self.check(
                segment, sender: &restarted.reply, receiver: &restarted.original, state: .synSent, isOriginal: false,
                ignoredAck: nil)
            else { return .outside(.ackAbove, value: segment.acknowledgment, low: ignoredSYNEnd, high: ignoredSYNEnd) }
            self = restarted
            return .restarted
        }
        let ignoredAck = hasIgnoredAck ? ignoredAck : nil
        let verdict = direction == .original
            ? Self.check(segment, sender: &original, receiver: &reply, state: state, isOriginal: true, ignoredAck: ignoredAck)
            : Self.check(segment, sender: &reply, receiver: &original, state: state, isOriginal: false, ignoredAck: ignoredAck)
        // A SYN the client retransmits while waiting does not bring anything back in step.
        if case .accept = verdict, !segment.syn { forgetIgnored() }
        return verdict
    }

    @inline(__always)
    private static func check(
        _ segment: Segment, sender: inout Side, receiver: inout Side, state: TCPConnectionState, isOriginal: Bool,
        ignoredAck: UInt32?
    ) -> Verdict {
        let end = segment.end
        if segment.syn {
            if !sender.isInitialized || (state == .synSent && isOriginal && after(end, sender.end)) {
                // The side's first SYN, or a client's new SYN with a later ISN (RFC 793: a
                // reinitialized TCP picks larger sequence numbers): start the side afresh.
                sender.end = end
                sender.maxEnd = end
                sender.maxWindow = max(UInt32(segment.window), 1)
                sender.offeredScale = segment.windowScale != nil
                sender.scale = min(segment.windowScale ?? 0, 14)
                if !isOriginal && !(sender.offeredScale && receiver.offeredScale) {
                    // RFC 7323: scaling applies only when both SYNs offered it.
                    sender.scale = 0
                    receiver.scale = 0
                }
                if !segment.hasAck { return .accept }  // a SYN: nothing to acknowledge yet
            }
        }
        if segment.rst {
            if let verdict = reset(segment, sender: sender, receiver: receiver, state: state, isOriginal: isOriginal, ignoredAck: ignoredAck) {
                return verdict
            }
        }
        if segment.rst && state != .synSent {
            // In the window but not the exact RST (that one returned above): it passes for the
            // receiver to challenge, and shows nothing to record.
            if case .outside(let check, let value, let low, let high) = checks(segment, sender: sender, receiver: receiver) {
                return .outside(check, value: value, low: low, high: high)
            }
            return .acceptKeepingState
        }
        return inWindow(segment, sender: &sender, receiver: &receiver)
    }

    /// The four checks; `.accept` when all pass (nothing recorded).
    @inline(__always) @usableFromInline
    static func checks(_ segment: Segment, sender: Side, receiver: Side) -> Verdict {
        let sequence = segment.sequence
        let end = segment.end
        var ack = segment.acknowledgment
        if !segment.hasAck || (segment.rst && ack == 0) { ack = receiver.end }  // nothing acknowledged
        // Check 1 and 2: the segment's sequence space against the windows.
        if !before(sequence, sender.maxEnd &+ 1) {
            return .outside(.sequenceAbove, value: sequence, low: sender.end &- receiver.maxWindow, high: sender.maxEnd)
        }
        if receiver.isInitialized && !after(end, sender.end &- receiver.maxWindow &- 1) {
            return .outside(.sequenceBelow, value: sequence, low: sender.end &- receiver.maxWindow, high: sender.maxEnd)
        }
        // Check 3 and 4: what it acknowledges, once the receiver has sent anything.
        if receiver.isInitialized {
            let slack = max(sender.maxWindow, ackSlack)
            if !before(ack, receiver.end &+ 1) {
                return .outside(.ackAbove, value: ack, low: receiver.end &- slack, high: receiver.end)
            }
            if !after(ack, receiver.end &- slack &- 1) {
                return .outside(.ackBelow, value: ack, low: receiver.end &- slack, high: receiver.end)
            }
        }
        return .accept
    }

    /// The largest window a side can advertise (65535 scaled by 14): what `maxWindow` saturates at.
    @usableFromInline static let largestWindow: UInt32 = 65_535 << 14

    /// The checks, then, when they pass, what the segment shows.
    @inline(__always) @usableFromInline
    static func inWindow(_ segment: Segment, sender: inout Side, receiver: inout Side) -> Verdict {
        let verdict = checks(segment, sender: sender, receiver: receiver)
        guard case .accept = verdict else { return verdict }
        record(segment, sender: &sender, receiver: &receiver)
        return .accept
    }

    /// What a segment that passed the checks shows about its sender and receiver.
    @inline(__always) @usableFromInline
    static func record(_ segment: Segment, sender: inout Side, receiver: inout Side) {
        let end = segment.end
        let ack = segment.hasAck ? segment.acknowledgment : receiver.end
        let scaledWindow = segment.syn ? UInt32(segment.window) : UInt32(segment.window) << UInt32(sender.scale)
        if sender.maxWindow < scaledWindow { sender.maxWindow = scaledWindow }
        if after(end, sender.end) { sender.end = end }
        if segment.hasAck {
            if !sender.sentAck || after(ack, sender.maxAck) { sender.maxAck = ack }
            sender.sentAck = true
        }
        if receiver.isInitialized && after(end, sender.maxEnd) {
            // The sender went past the window (a zero-window probe): the receiver evidently
            // took it. Saturating, so no sequence of segments can wrap it to 0 (uninitialized).
            let grown = UInt64(receiver.maxWindow) + UInt64(end &- sender.maxEnd)
            receiver.maxWindow = UInt32(min(grown, UInt64(largestWindow)))
        }
        if segment.hasAck && after(ack &+ scaledWindow, receiver.maxEnd &- 1) {
            receiver.maxEnd = ack &+ scaledWindow &+ (scaledWindow == 0 ? 1 : 0)
        }
        if segment.isFirstFragment && after(sender.maxEnd, sender.end) {
            // Only part of the segment is in view: it may reach as far as the window allowed,
            // so the receiver's ACK of all of it is not taken for an ACK of unsent data.
            sender.end = sender.maxEnd
        }
    }

    /// The RST rules; nil when the RST goes on to the ordinary window checks.
    @inline(__always)
    private static func reset(
        _ segment: Segment, sender: Side, receiver: Side, state: TCPConnectionState, isOriginal: Bool,
        ignoredAck: UInt32?
    ) -> Verdict? {
        let sequence = segment.sequence
        if state == .synSent {
            if !isOriginal {
                // A refusal: it must acknowledge the SYN (RFC 793, SYN-SENT).
                let expected = receiver.end
                return segment.hasAck && segment.acknowledgment == expected
                    ? .accept : .outside(.resetNotForSYN, value: segment.acknowledgment, low: expected, high: expected)
            }
            // The client gives up: at its own next sequence number, or answering a challenge ACK.
            if sequence == sender.end || sequence == ignoredAck { return .accept }
            return .outside(.resetOutside, value: sequence, low: sender.end, high: sender.end)
        }
        // The exact RST: what the receiver acknowledged last is what it expects next.
        if receiver.sentAck && sequence == receiver.maxAck { return .accept }
        let low = receiver.sentAck ? receiver.maxAck : sender.end &- receiver.maxWindow
        if before(sequence, low) || after(sequence, sender.maxEnd) {
            return .outside(.resetOutside, value: sequence, low: low, high: sender.maxEnd)
        }
        return nil
    }
}

extension TCPWindow {
    /// The window scale option (kind 3, length 3) in a TCP header's options, nil when absent or
    /// malformed. `options` is the bytes between the fixed header and the data offset; a length
    /// that runs past them ends the walk.
    @inline(__always)
    public static func windowScale(in options: UnsafeRawBufferPointer) -> UInt8? {
        var offset = 0
        while offset < options.count {
            let kind = options[offset]
            if kind == 0 { return nil }  // end of options
            if kind == 1 {  // no-op
                offset += 1
                continue
            }
            guard offset + 1 < options.count else { return nil }
            let length = Int(options[offset + 1])
            guard length >= 2, offset + length <= options.count else { return nil }
            if kind == 3 { return length == 3 ? options[offset + 2] : nil }
            offset += length
        }
        return nil
    }
}
