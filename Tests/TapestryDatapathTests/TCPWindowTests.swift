import Testing

@testable import TapestryDatapath

/// `TCPWindow` as a pure value: each RFC 793 / RFC 5961 / RFC 7323 case it implements, with the
/// numbers a real exchange would carry.
@Suite struct TCPWindowTests {
    typealias W = TCPWindow
    static let syn: UInt8 = 0x02, synAck: UInt8 = 0x12, ack: UInt8 = 0x10, psh: UInt8 = 0x18, fin: UInt8 = 0x11
    static let rst: UInt8 = 0x04, rstAck: UInt8 = 0x14

    static func segment(_ seq: UInt32, _ ack: UInt32, _ flags: UInt8, window: UInt16 = 65535, length: UInt32 = 0, scale: UInt8? = nil) -> W.Segment {
        W.Segment(sequence: seq, acknowledgment: ack, flags: flags, window: window, payloadLength: length, windowScale: scale)
    }

    /// Client ISN `c`, server ISN `s`, handshake done: the state it leaves.
    static func established(client c: UInt32 = 1000, server s: UInt32 = 50000, window: UInt16 = 65535, clientScale: UInt8? = nil, serverScale: UInt8? = nil) -> W {
        var w = W()
        #expect(w.update(segment(c, 0, syn, window: window, scale: clientScale), from: .original, state: .synSent) == .accept)
        #expect(w.update(segment(s, c &+ 1, synAck, window: window, scale: serverScale), from: .reply, state: .synSent) == .accept)
        #expect(w.update(segment(c &+ 1, s &+ 1, ack, window: window), from: .original, state: .synReceived) == .accept)
        return w
    }

    @Test func dataBothWaysAndRetransmissionsPass() {
        var w = Self.established()
        #expect(w.update(Self.segment(1001, 50001, Self.psh, length: 1000), from: .original, state: .established) == .accept)
        #expect(w.update(Self.segment(50001, 2001, Self.psh, length: 1400), from: .reply, state: .established) == .accept)
        // The same segment again (a retransmission), and a keepalive (one byte before snd.nxt).
        #expect(w.update(Self.segment(1001, 50001, Self.psh, length: 1000), from: .original, state: .established) == .accept)
        #expect(w.update(Self.segment(2000, 51401, Self.ack, length: 0), from: .original, state: .established) == .accept)
        #expect(w.update(Self.segment(2000, 51401, Self.ack, length: 1), from: .original, state: .established) == .accept)
        #expect(w.original.end == 2001 && w.reply.end == 51401)
    }

    @Test func dataBeyondTheReceiversWindowIsOutside() {
        var w = Self.established()
        // The server allowed 1001 + 65535: a segment starting past that is outside.
        let verdict = w.update(Self.segment(1001 + 70000, 50001, Self.psh, length: 100), from: .original, state: .established)
        #expect(verdict == .outside(.sequenceAbove, value: 71001, low: 1001 &- 65535, high: 1001 + 65535))
        let before = w
        #expect(w == before, "an outside segment changes nothing")
    }

    @Test func staleDataOfAnOldConnectionIsOutside() {
        var w = Self.established()
        // Far below: ends more than a window before what the client has sent.
        let verdict = w.update(Self.segment(1001 &- 100_000, 50001, Self.psh, length: 100), from: .original, state: .established)
        guard case .outside(.sequenceBelow, let value, _, _) = verdict else {
            Issue.record("\(verdict)")
            return
        }
        #expect(value == 1001 &- 100_000)
    }

    @Test func acknowledgmentsBeyondOrFarBehindTheDataAreOutside() {
        var w = Self.established()
        #expect(w.update(Self.segment(1001, 50001 + 10, Self.ack), from: .original, state: .established)
            == .outside(.ackAbove, value: 50011, low: 50001 &- 66_000, high: 50001))
        #expect(w.update(Self.segment(1001, 50001 &- 70_000, Self.ack), from: .original, state: .established)
            == .outside(.ackBelow, value: 50001 &- 70_000, low: 50001 &- 66_000, high: 50001))
    }

    @Test func finInAndOutOfTheWindow() {
        var w = Self.established()
        #expect(w.update(Self.segment(1001 + 200_000, 50001, Self.fin), from: .original, state: .established).isOutside)
        #expect(w.update(Self.segment(1001, 50001, Self.fin), from: .original, state: .established) == .accept)
        #expect(w.original.end == 1002, "a FIN takes one sequence number")
    }

    /// RFC 5961 3.2: only the exact RST closes; one elsewhere in the window passes and keeps the
    /// connection (the receiver challenges it); one outside is invalid.
    @Test func resetsFollowRFC5961() {
        var w = Self.established()
        _ = w.update(Self.segment(50001, 1001, Self.psh, length: 500), from: .reply, state: .established)
        _ = w.update(Self.segment(1001, 50501, Self.ack), from: .original, state: .established)
        // The client acknowledged 50501: the server's exact RST carries it.
        #expect(w.update(Self.segment(50501 + 3000, 0, Self.rst), from: .reply, state: .established) == .acceptKeepingState)
        #expect(w.update(Self.segment(50501 &- 70_000, 0, Self.rst), from: .reply, state: .established)
            == .outside(.resetOutside, value: 50501 &- 70_000, low: 50501, high: w.reply.maxEnd))
        #expect(w.update(Self.segment(50501 &+ 1_000_000, 0, Self.rst), from: .reply, state: .established).isOutside)
        #expect(w.update(Self.segment(50501, 0, Self.rst), from: .reply, state: .established) == .accept)
    }

    @Test func aRefusalMustAcknowledgeTheSYN() {
        var w = W()
        _ = w.update(Self.segment(1000, 0, Self.syn), from: .original, state: .synSent)
        #expect(w.update(Self.segment(0, 0, Self.rst), from: .reply, state: .synSent)
            == .outside(.resetNotForSYN, value: 0, low: 1001, high: 1001))
        #expect(w.update(Self.segment(0, 1002, Self.rstAck), from: .reply, state: .synSent).isOutside)
        #expect(w.update(Self.segment(0, 1001, Self.rstAck), from: .reply, state: .synSent) == .accept)
    }

    /// RFC 5961 4.2 after a switch restart: the server answers a new SYN with a challenge ACK for
    /// its old connection (let through unchecked), and the client's RST carries that ACK number.
    @Test func theClientsAnswerToAChallengeACKPasses() {
        var w = W()
        _ = w.update(Self.segment(7000, 0, Self.syn), from: .original, state: .synSent)
        #expect(w.update(Self.segment(1234, 5555, Self.rst), from: .original, state: .synSent).isOutside, "before any challenge")
        w.ignored(Self.segment(90000, 5555, Self.ack), from: .reply)
        #expect(w.update(Self.segment(5555, 0, Self.rst), from: .original, state: .synSent) == .accept)
        #expect(w.update(Self.segment(5556, 0, Self.rst), from: .original, state: .synSent).isOutside)
        #expect(w.update(Self.segment(7001, 0, Self.rst), from: .original, state: .synSent) == .accept, "the client's own next sequence")
    }

    /// A new SYN on a live connection passed unchecked; the server answers it with a SYN-ACK
    /// (it had forgotten the old one): the windows start again from the two.
    @Test func aSYNACKAnsweringAnIgnoredSYNRestarts() {
        var w = Self.established()
        w.ignored(Self.segment(900_000, 0, Self.syn, window: 29200, scale: 7), from: .original)
        #expect(w.update(Self.segment(777, 900_002, Self.synAck), from: .reply, state: .established).isOutside, "not for that SYN")
        #expect(w.update(Self.segment(777, 900_001, Self.synAck, scale: 7), from: .reply, state: .established) == .restarted)
        #expect(w.original.end == 900_001 && w.reply.end == 778 && w.original.scale == 7 && w.reply.scale == 7)
        #expect(w.update(Self.segment(900_001, 778, Self.ack), from: .original, state: .synReceived) == .accept)
    }

    /// RFC 7323: windows are scaled by the shift each side offered, only when both offered one.
    /// What passed unchecked stops counting once an in-window segment shows the hosts in step:
    /// a forged SYN now and a forged SYN-ACK much later restart nothing (attacker review).
    @Test func anInWindowSegmentForgetsWhatPassedUnchecked() {
        var w = Self.established()
        w.ignored(Self.segment(900_000, 0, Self.syn), from: .original)
        #expect(w.hasIgnoredSYN)
        #expect(w.update(Self.segment(50001, 1001, Self.ack), from: .reply, state: .established) == .accept)
        #expect(!w.hasIgnoredSYN)
        #expect(w.update(Self.segment(777, 900_001, Self.synAck), from: .reply, state: .established).isOutside)
        var waiting = W()
        _ = waiting.update(Self.segment(7000, 0, Self.syn), from: .original, state: .synSent)
        waiting.ignored(Self.segment(90000, 5555, Self.ack), from: .reply)
        _ = waiting.update(Self.segment(7000, 0, Self.syn), from: .original, state: .synSent)
        #expect(waiting.hasIgnoredAck, "the client's retransmitted SYN keeps the challenge ACK's number")
    }

    /// A first fragment carries only part of its segment: the receiver's ACK of all of it passes.
    @Test func aFirstFragmentMayReachTheWindowsEdge() {
        var w = Self.established()
        var first = Self.segment(1001, 50001, Self.psh, length: 1200)
        first.isFirstFragment = true
        #expect(w.update(first, from: .original, state: .established) == .accept)
        #expect(w.original.end == w.original.maxEnd)
        #expect(w.update(Self.segment(50001, 1001 + 3000, Self.ack), from: .reply, state: .established) == .accept)
    }

    /// Zero-window probes grow the receiver's largest window, but never past what a window can
    /// be, so it cannot wrap to 0 (which would read as a side never seen).
    @Test func probesCannotWrapTheLargestWindow() {
        var w = Self.established()
        w.reply.maxWindow = TCPWindow.largestWindow - 10
        #expect(w.update(Self.segment(w.original.maxEnd, 50001, Self.psh, length: 1000), from: .original, state: .established) == .accept)
        #expect(w.reply.maxWindow == TCPWindow.largestWindow)
    }

    @Test func windowScaling() {
        var scaled = Self.established(window: 502, clientScale: 7, serverScale: 7)
        // The server's first scaled ACK: 502 << 7 = 64256 bytes from 1001.
        #expect(scaled.update(Self.segment(50001, 1001, Self.ack, window: 502), from: .reply, state: .established) == .accept)
        #expect(scaled.original.maxEnd == 1001 + 64256)
        #expect(scaled.update(Self.segment(1001 + 64000, 50001, Self.psh, length: 100), from: .original, state: .established) == .accept)
        #expect(scaled.update(Self.segment(1001 + 64257, 50001, Self.psh, length: 100), from: .original, state: .established).isOutside)

        var oneSided = Self.established(window: 502, clientScale: 7, serverScale: nil)
        #expect(oneSided.original.scale == 0 && oneSided.reply.scale == 0)
        _ = oneSided.update(Self.segment(50001, 1001, Self.ack, window: 502), from: .reply, state: .established)
        #expect(oneSided.original.maxEnd == 1001 + 502, "unscaled: the server's window is 502 bytes")
        #expect(oneSided.update(Self.segment(1001 + 600, 50001, Self.psh, length: 10), from: .original, state: .established).isOutside)

        let clamped = Self.established(clientScale: 200, serverScale: 15)
        #expect(clamped.original.scale == 14 && clamped.reply.scale == 14, "RFC 7323: at most 14")
    }

    @Test func sequenceNumbersWrapAround() {
        var w = Self.established(client: 0xFFFF_FF00, server: 0xFFFF_FFF0)
        #expect(w.update(Self.segment(0xFFFF_FF01, 0xFFFF_FFF1, Self.psh, length: 1000), from: .original, state: .established) == .accept)
        #expect(w.original.end == 0xFFFF_FF01 &+ 1000)
        #expect(w.update(Self.segment(0xFFFF_FFF1, 0xFFFF_FF01 &+ 1000, Self.psh, length: 100), from: .reply, state: .established) == .accept)
        #expect(w.reply.end == 0x55, "0xFFFF_FFF1 + 100 wraps to 0x55")
    }

    @Test func aNewSYNWithALaterISNStartsTheClientAgain() {
        var w = W()
        _ = w.update(Self.segment(1000, 0, Self.syn), from: .original, state: .synSent)
        #expect(w.update(Self.segment(800_000, 0, Self.syn), from: .original, state: .synSent) == .accept)
        #expect(w.original.end == 800_001)
        #expect(w.update(Self.segment(5, 800_001, Self.synAck), from: .reply, state: .synSent) == .accept)
    }

    @Test func windowScaleOptionParsing() {
        func scale(_ bytes: [UInt8]) -> UInt8? { bytes.withUnsafeBytes { W.windowScale(in: $0) } }
        #expect(scale([2, 4, 0x05, 0xB4, 1, 3, 3, 7]) == 7, "MSS, NOP, WS 7")
        #expect(scale([1, 1, 1, 3, 3, 9]) == 9)
        #expect(scale([3, 3]) == nil, "cut short")
        #expect(scale([3, 4, 7, 0]) == nil, "wrong length")
        #expect(scale([0, 3, 3, 7]) == nil, "after end of options")
        #expect(scale([8, 0, 3, 3, 7]) == nil, "a length of 0 ends the walk")
        #expect(scale([8, 1, 3, 3, 7]) == nil, "a length of 1 ends the walk")
        #expect(scale([5, 200, 3, 3, 7]) == nil, "a length past the options")
        #expect(scale([4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 3, 3, 2]) == 2, "SACK-permitted, timestamps, WS")
        #expect(scale([]) == nil)
    }
}

extension TCPWindow.Verdict {
    var isOutside: Bool {
        if case .outside = self { return true }
        return false
    }
}

/// What the windows add to each tracked connection (docs/firewall.md, "Memory and bounds").
@Suite struct ConnectionEntrySizeTests {
    @Test func sizesAreTheDocumentedOnes() {
        // Two sides of four UInt32 and three flags, the challenge-ACK and ignored-SYN memory.
        #expect(MemoryLayout<TCPWindow>.stride == 56)
        // 168 bytes before the windows.
        #expect(MemoryLayout<ConnectionEntry>.stride == 224)
        #expect(ConnectionTable.bytesPerEntry == 276)
    }

    /// The established path's in-place check (`acceptsCommon`) is `update` for the segments it
    /// takes: on 200,000 random windows and segments (numbers near each other, so both answers
    /// occur), it accepts exactly what `update` accepts without a state change and leaves the
    /// same window; what it refuses, it leaves untouched.
    @Test func theInPlaceCheckAgreesWithUpdate() {
        var seed: UInt64 = 0x5EED
        func next() -> UInt64 {  // SplitMix64
            seed &+= 0x9E37_79B9_7F4A_7C15
            var z = seed
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        func near(_ base: UInt32) -> UInt32 { base &+ UInt32(truncatingIfNeeded: next() % 400_000) &- 200_000 }
        func side(_ base: UInt32) -> TCPWindow.Side {
            var side = TCPWindow.Side()
            side.end = near(base)
            side.maxEnd = near(base)
            side.maxWindow = UInt32(truncatingIfNeeded: next() % 300_000)
            side.maxAck = near(base)
            side.scale = UInt8(truncatingIfNeeded: next() % 15)
            side.offeredScale = next() & 1 == 0
            side.sentAck = next() & 1 == 0
            return side
        }
        var accepted = 0
        var refused = 0
        for _ in 0..<200_000 {
            let base = UInt32(truncatingIfNeeded: next())
            var window = TCPWindow()
            window.original = side(base)
            window.reply = side(base)
            window.hasIgnoredAck = next() & 1 == 0
            window.hasIgnoredSYN = next() & 1 == 0
            let flags: UInt8 = [0x10, 0x18, 0x30, 0x00, 0x11, 0x14, 0x12, 0x02, 0x04][Int(next() % 9)]
            let segment = TCPWindow.Segment(
                sequence: near(base), acknowledgment: near(base), flags: flags, window: UInt16(truncatingIfNeeded: next()),
                payloadLength: UInt32(truncatingIfNeeded: next() % 3000), isFirstFragment: next() % 8 == 0)
            let fromOriginal = next() & 1 == 0
            var inPlace = window
            var updated = window
            let verdict = updated.update(segment, from: fromOriginal ? .original : .reply, state: .established)
            if inPlace.acceptsCommon(segment, fromOriginal: fromOriginal) {
                accepted += 1
                #expect(verdict == .accept && inPlace == updated, "\(segment) on \(window)")
            } else {
                refused += 1
                #expect(inPlace == window, "a refusal changed the window: \(segment)")
                if segment.flags & 0x07 == 0 && window.original.isInitialized && window.reply.isInitialized {
                    #expect(verdict != .accept, "update accepts what the in-place check refused: \(segment) on \(window)")
                }
            }
        }
        #expect(accepted > 10_000 && refused > 10_000, "accepted \(accepted), refused \(refused)")
    }
}
