import TapestryWire

/// The round-robin load balancer: answers ARP and ping for each VIP, gives each new connection to
/// VIP:port the next backend, and rewrites both directions of the connection.
///
/// Expects: frames after the connection-tracking stage (`metadata.connection`, `isReply`,
/// `isNewConnection`); connection tracking runs whenever a load balancer exists.
/// Emits: `.forward(ingress)` for its answers (ARP reply, echo reply), `.floodAll` for an ARP
/// request it sends for a backend whose MAC is unknown (in place of the frame it could not
/// send yet), `.consume` for ARP replies addressed to a VIP; rewritten frames keep `.pass`.
/// Drops: `no-service` (VIP on another port or protocol), `invalid` (a packet to a VIP service
/// that belongs to no connection, e.g. a TCP non-SYN).
/// Backend MACs are learned from ARP senders and IPv4 sources in the balancer's network, before
/// any rewrite. See also: `WeightedRoundRobin`, docs/load-balancer.md.
final class LoadBalancerStage {
    let balancers: [LoadBalancerConfiguration]
    let table: ConnectionTable
    private var schedulers: [WeightedRoundRobin]
    /// Learned backend MACs, `[balancer][backend]`; nil until seen.
    private var backendMACs: [[MACAddress?]]
    /// Connections handed to each backend, `[balancer][backend]`.
    private(set) var selections: [[UInt64]]
    private(set) var unresolved: UInt64 = 0
    private(set) var answered: UInt64 = 0

    init(balancers: [LoadBalancerConfiguration], table: ConnectionTable) {
        self.balancers = balancers
        self.table = table
        schedulers = balancers.map { WeightedRoundRobin(weights: $0.backends.map(\.weight)) }
        backendMACs = balancers.map { [MACAddress?](repeating: nil, count: $0.backends.count) }
        selections = balancers.map { [UInt64](repeating: 0, count: $0.backends.count) }
    }

    func process(_ batch: FrameBatch) {
        let ingress = batch.ingressPort
        for index in 0..<batch.count {
            guard case .pass = batch.verdicts[index] else { continue }
            let metadata = batch.metadata + index
            let parsed = metadata.pointee.parsed
            let network = metadata.pointee.network
            let frame = batch.frame(index)
            switch parsed.layer3 {
            case .arp:
                handleARP(frame, parsed, network: network, index: index, batch: batch, ingress: ingress)
            case .ipv4:
                handleIPv4(frame, parsed, metadata, index: index, batch: batch, ingress: ingress)
            default:
                continue
            }
        }
    }

    // MARK: ARP

    private func handleARP(
        _ frame: UnsafeMutableRawBufferPointer, _ parsed: ParsedFrame, network: NetworkID, index: Int, batch: FrameBatch,
        ingress: PortID
    ) {
        let l3 = Int(parsed.l3Offset)
        guard let arp = ARPView(validating: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(frame)[l3...])),
            arp.isEthernetIPv4
        else { return }
        learn(network: network, ip: arp.senderIP, mac: arp.senderMAC)
        for balancer in balancers where balancer.network == network && balancer.vip == arp.targetIP {
            if arp.operation == 1 {
                // Answer in place: the request becomes the reply, back out of its port.
                let requester = arp.senderMAC
                let requesterIP = arp.senderIP
                frame.setMAC(0, requester)
                frame.setMAC(6, balancer.mac)
                frame.setU16(l3 + 6, 2)
                frame.setMAC(l3 + 8, balancer.mac)
                frame.setU32(l3 + 14, balancer.vip.rawValue)
                frame.setMAC(l3 + 18, requester)
                frame.setU32(l3 + 24, requesterIP.rawValue)
                batch.verdicts[index] = .forward(ingress)
                batch.metadata[index].skipLearning = true
                answered &+= 1
            } else {
                batch.verdicts[index] = .consume  // a backend answering our ARP request
            }
            return
        }
    }

    // MARK: IPv4

    private func handleIPv4(
        _ frame: UnsafeMutableRawBufferPointer, _ parsed: ParsedFrame, _ metadata: UnsafeMutablePointer<FrameMetadata>,
        index: Int, batch: FrameBatch, ingress: PortID
    ) {
        let l3 = Int(parsed.l3Offset)
        let network = metadata.pointee.network
        let source = IPv4Address(rawValue: frame.u32(l3 + 12))
        let destination = IPv4Address(rawValue: frame.u32(l3 + 16))
        learn(network: network, ip: source, mac: UnsafeRawBufferPointer(frame).mac(6))

        if metadata.pointee.connection >= 0 && metadata.pointee.isReply {
            let entry = table.entry(Int(metadata.pointee.connection))
            guard entry.pointee.backend >= 0 else { return }
            let balancer = balancers[Int(entry.pointee.balancer)]
            let backend = balancer.backends[Int(entry.pointee.backend)]
            guard source == backend.address else { return }
            // Reply: it must look as if the VIP sent it.
            _ = FrameRewriter.setIPv4Address(frame, parsed, .source, balancer.vip)
            _ = FrameRewriter.setPort(frame, parsed, .source, balancer.port)
            frame.setMAC(6, balancer.mac)
            metadata.pointee.skipLearning = true
            return
        }

        guard let balancer = balancers.first(where: { $0.network == network && $0.vip == destination }) else {
            return
        }
        let proto = parsed.ipProtocol
        if proto == IPProtocol.icmp, parsed.hasL4, frame[Int(parsed.l4Offset)] == 8 {
            answerEcho(frame, parsed, balancer: balancer)
            batch.verdicts[index] = .forward(ingress)
            metadata.pointee.skipLearning = true
            answered &+= 1
            return
        }
        // Find the service: this balancer, or another on the same VIP with this port and protocol.
        let port = parsed.hasL4 && (proto == IPProtocol.tcp || proto == IPProtocol.udp)
            ? frame.u16(Int(parsed.l4Offset) + 2) : 0
        guard let serviceIndex = balancers.indices.first(where: {
            balancers[$0].network == network && balancers[$0].vip == destination && balancers[$0].proto == proto
                && balancers[$0].port == port && parsed.hasL4
        }) else {
            batch.verdicts[index] = .drop(.noService)
            return
        }
        let service = balancers[serviceIndex]
        guard metadata.pointee.connection >= 0 else {
            batch.verdicts[index] = .drop(.invalid)
            return
        }
        let id = Int(metadata.pointee.connection)
        let entry = table.entry(id)
        if entry.pointee.backend < 0 {
            guard let chosen = schedulers[serviceIndex].next() else {
                batch.verdicts[index] = .drop(.noService)  // every backend drained
                return
            }
            entry.pointee.balancer = Int16(serviceIndex)
            entry.pointee.backend = Int16(chosen)
            selections[serviceIndex][chosen] &+= 1
            let backend = service.backends[chosen]
            // The backend side of the connection finds the same entry.
            var backendIsA = true
            let key = FlowKey(
                network: network, proto: proto, isIPv6: false, sourceHigh: 0,
                sourceLow: FlowKey.mapped(backend.address.rawValue), sourcePort: backend.port, destinationHigh: 0,
                destinationLow: FlowKey.mapped(source.rawValue), destinationPort: frame.u16(Int(parsed.l4Offset)),
                sourceIsA: &backendIsA)
            table.addAlias(id: id, key: key, backendIsA: backendIsA)
        }
        let backendIndex = Int(entry.pointee.backend)
        let backend = service.backends[backendIndex]
        guard let backendMAC = backendMACs[serviceIndex][backendIndex] else {
            askForBackend(frame, batch: batch, index: index, balancer: service, backend: backend)
            metadata.pointee.skipLearning = true
            unresolved &+= 1
            return
        }
        _ = FrameRewriter.setIPv4Address(frame, parsed, .destination, backend.address)
        _ = FrameRewriter.setPort(frame, parsed, .destination, backend.port)
        frame.setMAC(0, backendMAC)
    }

    /// Turns an echo request to the VIP into the VIP's echo reply, in place.
    private func answerEcho(_ frame: UnsafeMutableRawBufferPointer, _ parsed: ParsedFrame, balancer: LoadBalancerConfiguration) {
        let l3 = Int(parsed.l3Offset)
        let l4 = Int(parsed.l4Offset)
        let requester = UnsafeRawBufferPointer(frame).mac(6)
        frame.setMAC(0, requester)
        frame.setMAC(6, balancer.mac)
        let source = frame.u32(l3 + 12)
        frame.setU32(l3 + 12, frame.u32(l3 + 16))
        frame.setU32(l3 + 16, source)  // a swap leaves the IP header checksum as it was
        let typeAndCode = frame.u16(l4)
        let reply = typeAndCode & 0x00FF  // type 0, same code
        frame.setU16(l4, reply)
        frame.setU16(l4 + 2, InternetChecksum.update(frame.u16(l4 + 2), old: typeAndCode, new: reply))
    }

    /// Replaces the frame by a broadcast ARP request from the VIP for `backend`.
    private func askForBackend(
        _ frame: UnsafeMutableRawBufferPointer, batch: FrameBatch, index: Int, balancer: LoadBalancerConfiguration,
        backend: LoadBalancerConfiguration.Backend
    ) {
        let (region, start) = batch.slot(index)
        let metadata = batch.metadata[index]
        // Egress removes a consumed tag at offset 12: write the ARP after it so tagging still works.
        let header = metadata.consumedTag ? 16 : 12
        let length = header + 2 + 28
        let padded = max(60 + (metadata.consumedTag ? 4 : 0), length)  // 60 bytes once the tag is gone
        let out = UnsafeMutableRawBufferPointer(rebasing: region[start..<(start + padded)])
        out.setMAC(0, .broadcast)
        out.setMAC(6, balancer.mac)
        out.setU16(header, EtherType.arp)
        let arp = header + 2
        out.setU16(arp, 1)
        out.setU16(arp + 2, EtherType.ipv4)
        out[arp + 4] = 6
        out[arp + 5] = 4
        out.setU16(arp + 6, 1)
        out.setMAC(arp + 8, balancer.mac)
        out.setU32(arp + 14, balancer.vip.rawValue)
        out.setMAC(arp + 18, .zero)
        out.setU32(arp + 24, backend.address.rawValue)
        for byte in (arp + 28)..<padded { out[byte] = 0 }
        batch.setBounds(index, start: start, length: padded)
        batch.metadata[index].offload = VirtioNetHeader()
        batch.verdicts[index] = .floodAll
    }

    @inline(__always)
    private func learn(network: NetworkID, ip: IPv4Address, mac: MACAddress) {
        guard !mac.isMulticast else { return }
        for (b, balancer) in balancers.enumerated() where balancer.network == network {
            for (k, backend) in balancer.backends.enumerated() where backend.address == ip {
                backendMACs[b][k] = mac
            }
        }
    }

    // MARK: control and display

    /// Drained backends get no new connections; existing ones keep theirs (for `ctl lb drain`).
    func setDrained(balancer: Int, backend: Int, _ drained: Bool) {
        schedulers[balancer].setDrained(backend, drained)
    }

    func backendMAC(balancer: Int, backend: Int) -> MACAddress? { backendMACs[balancer][backend] }
}
