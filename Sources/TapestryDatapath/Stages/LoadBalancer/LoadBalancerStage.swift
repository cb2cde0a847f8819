import TapestryWire

/// The round-robin load balancer: answers ARP (IPv4) or neighbor solicitations (IPv6) and ping
/// for each VIP, gives each new connection to VIP:port the next backend, and rewrites both
/// directions of the connection. A balancer and its backends are of one family.
///
/// Expects: frames after the connection-tracking stage (`metadata.connection`, `isReply`,
/// `isNewConnection`); connection tracking runs whenever a load balancer exists.
/// Emits: `.forward(ingress)` for its answers (ARP reply, neighbor advertisement, echo reply),
/// `.consume` for ARP replies and neighbor advertisements addressed to a VIP and for frames it
/// holds (`HeldFrames`) while their backend's MAC is unknown, `.floodAll` for the ARP request or
/// neighbor solicitation it sends for such a backend (in the held frame's place, at most once a
/// second); rewritten frames keep `.pass`. Held frames leave through
/// `releaseHeld` once the backend answers.
/// A new connection to a service whose backends are all drained or down is refused in place
/// (`.forward(ingress)`: a RST, or an ICMP port unreachable), counted `no-service`.
/// Drops: `no-service` (VIP on another port or protocol; a backend's queue of held frames is
/// full), `invalid` (a packet to a VIP service that belongs to no connection, e.g. a TCP non-SYN).
/// Health checks (`HealthChecks`): probes are written by `writeProbes` for the live driver;
/// answers are looked for only among frames to a VIP already dropped (`invalid`, `no-service`)
/// and consumed (a SYN-ACK becomes the VIP's RST).
/// Backend MACs are learned from ARP senders and IPv4 and IPv6 sources (neighbor discovery's
/// included) in the balancer's network, before any rewrite. The switch's own packets are written
/// by `SwitchAnswers`. See also: `WeightedRoundRobin`, docs/load-balancer.md.
final class LoadBalancerStage {
    let balancers: [LoadBalancerConfiguration]
    let table: ConnectionTable

    /// The per-frame view of the configuration: trivial values in memory allocated once, so the
    /// datapath copies no strings or arrays and makes no exclusivity checks per frame.
    struct Service {
        var network: NetworkID
        var vip: HostAddress
        var proto: UInt8
        var port: UInt16
        var mac: MACAddress
        var firstBackend: Int
        /// Nanoseconds; 0: no affinity.
        var affinity: Int64 = 0
    }
    struct Backend {
        var network: NetworkID
        var address: HostAddress
        var port: UInt16
        /// Learned MAC; `MACAddress.zero` while unknown.
        var mac: MACAddress
        /// When `mac` was last seen as a source: another MAC claiming the backend's address is
        /// believed only after this one has been silent for `macAging`.
        var lastHeard: Int64 = 0
    }
    private let services: UnsafeMutablePointer<Service>
    private let serviceCount: Int
    private let backends: UnsafeMutablePointer<Backend>
    private let backendCount: Int
    /// Connections handed to each backend (flat, in `backends` order).
    private let selectionCounts: UnsafeMutablePointer<UInt64>
    private let counters: UnsafeMutablePointer<(unresolved: UInt64, answered: UInt64, refused: UInt64, refusedInBatch: UInt64)>
    private var schedulers: [WeightedRoundRobin]
    /// ICMP and ICMPv6 port unreachables the switch may send for refused datagrams.
    private var errorBudget = TokenBucket(perSecond: 1_000, burst: 50)
    /// Frames waiting for their backend's MAC, by flat backend index.
    let held: HeldFrames
    /// Probe state of backends with `health`; `checking` is false when no balancer has any.
    let health: HealthChecks
    private let checking: Bool
    /// Client affinity, when a balancer has it.
    let affinity: AffinityTable?

    /// How long a backend's MAC must be silent before another MAC may take its address.
    let macAging: Int64

    init(
        balancers: [LoadBalancerConfiguration], table: ConnectionTable, macAgingSeconds: Int = 300,
        hashKey: HashKey = .fixed
    ) {
        self.balancers = balancers
        self.table = table
        macAging = Int64(macAgingSeconds) * 1_000_000_000
        serviceCount = balancers.count
        backendCount = balancers.reduce(0) { $0 + $1.backends.count }
        services = .allocate(capacity: max(1, serviceCount))
        backends = .allocate(capacity: max(1, backendCount))
        selectionCounts = .allocate(capacity: max(1, backendCount))
        selectionCounts.initialize(repeating: 0, count: max(1, backendCount))
        counters = .allocate(capacity: 1)
        counters.initialize(to: (0, 0, 0, 0))
        var next = 0
        for (index, balancer) in balancers.enumerated() {
            (services + index).initialize(
                to: Service(
                    network: balancer.network, vip: HostAddress(balancer.vip), proto: balancer.proto, port: balancer.port,
                    mac: balancer.mac, firstBackend: next, affinity: balancer.affinity ?? 0))
            for backend in balancer.backends {
                (backends + next).initialize(
                    to: Backend(network: balancer.network, address: HostAddress(backend.address), port: backend.port, mac: .zero))
                next += 1
            }
        }
        schedulers = balancers.map { WeightedRoundRobin(weights: $0.backends.map(\.weight)) }
        held = HeldFrames(backendCount: backendCount)
        health = HealthChecks(balancers: balancers, key: hashKey.derived(7))
        checking = health.isEnabled
        affinity = balancers.contains { $0.affinity != nil } ? AffinityTable(key: hashKey.derived(8)) : nil
    }

    deinit {
        services.deallocate()
        backends.deallocate()
        selectionCounts.deallocate()
        counters.deallocate()
    }

    var selections: [[UInt64]] {
        balancers.indices.map { index in
            (0..<balancers[index].backends.count).map { selectionCounts[services[index].firstBackend + $0] }
        }
    }
    var unresolved: UInt64 { counters.pointee.unresolved }
    var answered: UInt64 { counters.pointee.answered }
    var refused: UInt64 { counters.pointee.refused }

    /// New connections refused in the last batch (the datapath counts them no-service on its
    /// ingress port: they leave as answers, so no drop verdict says so).
    func takeRefusedInBatch() -> UInt64 {
        let count = counters.pointee.refusedInBatch
        counters.pointee.refusedInBatch = 0
        return count
    }

    func process<Trace: TraceSink>(_ batch: FrameBatch, now: Timestamp, trace: inout Trace) {
        let now = now.nanoseconds
        let ingress = batch.ingressPort
        for index in 0..<batch.count {
            guard case .pass = batch.verdicts[index] else {
                // A probe's answer has no connection: the firewall drops it as invalid. Only
                // dropped frames are looked at, and only when health checks are configured.
                if checking, case .drop(.invalid) = batch.verdicts[index] {
                    takeProbeAnswer(batch, index, ingress: ingress, now: now)
                }
                continue
            }
            let metadata = batch.metadata + index
            let parsed = metadata.pointee.parsed
            let network = metadata.pointee.network
            let frame = batch.frame(index)
            switch parsed.layer3 {
            case .arp:
                handleARP(
                    frame, parsed, network: network, index: index, batch: batch, ingress: ingress, now: now, trace: &trace)
            case .ipv4, .ipv6:
                if parsed.layer3 == .ipv6, parsed.ipProtocol == IPProtocol.icmpv6, parsed.hasL4,
                    Int(parsed.l4Offset) < frame.count, frame[Int(parsed.l4Offset)] == 135 || frame[Int(parsed.l4Offset)] == 136
                {
                    handleNeighborDiscovery(
                        frame, parsed, network: network, index: index, batch: batch, ingress: ingress, now: now, trace: &trace)
                } else {
                    handleIP(frame, parsed, metadata, index: index, batch: batch, ingress: ingress, now: now, trace: &trace)
                }
            default:
                continue
            }
        }
    }

    // MARK: ARP

    private func handleARP<Trace: TraceSink>(
        _ frame: UnsafeMutableRawBufferPointer, _ parsed: ParsedFrame, network: NetworkID, index frameIndex: Int,
        batch: FrameBatch, ingress: PortID, now: Int64, trace: inout Trace
    ) {
        let l3 = Int(parsed.l3Offset)
        guard let arp = ARPView(validating: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(frame)[l3...])),
            arp.isEthernetIPv4
        else { return }
        let sender = HostAddress(ipv4: arp.senderIP.rawValue)
        if isVIP(sender, network: network) {
            // A host speaking for a VIP (a backend answering for it, a gratuitous claim): only
            // the switch does, or clients would send the service's traffic to that host.
            drop(.invalid, .claimedVIP, frameIndex, batch, &trace)
            return
        }
        learn(network: network, ip: sender, mac: arp.senderMAC, now: now)
        let target = HostAddress(ipv4: arp.targetIP.rawValue)
        for index in 0..<serviceCount where services[index].network == network && services[index].vip == target {
            let balancer = services[index]
            if arp.operation == 1 {
                // Never to a group address (the frame goes on, and L2 drops it as multicast-source).
                guard !UnsafeRawBufferPointer(frame).mac(6).isMulticast, !arp.senderMAC.isMulticast else { return }
                // Answer in place: the request becomes the reply, back out of its port.
                let requester = arp.senderMAC
                let arrivingSource = UnsafeRawBufferPointer(frame).mac(6)
                let requesterIP = arp.senderIP
                frame.setMAC(0, requester)
                frame.setMAC(6, balancer.mac)
                frame.setU16(l3 + 6, 2)
                frame.setMAC(l3 + 8, balancer.mac)
                frame.setU32(l3 + 14, balancer.vip.ipv4.rawValue)
                frame.setMAC(l3 + 18, requester)
                frame.setU32(l3 + 24, requesterIP.rawValue)
                batch.verdicts[frameIndex] = .forward(ingress)
                batch.metadata[frameIndex].skipLearning = true
                batch.metadata[frameIndex].learnArrivingSource = true
                batch.metadata[frameIndex].arrivingSource = arrivingSource
                counters.pointee.answered &+= 1
                if Trace.isRecording { trace.record(TraceEvent(frame: frameIndex, .vipAnswered, a: Int32(index))) }
            } else {
                if checking { takeARPProbeAnswer(arp, network: network, now: now) }
                batch.verdicts[frameIndex] = .consume  // a backend answering our ARP request
                if Trace.isRecording { trace.record(TraceEvent(frame: frameIndex, .vipARPReplyTaken, a: Int32(index))) }
            }
            return
        }
    }

    // MARK: IPv6 neighbor discovery

    /// A neighbor solicitation for a VIP is answered in place with the VIP's advertisement; an
    /// advertisement to a VIP (a backend answering the switch's solicitation) is consumed; one
    /// whose target is a VIP (a host claiming it) is dropped `invalid`. Only well-formed messages
    /// count (RFC 4861 7.1.1: hop limit 255, code 0, a valid checksum, 24 bytes or more within
    /// the IPv6 payload, a unicast target): others to a VIP are `no-service`, the rest, and
    /// those about other addresses, go on as any frame.
    private func handleNeighborDiscovery<Trace: TraceSink>(
        _ frame: UnsafeMutableRawBufferPointer, _ parsed: ParsedFrame, network: NetworkID, index frameIndex: Int,
        batch: FrameBatch, ingress: PortID, now: Int64, trace: inout Trace
    ) {
        let l3 = Int(parsed.l3Offset)
        let l4 = Int(parsed.l4Offset)
        let bytes = UnsafeRawBufferPointer(frame)
        let source = HostAddress(bytes, l3: l3, isIPv6: true, source: true)
        let destination = HostAddress(bytes, l3: l3, isIPv6: true, source: false)
        let arrivingSource = bytes.mac(6)
        learn(network: network, ip: source, mac: arrivingSource, now: now)
        let messageEnd = min(frame.count, l3 + SwitchAnswers.ipv6HeaderLength + Int(frame.u16(l3 + 4)))
        guard l4 + 24 <= messageEnd, frame[l3 + 7] == 255, frame[l4 + 1] == 0, parsed.fragment == .none,
            HostAddress(ipv6High: frame.u64(l4 + 8), low: frame.u64(l4 + 16)).isUnicast,
            ChecksumVerifier.l4IsValid(bytes, parsed) == true
        else {
            if isVIP(destination, network: network) { drop(.noService, .notServed, frameIndex, batch, &trace) }
            return
        }
        let target = HostAddress(ipv6High: frame.u64(l4 + 8), low: frame.u64(l4 + 16))
        let type = frame[l4]
        if type == 136 {
            if isVIP(target, network: network) {
                // A host advertising a VIP: only the switch does (see handleARP).
                drop(.invalid, .claimedVIP, frameIndex, batch, &trace)
                return
            }
            for index in 0..<serviceCount where services[index].network == network && services[index].vip == destination {
                if checking {
                    takeNeighborProbeAnswer(
                        source: source, target: target, mac: arrivingSource, network: network, now: now, vip: destination)
                }
                batch.verdicts[frameIndex] = .consume
                if Trace.isRecording { trace.record(TraceEvent(frame: frameIndex, .vipARPReplyTaken, a: Int32(index))) }
                return
            }
            return
        }
        for index in 0..<serviceCount where services[index].network == network && services[index].vip == target {
            // Never to a group address; a solicitor with an address must have a unicast one.
            guard !arrivingSource.isMulticast, source.isUnicast || (source.high | source.low) == 0 else { return }
            let (region, start) = batch.slot(frameIndex)
            let end = l3 + SwitchAnswers.neighborMessageLength
            guard start + end <= region.count else { return }
            let out = UnsafeMutableRawBufferPointer(rebasing: region[start..<(start + end)])
            out.setMAC(0, arrivingSource)
            out.setMAC(6, services[index].mac)
            _ = SwitchAnswers.writeNeighborAdvertisement(out, l3: l3, mac: services[index].mac, vip: target, to: source)
            sendBack(batch, frameIndex, start: start, length: end, arrivingSource: arrivingSource, ingress: ingress)
            counters.pointee.answered &+= 1
            if Trace.isRecording { trace.record(TraceEvent(frame: frameIndex, .vipAnswered, a: Int32(index))) }
            return
        }
    }

    /// Whether `address` is a VIP of `network`.
    @inline(__always)
    private func isVIP(_ address: HostAddress, network: NetworkID) -> Bool {
        for index in 0..<serviceCount where services[index].network == network && services[index].vip == address { return true }
        return false
    }

    // MARK: IPv4 and IPv6

    private func handleIP<Trace: TraceSink>(
        _ frame: UnsafeMutableRawBufferPointer, _ parsed: ParsedFrame, _ metadata: UnsafeMutablePointer<FrameMetadata>,
        index: Int, batch: FrameBatch, ingress: PortID, now: Int64, trace: inout Trace
    ) {
        let l3 = Int(parsed.l3Offset)
        let isIPv6 = parsed.layer3 == .ipv6
        let network = metadata.pointee.network
        let bytes = UnsafeRawBufferPointer(frame)
        let source = HostAddress(bytes, l3: l3, isIPv6: isIPv6, source: true)
        let destination = HostAddress(bytes, l3: l3, isIPv6: isIPv6, source: false)
        learn(network: network, ip: source, mac: bytes.mac(6), now: now)

        if metadata.pointee.connection >= 0 && metadata.pointee.isReply {
            let entry = table.entry(Int(metadata.pointee.connection))
            guard entry.pointee.backend >= 0 else { return }
            let service = services[Int(entry.pointee.balancer)]
            let backend = backends[service.firstBackend + Int(entry.pointee.backend)]
            guard source == backend.address else { return }
            // Reply: it must look as if the VIP sent it.
            let partial = metadata.pointee.offload.needsChecksum
            setAddress(frame, parsed, .source, service.vip, partialChecksum: partial)
            _ = FrameRewriter.setPort(frame, parsed, .source, service.port, partialChecksum: partial)
            frame.setMAC(6, service.mac)
            metadata.pointee.skipLearning = true
            if Trace.isRecording {
                trace.record(
                    TraceEvent(frame: index, .replyRewritten, a: Int32(entry.pointee.balancer), b: Int32(entry.pointee.backend)))
            }
            return
        }

        var isVIP = false
        var serviceIndex = -1
        let proto = parsed.ipProtocol
        let hasPorts = parsed.hasL4 && (proto == IPProtocol.tcp || proto == IPProtocol.udp)
        let port = hasPorts ? frame.u16(Int(parsed.l4Offset) + 2) : 0
        for index in 0..<serviceCount where services[index].network == network && services[index].vip == destination {
            isVIP = true
            if hasPorts && services[index].proto == proto && services[index].port == port {
                serviceIndex = index
                break
            }
        }
        guard isVIP else { return }
        if serviceIndex < 0 {
            let isEchoRequest =
                parsed.hasL4 && parsed.fragment == .none
                && (isIPv6
                    ? proto == IPProtocol.icmpv6 && frame[Int(parsed.l4Offset)] == 128
                    : proto == IPProtocol.icmp && frame[Int(parsed.l4Offset)] == 8)
            if isEchoRequest, !bytes.mac(6).isMulticast, source.isUnicast {
                let first = (0..<serviceCount).first { services[$0].network == network && services[$0].vip == destination }!
                metadata.pointee.arrivingSource = bytes.mac(6)
                metadata.pointee.learnArrivingSource = true
                SwitchAnswers.answerEcho(frame, parsed, mac: services[first].mac)
                // The answer never passes connection tracking: record it as the reply, so the
                // request's entry is answered (and expires on the ICMP timeout) rather than
                // left unreplied.
                if metadata.pointee.connection >= 0 {
                    let entry = table.entry(Int(metadata.pointee.connection))
                    entry.pointee.replied = true
                    entry.pointee.packetsReply &+= 1
                    entry.pointee.bytesReply &+= UInt64(frame.count)
                }
                batch.verdicts[index] = .forward(ingress)
                metadata.pointee.skipLearning = true
                counters.pointee.answered &+= 1
                if Trace.isRecording { trace.record(TraceEvent(frame: index, .vipAnswered, a: Int32(first))) }
            } else {
                drop(.noService, .notServed, index, batch, &trace)
                if checking { takeProbeAnswer(batch, index, ingress: ingress, now: now) }
            }
            return
        }
        let service = services[serviceIndex]
        guard metadata.pointee.connection >= 0 else {
            drop(.invalid, .untrackedServiceTraffic, index, batch, &trace)
            return
        }
        let id = Int(metadata.pointee.connection)
        let entry = table.entry(id)
        var why: Int32 = 0  // the connection's backend
        if entry.pointee.backend < 0 {
            // Affinity: the client's last backend, while it may take connections.
            var sticky: Int? = nil
            if service.affinity > 0, let affinity,
                let previous = affinity.backend(balancer: serviceIndex, client: source, now: now),
                schedulers[serviceIndex].isAvailable(previous)
            {
                sticky = previous
            }
            guard let chosen = sticky ?? schedulers[serviceIndex].next() else {
                if !refuse(batch, index, service: service, ingress: ingress, now: now) {
                    drop(.noService, .allBackendsDrained, index, batch, &trace)
                } else if Trace.isRecording {
                    trace.record(TraceEvent(frame: index, .refused, a: Int32(serviceIndex), b: proto == IPProtocol.tcp ? 0 : 1))
                }
                return
            }
            if Trace.isRecording { why = sticky != nil ? -1 : 1 + Int32(schedulers[serviceIndex].skipped) }
            if service.affinity > 0, let affinity {
                affinity.record(balancer: serviceIndex, client: source, backend: chosen, now: now, within: service.affinity)
            }
            entry.pointee.balancer = Int16(serviceIndex)
            entry.pointee.backend = Int16(chosen)
            selectionCounts[service.firstBackend + chosen] &+= 1
            let backend = backends[service.firstBackend + chosen]
            // The backend side of the connection finds the same entry.
            var backendIsA = true
            let key = FlowKey(
                network: network, proto: proto, isIPv6: isIPv6, sourceHigh: backend.address.high,
                sourceLow: backend.address.low, sourcePort: backend.port, destinationHigh: source.high,
                destinationLow: source.low, destinationPort: frame.u16(Int(parsed.l4Offset)), sourceIsA: &backendIsA)
            table.addAlias(id: id, key: key, backendIsA: backendIsA)
        }
        let backendIndex = service.firstBackend + Int(entry.pointee.backend)
        let backend = backends[backendIndex]
        if Trace.isRecording {
            trace.record(
                TraceEvent(frame: index, .backendChosen, a: Int32(serviceIndex), b: Int32(entry.pointee.backend), c: why))
        }
        let partial = metadata.pointee.offload.needsChecksum
        setAddress(frame, parsed, .destination, backend.address, partialChecksum: partial)
        _ = FrameRewriter.setPort(frame, parsed, .destination, backend.port, partialChecksum: partial)
        guard backend.mac != .zero else {
            hold(frame, metadata, index: index, batch: batch, ingress: ingress, serviceIndex: serviceIndex,
                 backendIndex: backendIndex, now: now, trace: &trace)
            return
        }
        frame.setMAC(0, backend.mac)
    }

    @inline(__always)
    private func setAddress(
        _ frame: UnsafeMutableRawBufferPointer, _ parsed: ParsedFrame, _ which: FrameRewriter.Endpoint, _ address: HostAddress,
        partialChecksum: Bool
    ) {
        if address.isIPv6 {
            _ = FrameRewriter.setIPv6Address(frame, parsed, which, address.ipv6, partialChecksum: partialChecksum)
        } else {
            _ = FrameRewriter.setIPv4Address(frame, parsed, which, address.ipv4, partialChecksum: partialChecksum)
        }
    }

    /// A frame for a backend whose MAC is unknown: held (its destination MAC is written when it
    /// leaves), and in its place an ARP request or neighbor solicitation for the backend unless
    /// one went out within `HeldFrames.askInterval`; dropped `no-service` when the backend's
    /// queue is full.
    private func hold<Trace: TraceSink>(
        _ frame: UnsafeMutableRawBufferPointer, _ metadata: UnsafeMutablePointer<FrameMetadata>, index: Int,
        batch: FrameBatch, ingress: PortID, serviceIndex: Int, backendIndex: Int, now: Int64, trace: inout Trace
    ) {
        counters.pointee.unresolved &+= 1
        let service = services[serviceIndex]
        let backend = backendIndex - service.firstBackend
        guard held.hold(UnsafeRawBufferPointer(frame), backend: backendIndex, ingress: ingress, metadata: metadata.pointee, now: now)
        else {
            drop(.noService, .heldFramesFull, index, batch, &trace)
            return
        }
        let asked = held.shouldAsk(backendIndex, now: now)
        if asked {
            metadata.pointee.arrivingSource = UnsafeRawBufferPointer(frame).mac(6)
            metadata.pointee.learnArrivingSource = true
            askForBackend(batch: batch, index: index, service: service, backend: backends[backendIndex].address)
            metadata.pointee.skipLearning = true
        } else {
            batch.verdicts[index] = .consume
        }
        if Trace.isRecording {
            trace.record(
                TraceEvent(frame: index, .backendUnresolved, a: Int32(serviceIndex), b: Int32(backend), c: asked ? 1 : 0))
        }
    }

    /// Moves frames held for a backend whose MAC is now known into `batch` (see
    /// `HeldFrames.release`). False when none can leave.
    func releaseHeld(into batch: FrameBatch) -> Bool {
        guard held.counts.pointee.waiting > 0 else { return false }
        for position in 0..<held.holdingCount {
            let index = held.holdingBackend(position)
            guard backends[index].mac != .zero, held.waiting(index) > 0 else { continue }
            if held.release(index, mac: backends[index].mac, into: batch) { return true }
        }
        return false
    }

    /// Writes an ARP request or neighbor solicitation from the VIP into `batch` for every backend
    /// whose MAC is unknown, from flat backend index `cursor` on, as many as fit (a live switch
    /// asks when it starts and after a reload, so the first connection does not wait). Returns
    /// where to go on, nil when every backend was visited.
    func askForUnknownBackends(into batch: FrameBatch, from cursor: Int) -> Int? {
        var index = cursor
        while index < backendCount {
            let backend = backends[index]
            if backend.mac == .zero {
                guard let area = batch.nextFreeFrameArea(), area.count >= SwitchAnswers.longestOwnFrame else { return index }
                let owner = ownerService(of: index)
                let length = writeSolicitation(into: area, header: 12, padded: 60, service: services[owner], backend: backend.address)
                batch.commit(length: length)
                let slot = batch.count - 1
                batch.metadata[slot] = FrameMetadata()
                batch.metadata[slot].network = backend.network
                batch.metadata[slot].skipLearning = true
                batch.verdicts[slot] = .floodAll
                // Not recorded as an ask: hosts often get their addresses after the switch
                // started, and the first held frame must then ask at once.
            }
            index += 1
        }
        return nil
    }

    /// The balancer a flat backend index belongs to.
    private func ownerService(of backend: Int) -> Int {
        var owner = 0
        for index in 0..<serviceCount where services[index].firstBackend <= backend { owner = index }
        return owner
    }

    @inline(__always)
    private func drop<Trace: TraceSink>(
        _ reason: DropReason, _ cause: DropCause, _ index: Int, _ batch: FrameBatch, _ trace: inout Trace
    ) {
        batch.verdicts[index] = .drop(reason)
        batch.metadata[index].cause = cause
        if Trace.isRecording { trace.record(TraceEvent(frame: index, .dropped, b: -1, c: Int32(cause.rawValue))) }
    }

    /// Replaces frame `index` by the VIP's request for `backend`'s MAC (ARP, or a neighbor
    /// solicitation to its solicited-node group), flooded.
    private func askForBackend(batch: FrameBatch, index: Int, service: Service, backend: HostAddress) {
        let (region, start) = batch.slot(index)
        let metadata = batch.metadata[index]
        // Egress removes a consumed tag at offset 12: write the request after it so tagging still works.
        let header = metadata.consumedTag ? 16 : 12
        let minimum = 60 + (metadata.consumedTag ? 4 : 0)  // 60 bytes once the tag is gone
        let room = UnsafeMutableRawBufferPointer(rebasing: region[start..<min(region.count, start + 128)])
        guard room.count >= SwitchAnswers.longestOwnFrame else {
            batch.verdicts[index] = .consume  // held; with slots this small nothing can ask
            return
        }
        let length = writeSolicitation(into: room, header: header, padded: minimum, service: service, backend: backend)
        batch.setBounds(index, start: start, length: length)
        batch.metadata[index].offload = VirtioNetHeader()
        batch.metadata[index].priorityBits = 0  // the switch's own request, not the frame's priority
        batch.verdicts[index] = .floodAll
    }

    /// The VIP's broadcast ARP request (IPv4) or multicast neighbor solicitation (IPv6) for
    /// `backend`, its EtherType at `header`, at least `padded` bytes. Returns the length.
    private func writeSolicitation(
        into out: UnsafeMutableRawBufferPointer, header: Int, padded: Int, service: Service, backend: HostAddress
    ) -> Int {
        if backend.isIPv6 {
            let end = SwitchAnswers.writeNeighborSolicitation(
                into: out, header: header, mac: service.mac, vip: service.vip, target: backend)
            for byte in end..<max(end, padded) { out[byte] = 0 }
            return max(end, padded)
        }
        let length = max(padded, header + 2 + 28)
        SwitchAnswers.writeARPRequest(
            into: out, header: header, padded: length, mac: service.mac, vip: service.vip.ipv4, target: backend.ipv4)
        return length
    }

    /// A backend's MAC, from a frame claiming its address. Once known it is pinned: a different
    /// MAC replaces it only after the known one has been silent for `macAging` (a backend that
    /// really changed its NIC), so one forged ARP reply cannot redirect the backend's connections.
    @inline(__always)
    private func learn(network: NetworkID, ip: HostAddress, mac: MACAddress, now: Int64) {
        guard !mac.isMulticast, mac != .zero else { return }
        for index in 0..<backendCount where backends[index].address == ip && backends[index].network == network {
            if backends[index].mac == mac || backends[index].mac == .zero
                || now &- backends[index].lastHeard >= macAging
            {
                backends[index].mac = mac
                backends[index].lastHeard = now
            }
        }
    }

    // MARK: health checks

    /// The flat index of `balancer`'s first backend.
    func firstBackend(of balancer: Int) -> Int { services[balancer].firstBackend }

    private func setDown(_ index: Int, _ up: Bool) {
        let owner = ownerService(of: index)
        schedulers[owner].setDown(index - services[owner].firstBackend, !up)
    }

    /// Times out outstanding probes (`cursor` 0 only) and writes the probes due into `batch`,
    /// from flat backend index `cursor` on, as many as fit. Returns where to go on, nil when done.
    /// `located`: whether L2 knows the port of a MAC in a network; a probe goes out only by
    /// unicast to a located backend (a flooded one would show its nonce to every host), else
    /// a request for the backend's MAC takes its place (and the probe fails).
    func writeProbes(
        into batch: FrameBatch, from cursor: Int, now: Int64, located: (NetworkID, MACAddress) -> Bool
    ) -> Int? {
        if cursor == 0 { health.expire(now: now) { setDown($0, $1) } }
        return health.due(now: now, from: cursor) { index, nonce in
            guard let area = batch.nextFreeFrameArea(), area.count >= SwitchAnswers.longestOwnFrame,
                let check = health.health[index]
            else { return false }
            let backend = backends[index]
            let service = services[ownerService(of: index)]
            let verdict: Verdict
            let length: Int
            let reachable = backend.mac != .zero && located(backend.network, backend.mac)
            if check.probe == .arp && reachable && backend.address.isIPv6 {
                // IPv6's ARP: a neighbor solicitation to the backend itself (as Linux checks
                // reachability), answered by an advertisement.
                length = SwitchAnswers.writeNeighborSolicitation(
                    into: area, header: 12, mac: service.mac, vip: service.vip, target: backend.address, unicast: backend.mac)
                verdict = .pass
            } else if check.probe == .arp || !reachable {
                // An ARP probe (unicast when the backend is located), or the backend must be
                // found first (a broadcast request; this probe then fails).
                length = writeSolicitation(into: area, header: 12, padded: 60, service: service, backend: backend.address)
                if reachable { area.setMAC(0, backend.mac) }
                verdict = reachable ? .pass : .floodAll
            } else {
                length = SwitchAnswers.writeProbe(
                    into: area, tcp: check.probe == .tcp, mac: service.mac, vip: service.vip, to: backend.mac, backend.address,
                    port: backend.port, identity: Self.tcpProbe(nonce), echo: Self.echoProbe(nonce),
                    payload: Self.echoPayload(nonce, key: health.key))
                verdict = .pass
            }
            batch.commit(length: length)
            let slot = batch.count - 1
            batch.metadata[slot] = FrameMetadata()
            batch.metadata[slot].parsed = FrameParser.parse(UnsafeRawBufferPointer(batch.frame(slot)))
            batch.metadata[slot].network = backend.network
            batch.metadata[slot].skipLearning = true
            batch.verdicts[slot] = verdict
            return true
        }
    }

    /// The TCP probe's source port and initial sequence number, the ICMP probe's identifier and
    /// sequence number, from its nonce.
    static func tcpProbe(_ nonce: UInt64) -> (port: UInt16, sequence: UInt32) {
        (UInt16(32768 | (nonce & 0x7FFF)), UInt32(truncatingIfNeeded: nonce >> 32))
    }
    static func echoProbe(_ nonce: UInt64) -> (identifier: UInt16, sequence: UInt16) {
        (UInt16(truncatingIfNeeded: nonce >> 16), UInt16(truncatingIfNeeded: nonce >> 48))
    }
    /// The echo probe's 8 data bytes: 64 more bits a forger must guess (a reply echoes them).
    static func echoPayload(_ nonce: UInt64, key: HashKey) -> UInt64 { key.hash(nonce ^ 0x6563_686f) }

    /// An ARP reply from a backend to a VIP answers the outstanding ARP probe of every balancer
    /// of that VIP the backend serves; from the backend's pinned MAC only, once it is known.
    private func takeARPProbeAnswer(_ arp: ARPView, network: NetworkID, now: Int64) {
        takeNeighborProbeAnswer(
            source: HostAddress(ipv4: arp.senderIP.rawValue), target: HostAddress(ipv4: arp.targetIP.rawValue),
            mac: arp.senderMAC, network: network, now: now, vip: HostAddress(ipv4: arp.targetIP.rawValue))
    }

    /// An answer about `source` (ARP's sender, or a neighbor advertisement's sender whose
    /// `target` is itself) to `vip` answers the outstanding ARP probe of every balancer of that
    /// VIP the backend serves; from the backend's pinned MAC only, once it is known.
    private func takeNeighborProbeAnswer(
        source: HostAddress, target: HostAddress, mac: MACAddress, network: NetworkID, now: Int64, vip: HostAddress
    ) {
        guard source.isIPv6 ? target == source : true else { return }
        for index in 0..<backendCount
        where backends[index].address == source && backends[index].network == network
            && (backends[index].mac == .zero || backends[index].mac == mac)
        {
            guard services[ownerService(of: index)].vip == vip, health.health[index]?.probe == .arp,
                let nonce = health.outstandingNonce(index)
            else { continue }
            _ = health.answer(index, nonce: nonce, success: true, now: now) { setDown($0, $1) }
        }
    }

    /// A frame to a VIP that may answer a probe: a SYN-ACK (success; answered with a RST from the
    /// VIP, in its place), a RST (failure) or an echo reply (success) from the backend's address
    /// that quotes the outstanding probe's nonce. Matched ones are consumed; anything else keeps
    /// its verdict.
    private func takeProbeAnswer(_ batch: FrameBatch, _ index: Int, ingress: PortID, now: Int64) {
        let metadata = batch.metadata + index
        let parsed = metadata.pointee.parsed
        guard parsed.isValid, parsed.layer3 == .ipv4 || parsed.layer3 == .ipv6, parsed.hasL4, parsed.fragment == .none
        else { return }
        let isIPv6 = parsed.layer3 == .ipv6
        let frame = batch.frame(index)
        let l3 = Int(parsed.l3Offset)
        let l4 = Int(parsed.l4Offset)
        let source = HostAddress(UnsafeRawBufferPointer(frame), l3: l3, isIPv6: isIPv6, source: true)
        let destination = HostAddress(UnsafeRawBufferPointer(frame), l3: l3, isIPv6: isIPv6, source: false)
        let network = metadata.pointee.network
        for backend in 0..<backendCount where backends[backend].address == source && backends[backend].network == network {
            guard let check = health.health[backend], let nonce = health.outstandingNonce(backend) else { continue }
            let service = services[ownerService(of: backend)]
            guard destination == service.vip else { continue }
            switch check.probe {
            case .tcp:
                guard parsed.ipProtocol == IPProtocol.tcp, l4 + 20 <= frame.count else { continue }
                let (port, sequence) = Self.tcpProbe(nonce)
                let flags = frame[l4 + 13]
                guard frame.u16(l4) == backends[backend].port, frame.u16(l4 + 2) == port,
                    frame.u32(l4 + 8) == sequence &+ 1, flags & 0x10 != 0
                else { continue }
                if flags & 0x04 != 0 {
                    _ = health.answer(backend, nonce: nonce, success: false, now: now) { setDown($0, $1) }
                    batch.verdicts[index] = .consume
                } else if flags & 0x12 == 0x12 {
                    _ = health.answer(backend, nonce: nonce, success: true, now: now) { setDown($0, $1) }
                    answerWithReset(batch, index, service: service, ingress: ingress)
                }
                return
            case .icmp:
                let echoReply: (proto: UInt8, type: UInt8) = isIPv6 ? (IPProtocol.icmpv6, 129) : (IPProtocol.icmp, 0)
                guard parsed.ipProtocol == echoReply.proto, l4 + 16 <= frame.count, frame[l4] == echoReply.type else { continue }
                let (identifier, sequence) = Self.echoProbe(nonce)
                guard frame.u16(l4 + 4) == identifier, frame.u16(l4 + 6) == sequence,
                    UInt64(frame.u32(l4 + 8)) << 32 | UInt64(frame.u32(l4 + 12)) == Self.echoPayload(nonce, key: health.key)
                else { continue }
                _ = health.answer(backend, nonce: nonce, success: true, now: now) { setDown($0, $1) }
                batch.verdicts[index] = .consume
                return
            case .arp:
                continue
            }
        }
    }

    /// Turns a probe's SYN-ACK into the VIP's RST for it, in place, back out of its port, so the
    /// backend does not keep a half-open connection.
    private func answerWithReset(_ batch: FrameBatch, _ index: Int, service: Service, ingress: PortID) {
        let metadata = batch.metadata + index
        let parsed = metadata.pointee.parsed
        let frame = batch.frame(index)
        let l3 = Int(parsed.l3Offset)
        let received = Int(parsed.l4Offset)
        let backendMAC = UnsafeRawBufferPointer(frame).mac(6)
        let backendIP = HostAddress(UnsafeRawBufferPointer(frame), l3: l3, isIPv6: service.vip.isIPv6, source: true)
        let backendPort = frame.u16(received)
        let probePort = frame.u16(received + 2)
        let sequence = frame.u32(received + 8)
        let (region, start) = batch.slot(index)
        let length = l3 + (service.vip.isIPv6 ? SwitchAnswers.ipv6HeaderLength : SwitchAnswers.ipv4HeaderLength) + 20
        let padded = max(60 + (metadata.pointee.consumedTag ? 4 : 0), length)
        let out = UnsafeMutableRawBufferPointer(rebasing: region[start..<(start + padded)])
        for byte in length..<padded { out[byte] = 0 }
        out.setMAC(0, backendMAC)
        out.setMAC(6, service.mac)
        _ = SwitchAnswers.writeReset(
            out, l3: l3, from: service.vip, probePort, to: backendIP, backendPort, sequence: sequence, acknowledgment: 0,
            flags: 0x04)
        sendBack(batch, index, start: start, length: padded, arrivingSource: backendMAC, ingress: ingress)
    }

    /// Frame `index`, rewritten in its slot into the switch's answer (`start`, `length`), goes
    /// back out of the port it came in on; L2 learns the source it arrived with, not the VIP's MAC.
    private func sendBack(
        _ batch: FrameBatch, _ index: Int, start: Int, length: Int, arrivingSource: MACAddress, ingress: PortID
    ) {
        let metadata = batch.metadata + index
        batch.setBounds(index, start: start, length: length)
        metadata.pointee.offload = VirtioNetHeader()
        metadata.pointee.parsed = FrameParser.parse(UnsafeRawBufferPointer(batch.frame(index)))
        metadata.pointee.skipLearning = true
        metadata.pointee.learnArrivingSource = true
        metadata.pointee.arrivingSource = arrivingSource
        batch.verdicts[index] = .forward(ingress)
    }

    /// How much of a refused datagram an ICMPv6 error quotes: as much as keeps the error within
    /// IPv6's minimum MTU (RFC 4443 2.4 (c)), 1280 - 40 - 8 bytes.
    static let maxQuotedIPv6 = 1232

    /// A new connection to a service whose backends are all drained or down, refused at once as a
    /// host with nothing listening would: a TCP SYN gets a RST from VIP:port, a UDP datagram an
    /// ICMP (or ICMPv6) port unreachable from the VIP quoting it; in the frame's place, back out
    /// of its port. False (the caller drops it) when the frame cannot be answered so (no room,
    /// not TCP or UDP, a header that does not fit).
    private func refuse(_ batch: FrameBatch, _ index: Int, service: Service, ingress: PortID, now: Int64) -> Bool {
        let metadata = batch.metadata + index
        let parsed = metadata.pointee.parsed
        guard parsed.layer3 == .ipv4 || parsed.layer3 == .ipv6, parsed.hasL4, parsed.fragment == .none else { return false }
        let isIPv6 = parsed.layer3 == .ipv6
        let frame = batch.frame(index)
        let l3 = Int(parsed.l3Offset)
        let l4 = Int(parsed.l4Offset)
        let client = UnsafeRawBufferPointer(frame).mac(6)
        let clientIP = HostAddress(UnsafeRawBufferPointer(frame), l3: l3, isIPv6: isIPv6, source: true)
        // Never to a group address, nor for a frame sent to one (RFC 1122 3.2.2, RFC 4443 2.4 (e):
        // no error about a packet to a multicast or broadcast link-layer address, none to a
        // non-unicast source).
        guard !client.isMulticast, !UnsafeRawBufferPointer(frame).mac(0).isMulticast, clientIP.isUnicast else { return false }
        let (region, start) = batch.slot(index)
        let minimum = 60 + (metadata.pointee.consumedTag ? 4 : 0)
        let ipHeader = isIPv6 ? SwitchAnswers.ipv6HeaderLength : SwitchAnswers.ipv4HeaderLength
        let ipEnd = min(frame.count, l3 + (isIPv6 ? 40 + Int(frame.u16(l3 + 4)) : Int(frame.u16(l3 + 2))))
        var length: Int
        if parsed.ipProtocol == IPProtocol.tcp {
            guard l4 + 20 <= frame.count, frame[l4 + 13] & 0x04 == 0 else { return false }  // never answer a RST
            let clientPort = frame.u16(l4)
            let sequence = frame.u32(l4 + 4)
            let dataOffset = Int(frame[l4 + 12] >> 4) * 4
            let payload = max(0, ipEnd - l4 - dataOffset)
            let flags = frame[l4 + 13]
            length = l3 + ipHeader + 20
            guard start + max(minimum, length) <= region.count else { return false }
            let padded = max(minimum, length)
            let out = UnsafeMutableRawBufferPointer(rebasing: region[start..<(start + padded)])
            for byte in length..<padded { out[byte] = 0 }
            // A SYN counts one; the ACK covers what the segment carried.
            _ = SwitchAnswers.writeReset(
                out, l3: l3, from: service.vip, service.port, to: clientIP, clientPort, sequence: 0,
                acknowledgment: sequence &+ UInt32(truncatingIfNeeded: payload) &+ (flags & 0x02 != 0 ? 1 : 0), flags: 0x14)
            length = padded
        } else if parsed.ipProtocol == IPProtocol.udp {
            // Errors are rate limited (RFC 4443 2.4 (f); Linux's icmp_msgs_per_sec and
            // icmp_msgs_burst): past the budget the datagram is dropped without an answer.
            guard errorBudget.take(now: now) else { return false }
            // ICMP header, then the datagram: its IP header and first 8 bytes (RFC 792), or for
            // ICMPv6 as much as fits the minimum MTU.
            let quoted = isIPv6 ? min(ipEnd - l3, Self.maxQuotedIPv6) : min(frame.count, l4 + 8) - l3
            let icmp = l3 + ipHeader
            guard quoted >= ipHeader + 8, start + icmp + 8 + quoted <= region.count else { return false }
            let base = region.baseAddress! + start
            (base + icmp + 8).copyMemory(from: base + l3, byteCount: quoted)  // memmove: may overlap
            length = icmp + 8 + quoted
            let padded = max(minimum, length)
            let out = UnsafeMutableRawBufferPointer(rebasing: region[start..<(start + padded)])
            for byte in length..<padded { out[byte] = 0 }
            let proto = isIPv6 ? IPProtocol.icmpv6 : IPProtocol.icmp
            out[icmp] = isIPv6 ? 1 : 3  // destination unreachable
            out[icmp + 1] = isIPv6 ? 4 : 3  // port unreachable
            out.setU32(icmp + 2, 0)
            out.setU16(icmp + 6, 0)
            SwitchAnswers.writeIPHeader(out, l3: l3, length: length, proto: proto, from: service.vip, to: clientIP)
            let pseudo =
                isIPv6 ? SwitchAnswers.pseudoHeaderSum(from: service.vip, to: clientIP, proto: proto, length: length - icmp) : 0
            SwitchAnswers.writeChecksum(out, field: icmp + 2, l4: icmp, end: length, pseudo: pseudo)
            length = padded
        } else {
            return false
        }
        let out = UnsafeMutableRawBufferPointer(rebasing: region[start..<(start + length)])
        out.setMAC(0, client)
        out.setMAC(6, service.mac)
        sendBack(batch, index, start: start, length: length, arrivingSource: client, ingress: ingress)
        counters.pointee.refused &+= 1
        counters.pointee.refusedInBatch &+= 1
        return true
    }

    /// Sets a backend down or up by hand (a test file's `down:`): as a failed or passed check would.
    func setBackendUp(balancer: Int, backend: Int, _ up: Bool, now: Int64) {
        health.setUp(services[balancer].firstBackend + backend, up, now: now) { setDown($0, $1) }
    }

    func backendState(balancer: Int, backend: Int) -> HealthChecks.Backend {
        health.state(services[balancer].firstBackend + backend)
    }

    // MARK: control and display

    /// Drained backends get no new connections; existing ones keep theirs (for `ctl lb drain`).
    func setDrained(balancer: Int, backend: Int, _ drained: Bool) {
        schedulers[balancer].setDrained(backend, drained)
    }

    func learnMAC(network: NetworkID, address: IPAddress, mac: MACAddress, now: Timestamp) {
        learn(network: network, ip: HostAddress(address), mac: mac, now: now.nanoseconds)
    }

    /// A reload's counters: the old stage's totals, and its selections of backends that remain.
    func adoptCounters(from old: LoadBalancerStage, backendMap: [(old: (Int, Int), new: (Int, Int))]) {
        counters.pointee = old.counters.pointee
        for (from, to) in backendMap {
            selectionCounts[services[to.0].firstBackend + to.1] = old.selectionCounts[old.services[from.0].firstBackend + from.1]
            // Health: a backend found down stays down across a reload (while both check it).
            let previous = old.health.state(old.services[from.0].firstBackend + from.1)
            if old.health.health[old.services[from.0].firstBackend + from.1] != nil {
                let index = services[to.0].firstBackend + to.1
                health.adopt(previous, into: index)
                if health.health[index] != nil { schedulers[to.0].setDown(to.1, !previous.up) }
            }
        }
    }

    func isDrained(balancer: Int, backend: Int) -> Bool { schedulers[balancer].drained[backend] }

    func backendMAC(balancer: Int, backend: Int) -> MACAddress? {
        let mac = backends[services[balancer].firstBackend + backend].mac
        return mac == .zero ? nil : mac
    }
}
