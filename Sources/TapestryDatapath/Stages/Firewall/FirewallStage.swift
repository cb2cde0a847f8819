import TapestryWire

/// The stateful firewall: connection tracking and rules.
///
/// Expects: frames classified by `VLANIngressStage` (`metadata.network`, `metadata.parsed`).
/// Emits: nothing new; frames it does not drop keep their `.pass` verdict.
/// Drops: `firewall` (a NEW connection the rules refuse, a frame with three or more VLAN tags
/// whose payload the rules cannot see), `invalid` (a TCP packet that is not a
/// SYN for an unknown connection, a packet that does not fit its connection's state, an unsolicited
/// echo reply, an ICMP error about nothing tracked, a fragment of a datagram whose first fragment
/// was refused, an overlapping, duplicate or impossible fragment: `FragmentTable`),
/// `table-full` (a NEW connection when the table is full of connections that may not be evicted).
/// Passes untouched: non-IP frames, ICMPv6 neighbour discovery and MLD.
///
/// Rules are evaluated once per connection, when it is created; later packets cost one lookup.
/// See also: `TCPConnectionState`, `ConnectionTable`, docs/firewall.md.
struct FirewallStage {
    let configuration: FirewallConfiguration
    let rules: FirewallRules
    let table: ConnectionTable
    let fragments: FragmentTable
    /// False when only load balancers need connection tracking (no `firewall:` section): nothing
    /// is dropped for policy or state, and only connections to a VIP service are tracked.
    let enforce: Bool
    /// `configuration.timeouts.tcp` of ESTABLISHED, for the established path (no array access).
    let establishedTimeout: Int64
    /// (network, VIP as IPv4-mapped low half, protocol, port) of every load-balancer service.
    let services: [(network: NetworkID, isIPv6: Bool, vipHigh: UInt64, vipLow: UInt64, proto: UInt8, port: UInt16)]

    struct Events {
        var created: UInt64 = 0
        var evicted: UInt64 = 0
        var related: UInt64 = 0
    }

    init(
        configuration: FirewallConfiguration, enforce: Bool = true,
        services: [(network: NetworkID, isIPv6: Bool, vipHigh: UInt64, vipLow: UInt64, proto: UInt8, port: UInt16)] = [], fragmentSlots: Int = 4096,
        portCount: Int = 1, hashKey: HashKey = .fixed
    ) {
        self.configuration = configuration
        self.enforce = enforce
        self.services = services
        establishedTimeout = configuration.timeouts.tcp[Int(TCPConnectionState.established.rawValue)]
        rules = FirewallRules(configuration)
        table = ConnectionTable(
            maxEntries: configuration.maxConnections, allowsAliases: !services.isEmpty, hashKey: hashKey.derived(2))
        fragments = FragmentTable(
            capacity: fragmentSlots, portCount: portCount, timeout: configuration.fragmentTimeout, hashKey: hashKey.derived(3))
    }

    /// What the stage learned about one packet, for its decision.
    private struct Packet {
        var key = FlowKey()
        var sourceIsA = true
        var tcpFlags: UInt8 = 0
        var isTCP = false
        var isEchoReply = false
        var isIPv6 = false
        var sourceHigh: UInt64 = 0
        var sourceLow: UInt64 = 0
        var destinationHigh: UInt64 = 0
        var destinationLow: UInt64 = 0
        var sourcePort: UInt16 = 0
        var destinationPort: UInt16 = 0
    }

    func process<Trace: TraceSink>(_ batch: FrameBatch, now: Timestamp, events: inout Events, trace: inout Trace) {
        let now = now.nanoseconds
        for index in 0..<batch.count where !batch.verdicts[index].isDrop {
            let parsed = batch.metadata[index].parsed
            guard parsed.layer3 == .ipv4 || parsed.layer3 == .ipv6 else {
                // Behind a third tag the parser sees no payload, so neither can the rules: such a
                // frame could carry IP past the firewall to a host that unwraps the tags.
                if enforce && parsed.tagCount == 2 && parsed.etherType == 0 {
                    batch.verdicts[index] = .drop(.firewall)
                    batch.metadata[index].cause = .tooManyTags
                    if Trace.isRecording {
                        trace.record(TraceEvent(frame: index, .dropped, b: -1, c: Int32(DropCause.tooManyTags.rawValue)))
                    }
                } else if Trace.isRecording {
                    trace.record(TraceEvent(frame: index, .notIP))
                }
                continue
            }
            let frame = UnsafeRawBufferPointer(batch.frame(index))
            let metadata = batch.metadata + index
            // Without a firewall section fragments pass as any packet does (nothing is enforced).
            var fragmentRecord = -1
            if enforce && parsed.fragment != .none {
                guard let record = arriving(batch, index, frame, parsed, metadata, now: now, trace: &trace) else { continue }
                fragmentRecord = record
            }
            let reason = decide(
                frame, parsed, metadata, index: index, port: batch.ingressPort, now: now, events: &events, trace: &trace)
            if fragmentRecord >= 0 { settleFirst(fragmentRecord, passed: reason == nil, index: index, trace: &trace) }
            if let reason {
                // A VIP's address is the switch's: dropped even when tracking only (see `decide`).
                let enforced = enforce || reason == .tableFull || metadata.pointee.cause == .spoofedVIP
                if enforced { batch.verdicts[index] = .drop(reason) }
                if Trace.isRecording {
                    trace.record(
                        TraceEvent(
                            frame: index, enforced ? .dropped : .invalidIgnored,
                            a: Int32(bitPattern: metadata.pointee.causeDetail), b: metadata.pointee.rule,
                            c: Int32(metadata.pointee.cause.rawValue)))
                }
            }
        }
        table.sweep(now: now, budget: 32)
        fragments.sweep(now: now, budget: 64)
    }

    /// Nil to pass the frame, else the drop reason.
    @inline(__always)
    private func decide<Trace: TraceSink>(
        _ frame: UnsafeRawBufferPointer, _ parsed: ParsedFrame, _ metadata: UnsafeMutablePointer<FrameMetadata>,
        index: Int, port: PortID, now: Int64, events: inout Events, trace: inout Trace
    ) -> DropReason? {
        let network = metadata.pointee.network
        let isIPv6 = parsed.layer3 == .ipv6
        var packet = addresses(frame, parsed)
        let proto = parsed.ipProtocol
        // Only the switch speaks for a VIP: a host sending from one could open connections in
        // its name (and so capture a health check's answers, marking live backends down).
        if !services.isEmpty && isVIP(packet.sourceHigh, packet.sourceLow, isIPv6: isIPv6, network: network) {
            return drop(.invalid, .spoofedVIP, 0, metadata)
        }
        // Tracking only: a later fragment has no ports to track it by, and nothing is enforced.
        if parsed.fragment == .later { return nil }
        if parsed.hasL4 {
            let l4 = Int(parsed.l4Offset)
            switch proto {
            case IPProtocol.tcp:
                packet.isTCP = true
                packet.sourcePort = frame.u16(l4)
                packet.destinationPort = frame.u16(l4 + 2)
                packet.tcpFlags = frame[l4 + 13]
            case IPProtocol.udp:
                packet.sourcePort = frame.u16(l4)
                packet.destinationPort = frame.u16(l4 + 2)
            case IPProtocol.icmp, IPProtocol.icmpv6:
                let isV6 = proto == IPProtocol.icmpv6
                // ICMPv6 over IPv4 (or ICMP over IPv6) is no ICMP at all: it gets no neighbour
                // discovery pass and no related-error treatment, only the rules, as any protocol.
                guard isV6 == isIPv6 else { break }
                let type = frame[l4]
                if isV6 ? (1...4).contains(type) : (type == 3 || type == 4 || type == 5 || type == 11 || type == 12) {
                    if isRelated(frame, icmpAt: l4, packet, network: network, now: now) {
                        events.related &+= 1
                        if Trace.isRecording { trace.record(TraceEvent(frame: index, .relatedError, a: Int32(type))) }
                        return nil
                    }
                    return drop(.invalid, .unrelatedICMPError, UInt32(type), metadata)
                }
                if isV6 && ((130...137).contains(type) || type == 143) {  // MLD, ND
                    if Trace.isRecording { trace.record(TraceEvent(frame: index, .neighbourDiscovery, a: Int32(type))) }
                    return nil
                }
                let echoRequest: UInt8 = isV6 ? 128 : 8
                let echoReply: UInt8 = isV6 ? 129 : 0
                if type == echoRequest || type == echoReply {
                    // The identifier sits on the requester's side of the key, so a request and its
                    // reply share one key and a request the other way round (the pinged host
                    // pinging back) is a new connection of its own, which the rules decide.
                    let identifier = frame.u16(l4 + 4)
                    packet.isEchoReply = type == echoReply
                    if packet.isEchoReply { packet.destinationPort = identifier } else { packet.sourcePort = identifier }
                }
            default:
                break
            }
        }
        packet.key = FlowKey(
            network: network, proto: proto, isIPv6: isIPv6, sourceHigh: packet.sourceHigh, sourceLow: packet.sourceLow,
            sourcePort: packet.sourcePort, destinationHigh: packet.destinationHigh,
            destinationLow: packet.destinationLow, destinationPort: packet.destinationPort,
            sourceIsA: &packet.sourceIsA)
        let length = UInt64(frame.count)
        if let id = table.lookup(packet.key, now: now) {
            let entry = table.entry(id)
            let before = Trace.isRecording ? Int32(entry.pointee.tcpState.rawValue) | (entry.pointee.replied ? 0x100 : 0) : 0
            if entry.pointee.needsRecheck, let refusing = recheck(id, entry, network: network) {
                metadata.pointee.rule = Int32(refusing)
                return drop(.firewall, .refusedAfterReload, 0, metadata)
            }
            let direction: TCPConnectionState.Direction
            if entry.pointee.key == packet.key {
                direction = packet.sourceIsA == entry.pointee.originIsA ? .original : .reply
            } else {  // found through the load balancer's backend-side key
                direction = packet.sourceIsA == entry.pointee.aliasBackendIsA ? .reply : .original
            }
            if packet.isTCP && entry.pointee.tcpState == .established && packet.tcpFlags & 0x17 == 0x10
                && entry.pointee.window.acceptsCommon(tcpSegment(frame, parsed), fromOriginal: direction == .original)
            {
                // The established path: an ACK or data segment (no SYN, RST or FIN) inside the
                // window leaves ESTABLISHED as it is (what `TCPConnectionState.on` says of it).
                entry.pointee.timeout = establishedTimeout
            } else if packet.isTCP {
                let closer: TCPConnectionState.Direction? =
                    entry.pointee.closer == 0 ? nil : (entry.pointee.closer == 1 ? .original : .reply)
                switch entry.pointee.tcpState.on(flags: packet.tcpFlags, from: direction, closer: closer) {
                case .ignore:
                    entry.pointee.window.ignored(tcpSegment(frame, parsed), from: direction)
                    if Trace.isRecording { trace.record(TraceEvent(frame: index, .tcpIgnored, a: Int32(id), b: direction == .reply ? 1 : 0)) }
                case .invalid:
                    keepForTrackingOnly(id, direction, metadata)
                    return drop(
                        .invalid, .tcpOutOfState, UInt32(packet.tcpFlags) | UInt32(entry.pointee.tcpState.rawValue) << 8,
                        metadata)
                case .reopen:
                    return open(
                        packet, frame, parsed, metadata, index: index, port: port, now: now, replacing: id,
                        events: &events, trace: &trace)
                case .move(var state, var newCloser):
                    let segment = tcpSegment(frame, parsed)
                    // The common case (an ACK or data inside the window) is settled in place.
                    if !entry.pointee.window.acceptsCommon(segment, fromOriginal: direction == .original) {
                        switch entry.pointee.window.update(segment, from: direction, state: entry.pointee.tcpState) {
                        case .accept:
                            break
                        case .acceptKeepingState:
                            (state, newCloser) = (entry.pointee.tcpState, closer)
                        case .restarted:
                            (state, newCloser) = (.synReceived, nil)
                        case .outside(let check, let value, let low, let high):
                            if Trace.isRecording {
                                trace.record(
                                    TraceEvent(
                                        frame: index, .outsideWindow, a: Int32(bitPattern: value), b: Int32(bitPattern: low),
                                        c: Int32(bitPattern: high)))
                            }
                            keepForTrackingOnly(id, direction, metadata)
                            return drop(
                                .invalid, .tcpOutOfWindow,
                                UInt32(packet.tcpFlags) | UInt32(check.rawValue) << 8 | UInt32(entry.pointee.tcpState.rawValue) << 16,
                                metadata)
                        }
                    }
                    entry.pointee.tcpState = state
                    entry.pointee.closer = newCloser.map { $0 == .original ? 1 : 2 } ?? 0
                    entry.pointee.timeout = configuration.timeouts.tcp[Int(state.rawValue)]
                }
            }
            if direction == .reply {
                if !entry.pointee.replied && !packet.isTCP {
                    entry.pointee.timeout =
                        entry.pointee.kind == .icmp ? configuration.timeouts.icmp : configuration.timeouts.udpStream
                }
                entry.pointee.replied = true
                entry.pointee.packetsReply &+= 1
                entry.pointee.bytesReply &+= length
            } else {
                entry.pointee.packetsOriginal &+= 1
                entry.pointee.bytesOriginal &+= length
            }
            entry.pointee.lastSeen = now
            metadata.pointee.connection = Int32(id)
            metadata.pointee.isReply = direction == .reply
            metadata.pointee.isNewConnection = false
            if Trace.isRecording {
                let after = Int32(entry.pointee.tcpState.rawValue) | (entry.pointee.replied ? 0x100 : 0)
                trace.record(
                    TraceEvent(
                        frame: index, .connectionUpdated, a: Int32(id), b: before,
                        c: after | (direction == .reply ? 0x10000 : 0) | Int32(entry.pointee.kind.rawValue) << 24))
            }
            return nil
        }
        return open(
            packet, frame, parsed, metadata, index: index, port: port, now: now, replacing: nil, events: &events,
            trace: &trace)
    }

    /// A connection carried across a reload meets the new rules at its first packet: the rules
    /// judge its original direction as if it were new. Refused: it is removed and this packet dropped.
    /// Nil when the new rules allow it (its rule is updated), else the refusing rule's index.
    private func recheck(_ id: Int, _ entry: UnsafeMutablePointer<ConnectionEntry>, network: NetworkID) -> Int? {
        entry.pointee.needsRecheck = false
        guard enforce else { return nil }
        let key = entry.pointee.key
        var origin = Packet()
        origin.isIPv6 = key.isIPv6
        if entry.pointee.originIsA {
            (origin.sourceHigh, origin.sourceLow, origin.sourcePort) = (key.aHigh, key.aLow, key.aPort)
            (origin.destinationHigh, origin.destinationLow, origin.destinationPort) = (key.bHigh, key.bLow, key.bPort)
        } else {
            (origin.sourceHigh, origin.sourceLow, origin.sourcePort) = (key.bHigh, key.bLow, key.bPort)
            (origin.destinationHigh, origin.destinationLow, origin.destinationPort) = (key.aHigh, key.aLow, key.aPort)
        }
        let (action, rule) = evaluate(origin, proto: key.proto, network: network)
        guard action == .allow else {
            table.remove(id: id)
            return rule
        }
        entry.pointee.rule = Int32(rule)
        return nil
    }

    /// Whether an address is a load balancer's VIP in `network`.
    @inline(__always)
    private func isVIP(_ high: UInt64, _ low: UInt64, isIPv6: Bool, network: NetworkID) -> Bool {
        for service in services
        where service.network == network && service.vipLow == low && service.vipHigh == high && service.isIPv6 == isIPv6 {
            return true
        }
        return false
    }

    /// Whether a packet is addressed to a load-balancer service (tracking-only mode tracks these alone).
    @inline(__always)
    private func isService(_ packet: Packet, proto: UInt8, network: NetworkID) -> Bool {
        for service in services
        where service.network == network && service.vipLow == packet.destinationLow
            && service.vipHigh == packet.destinationHigh && service.isIPv6 == packet.isIPv6
            && service.proto == proto && service.port == packet.destinationPort
        {
            return true
        }
        return false
    }

    /// A packet of no live connection: may it open one? `replacing` is a closed connection on the
    /// same flow (a SYN after TIME_WAIT or CLOSE): it gives way only if the rules allow the new one.
    private func open<Trace: TraceSink>(
        _ packet: Packet, _ frame: UnsafeRawBufferPointer, _ parsed: ParsedFrame,
        _ metadata: UnsafeMutablePointer<FrameMetadata>, index: Int, port: PortID, now: Int64, replacing: Int?,
        events: inout Events, trace: inout Trace
    ) -> DropReason? {
        let network = metadata.pointee.network
        if packet.isTCP && !TCPConnectionState.isOpening(packet.tcpFlags) {
            return drop(.invalid, .tcpWithoutConnection, UInt32(packet.tcpFlags), metadata)
        }
        if packet.isEchoReply { return drop(.invalid, .unsolicitedEchoReply, 0, metadata) }
        if !enforce && !isService(packet, proto: parsed.ipProtocol, network: network) {
            if Trace.isRecording { trace.record(TraceEvent(frame: index, .notService)) }
            return nil
        }
        let (action, rule) = enforce ? evaluate(packet, proto: parsed.ipProtocol, network: network) : (.allow, -1)
        metadata.pointee.rule = Int32(rule)
        guard action == .allow else {
            decided(rule, action, packet, proto: parsed.ipProtocol, port: port, network: network, now: now)
            return drop(.firewall, .refusedByRule, 0, metadata)
        }
        if let replacing { table.remove(id: replacing) }
        let kind: ConnectionEntry.Kind
        switch parsed.ipProtocol {
        case IPProtocol.tcp: kind = .tcp
        case IPProtocol.udp: kind = .udp
        case IPProtocol.icmp, IPProtocol.icmpv6: kind = .icmp
        default: kind = .other
        }
        let timeouts = configuration.timeouts
        let result = table.insert(packet.key, now: now) { entry in
            entry.kind = kind
            entry.originIsA = packet.sourceIsA
            entry.rule = Int32(rule)
            entry.tcpState = .synSent
            if kind == .tcp { _ = entry.window.update(tcpSegment(frame, parsed), from: .original, state: .synSent) }
            entry.packetsOriginal = 1
            entry.bytesOriginal = UInt64(frame.count)
            switch kind {
            case .tcp: entry.timeout = timeouts.tcp[Int(TCPConnectionState.synSent.rawValue)]
            case .icmp: entry.timeout = timeouts.icmp
            case .udp, .other: entry.timeout = timeouts.udp
            }
        }
        switch result {
        case .full: return drop(.tableFull, .tableFull, 0, metadata)  // not a connection the rule decided
        case .insertedAfterEviction(let id):
            events.evicted &+= 1
            metadata.pointee.connection = Int32(id)
        case .inserted(let id):
            metadata.pointee.connection = Int32(id)
        }
        metadata.pointee.isReply = false
        metadata.pointee.isNewConnection = true
        events.created &+= 1
        if enforce { decided(rule, action, packet, proto: parsed.ipProtocol, port: port, network: network, now: now) }
        if Trace.isRecording {
            trace.record(
                TraceEvent(
                    frame: index, .connectionOpened, a: metadata.pointee.connection, b: Int32(rule),
                    c: Int32(TCPConnectionState.synSent.rawValue) | Int32(kind.rawValue) << 24))
        }
        return nil
    }

    /// Records why the frame is dropped beside its verdict (for tracing) and returns the reason.
    @inline(__always)
    private func drop(
        _ reason: DropReason, _ cause: DropCause, _ detail: UInt32, _ metadata: UnsafeMutablePointer<FrameMetadata>
    ) -> DropReason {
        metadata.pointee.cause = cause
        metadata.pointee.causeDetail = detail
        return reason
    }

    /// First match wins; `default` when nothing matches. Returns the action and the rule's index
    /// (-1 for the default).
    @inline(__always)
    private func evaluate(_ packet: Packet, proto: UInt8, network: NetworkID) -> (FirewallConfiguration.Action, Int) {
        rules.evaluate(
            proto: proto, network: network, isIPv6: packet.isIPv6, sourceHigh: packet.sourceHigh,
            sourceLow: packet.sourceLow, destinationHigh: packet.destinationHigh, destinationLow: packet.destinationLow,
            sourcePort: packet.sourcePort, destinationPort: packet.destinationPort)
    }

    /// Counts a new connection's decision against its rule, and logs it when the rule logs.
    @inline(__always)
    private func decided(
        _ rule: Int, _ action: FirewallConfiguration.Action, _ packet: Packet, proto: UInt8, port: PortID,
        network: NetworkID, now: Int64
    ) {
        let slot = rules.slot(rule)
        rules.decided[slot] &+= 1
        guard rules.log.isEnabled else { return }
        rules.log.record(
            slot: slot,
            FirewallLogEntry(
                kind: .connection, rule: rule, allowed: action == .allow, time: now, port: port, network: network,
                proto: proto, isIPv6: packet.isIPv6, sourceHigh: packet.sourceHigh, sourceLow: packet.sourceLow,
                destinationHigh: packet.destinationHigh, destinationLow: packet.destinationLow,
                sourcePort: packet.sourcePort, destinationPort: packet.destinationPort))
    }

    /// Whether an ICMP error's quoted packet belongs to a live connection and the error travels
    /// back to that packet's sender (outer destination = quoted source); an error about an allowed
    /// flow addressed to anyone else is not related to it.
    private func isRelated(
        _ frame: UnsafeRawBufferPointer, icmpAt l4: Int, _ outer: Packet, network: NetworkID, now: Int64
    ) -> Bool {
        let isIPv6 = outer.isIPv6
        let inner = l4 + 8
        var sourceHigh: UInt64 = 0
        var sourceLow: UInt64
        var destinationHigh: UInt64 = 0
        var destinationLow: UInt64
        let proto: UInt8
        let innerL4: Int
        if isIPv6 {
            guard frame.count >= inner + 40, frame[inner] >> 4 == 6 else { return false }
            sourceHigh = load64(frame, inner + 8)
            sourceLow = load64(frame, inner + 16)
            destinationHigh = load64(frame, inner + 24)
            destinationLow = load64(frame, inner + 32)
            proto = frame[inner + 6]
            innerL4 = inner + 40
        } else {
            guard frame.count >= inner + 20, frame[inner] >> 4 == 4 else { return false }
            let headerLength = Int(frame[inner] & 0x0F) * 4
            guard headerLength >= 20 else { return false }
            sourceLow = FlowKey.mapped(frame.u32(inner + 12))
            destinationLow = FlowKey.mapped(frame.u32(inner + 16))
            proto = frame[inner + 9]
            innerL4 = inner + headerLength
        }
        guard outer.destinationHigh == sourceHigh && outer.destinationLow == sourceLow else { return false }
        var sourcePort: UInt16 = 0
        var destinationPort: UInt16 = 0
        switch proto {
        case IPProtocol.tcp, IPProtocol.udp:
            guard frame.count >= innerL4 + 4 else { return false }
            sourcePort = frame.u16(innerL4)
            destinationPort = frame.u16(innerL4 + 2)
        case IPProtocol.icmp, IPProtocol.icmpv6:
            guard frame.count >= innerL4 + 8 else { return false }
            // Keyed as `decide` keys echoes: the identifier on the requester's side.
            let type = frame[innerL4]
            let identifier = frame.u16(innerL4 + 4)
            let isV6 = proto == IPProtocol.icmpv6
            if type == (isV6 ? 128 : 8) {
                sourcePort = identifier
            } else if type == (isV6 ? 129 : 0) {
                destinationPort = identifier
            } else {
                return false
            }
        default:
            break
        }
        var ignored = true
        let key = FlowKey(
            network: network, proto: proto, isIPv6: isIPv6, sourceHigh: sourceHigh, sourceLow: sourceLow,
            sourcePort: sourcePort, destinationHigh: destinationHigh, destinationLow: destinationLow,
            destinationPort: destinationPort, sourceIsA: &ignored)
        return table.lookup(key, now: now) != nil
    }

    /// A datagram's identity besides its identification: network, protocol, source and
    /// destination in that order (not the connection's canonical order, so a fragment the other
    /// way with the same identification is another datagram, as it is to the receivers).
    private func fragmentKey(_ packet: Packet, network: NetworkID, proto: UInt8) -> FlowKey {
        var key = FlowKey()
        key.aHigh = packet.sourceHigh
        key.aLow = packet.sourceLow
        key.bHigh = packet.destinationHigh
        key.bLow = packet.destinationLow
        key.meta = UInt64(network) << 48 | UInt64(proto) << 40 | (packet.isIPv6 ? 1 << 32 : 0)
        return key
    }

    /// A fragment meets its datagram's record (`FragmentTable`). A later fragment is settled
    /// here: it passes, is held (verdict `.consume`) or is dropped. A first fragment that may go
    /// on to the rules returns its record, for `settleFirst`; nil when it was settled (or comes
    /// from a group address, which L2 drops).
    private func arriving<Trace: TraceSink>(
        _ batch: FrameBatch, _ index: Int, _ frame: UnsafeRawBufferPointer, _ parsed: ParsedFrame,
        _ metadata: UnsafeMutablePointer<FrameMetadata>, now: Int64, trace: inout Trace
    ) -> Int? {
        func refuse(_ cause: DropCause, _ identification: UInt32) {
            batch.verdicts[index] = .drop(cause.reason)
            _ = drop(cause.reason, cause, identification, metadata)
            if Trace.isRecording {
                trace.record(TraceEvent(frame: index, .dropped, a: Int32(bitPattern: identification), b: -1, c: Int32(cause.rawValue)))
            }
        }
        // L2 drops a frame from a group address: it must not also be held (and counted twice).
        if frame.mac(6).isMulticast { return nil }
        guard let fields = fragmentFields(frame, parsed) else {
            refuse(.malformedFragment, 0)
            return nil
        }
        let identification = fields.identification
        let key = fragmentKey(addresses(frame, parsed), network: metadata.pointee.network, proto: fields.proto)
        let verdict =
            parsed.fragment == .first
            ? fragments.first(key, identification: identification, fields.piece, now: now)
            : fragments.later(
                key, identification: identification, fields.piece, now: now,
                canHold: fragments.canHold(length: frame.count, ingress: batch.ingressPort))
        switch verdict {
        case .pass:
            if Trace.isRecording { trace.record(TraceEvent(frame: index, .fragmentPassed, a: Int32(bitPattern: identification))) }
        case .decide(let record):
            return record
        case .hold(let record):
            guard fragments.hold(frame, metadata: metadata.pointee, ingress: batch.ingressPort, record: record) else {
                refuse(.fragmentNotHeld, identification)
                return nil
            }
            batch.verdicts[index] = .consume
            if Trace.isRecording {
                trace.record(
                    TraceEvent(frame: index, .fragmentHeld, a: Int32(bitPattern: identification), b: Int32(fragments.heldCount(record))))
            }
        case .drop(let cause):
            refuse(cause, identification)
        }
        return nil
    }

    /// After the rules judged a first fragment: its held fragments leave right after this batch
    /// (`Datapath.releaseHeldFragments`), or are dropped with it.
    @inline(__always)
    private func settleFirst<Trace: TraceSink>(_ record: Int, passed: Bool, index: Int, trace: inout Trace) {
        let held = passed ? fragments.firstPassed(record) : fragments.firstRefused(record)
        if Trace.isRecording && held > 0 {
            trace.record(TraceEvent(frame: index, passed ? .heldFragmentsReleased : .heldFragmentsDropped, a: Int32(held)))
        }
    }

    /// A fragment's identification (IPv4's 16 bits; IPv6's fragment header's 32), the protocol
    /// its datagram is keyed by, and where its payload lies in the datagram. Nil for an impossible fragment: a datagram past 65,535
    /// bytes, no payload, or a fragment other than the last whose payload is not a multiple of 8
    /// bytes (RFC 8200 requires it; Linux trims IPv4's, which would let two hosts see different
    /// datagrams).
    private func fragmentFields(
        _ frame: UnsafeRawBufferPointer, _ parsed: ParsedFrame
    ) -> (identification: UInt32, proto: UInt8, piece: FragmentTable.Piece)? {
        let l3 = Int(parsed.l3Offset)
        let identification: UInt32
        // IPv6: the fragment header's next header, the same in every fragment (a first fragment's
        // parsed protocol is the upper layer behind any headers that follow it).
        var proto = parsed.ipProtocol
        let offsetAndFlags: UInt16
        let payload: Int
        // What the reassembled datagram holds besides the fragments' payloads: IPv4's header,
        // IPv6's extension headers before the fragment header (its payload length is 16 bits).
        let headerBytes: Int
        let more: Bool
        if parsed.layer3 == .ipv4 {
            // The parser checked header length <= total length <= the frame.
            identification = UInt32(frame.u16(l3 + 4))
            let flags = frame.u16(l3 + 6)
            offsetAndFlags = flags & 0x1FFF
            more = flags & 0x2000 != 0
            headerBytes = Int(frame[l3] & 0x0F) * 4
            payload = Int(frame.u16(l3 + 2)) - headerBytes
        } else {
            // Walk to the fragment header (the parser validated the chain up to it).
            let end = l3 + 40 + Int(frame.u16(l3 + 4))
            var next = frame[l3 + 6]
            var offset = l3 + 40
            while next != 44 {
                switch next {
                case 0, 43, 60: let length = (Int(frame[offset + 1]) + 1) * 8; next = frame[offset]; offset += length
                case 51: let length = (Int(frame[offset + 1]) + 2) * 4; next = frame[offset]; offset += length
                default: return nil
                }
                guard offset + 8 <= end else { return nil }
            }
            identification = frame.u32(offset + 4)
            proto = frame[offset]
            let field = frame.u16(offset + 2)
            offsetAndFlags = field >> 3
            more = field & 1 != 0
            payload = end - (offset + 8)
            headerBytes = offset - (l3 + 40)
        }
        let start = Int(offsetAndFlags) * 8
        let endByte = start + payload
        guard payload > 0, headerBytes + endByte <= 65_535, !more || payload % 8 == 0 else { return nil }
        return (
            identification, proto,
            // Both within 65,535 (checked above).
            FragmentTable.Piece(
                start: UInt16(truncatingIfNeeded: start), end: UInt16(truncatingIfNeeded: endByte), isLast: !more)
        )
    }

    /// Tracking only (no firewall section): a packet that does not fit its connection is not
    /// dropped, and the load balancer still needs the connection it belongs to.
    @inline(__always)
    private func keepForTrackingOnly(
        _ id: Int, _ direction: TCPConnectionState.Direction, _ metadata: UnsafeMutablePointer<FrameMetadata>
    ) {
        guard !enforce else { return }
        metadata.pointee.connection = Int32(id)
        metadata.pointee.isReply = direction == .reply
        metadata.pointee.isNewConnection = false
    }

    /// The TCP fields the window needs. The parser guaranteed the TCP header (its data offset
    /// included) lies inside the IP datagram and the datagram inside the frame, so the payload is
    /// the datagram's end minus the header's; a first fragment gives its own payload only.
    @inline(__always)
    private func tcpSegment(_ frame: UnsafeRawBufferPointer, _ parsed: ParsedFrame) -> TCPWindow.Segment {
        let l3 = Int(parsed.l3Offset)
        let l4 = Int(parsed.l4Offset)
        let datagramEnd = parsed.layer3 == .ipv6 ? l3 + 40 + Int(frame.u16(l3 + 4)) : l3 + Int(frame.u16(l3 + 2))
        let headerLength = Int(frame[l4 + 12] >> 4) * 4
        let flags = frame[l4 + 13]
        let payload = max(0, min(datagramEnd, frame.count) - l4 - headerLength)
        var windowScale: UInt8?
        if flags & 0x02 != 0 && headerLength > 20 {
            windowScale = TCPWindow.windowScale(in: UnsafeRawBufferPointer(rebasing: frame[(l4 + 20)..<(l4 + headerLength)]))
        }
        return TCPWindow.Segment(
            sequence: frame.u32(l4 + 4), acknowledgment: frame.u32(l4 + 8), flags: flags, window: frame.u16(l4 + 14),
            payloadLength: UInt32(truncatingIfNeeded: payload), windowScale: windowScale,
            isFirstFragment: parsed.fragment == .first)
    }

    /// A packet with its source and destination addresses filled in (IPv4 as IPv4-mapped).
    @inline(__always)
    private func addresses(_ frame: UnsafeRawBufferPointer, _ parsed: ParsedFrame) -> Packet {
        let l3 = Int(parsed.l3Offset)
        var packet = Packet()
        packet.isIPv6 = parsed.layer3 == .ipv6
        if packet.isIPv6 {
            packet.sourceHigh = load64(frame, l3 + 8)
            packet.sourceLow = load64(frame, l3 + 16)
            packet.destinationHigh = load64(frame, l3 + 24)
            packet.destinationLow = load64(frame, l3 + 32)
        } else {
            packet.sourceLow = FlowKey.mapped(frame.u32(l3 + 12))
            packet.destinationLow = FlowKey.mapped(frame.u32(l3 + 16))
        }
        return packet
    }

    @inline(__always)
    private func load64(_ frame: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
        UInt64(frame.u32(offset)) << 32 | UInt64(frame.u32(offset + 4))
    }
}
