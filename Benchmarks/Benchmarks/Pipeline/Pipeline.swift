import Benchmark
import BenchmarkFrames
import TapestryDatapath
import TapestryWire

// The L2 + VLAN pipeline on 64-byte frames in batches of 32, in steady state (every destination
// already learned). One benchmark iteration is one frame (scaling factor mega: throughput reads as
// Mpps), so mallocCountTotal divided by the scaled iterations is mallocs per frame.

/// A 64-byte IPv4/UDP frame (headers valid so the parser walks to L4), optionally tagged.
func frame(
    dst: UInt64, src: UInt64, vid: UInt16?, from: UInt32 = 0x0A00_0001, to: UInt32 = 0x0A00_0002,
    sport: UInt16 = 40000, dport: UInt16 = 5000
) -> [UInt8] {
    var bytes = mac(dst) + mac(src)
    if let vid { bytes += [0x81, 0x00, UInt8(vid >> 8), UInt8(vid & 0xFF)] }
    let ipLength = 64 - bytes.count - 2
    func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    var ip: [UInt8] = [0x45, 0, UInt8(ipLength >> 8), UInt8(ipLength & 0xFF), 0, 1, 0x40, 0, 64, 17, 0, 0] + be32(from) + be32(to)
    let udpLength = ipLength - 20
    ip += [UInt8(sport >> 8), UInt8(sport & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF)]
    ip += [UInt8(udpLength >> 8), UInt8(udpLength & 0xFF), 0, 0]
    ip += [UInt8](repeating: 0x5A, count: udpLength - 8)
    return bytes + [0x08, 0x00] + ip
}

/// A 64-byte IPv6/UDP frame (2 payload bytes) from `fd00::FROM` to `fd00::TO`.
func frame6(dst: UInt64, src: UInt64, from: UInt16, to: UInt16, sport: UInt16 = 40000, dport: UInt16 = 5000) -> [UInt8] {
    let address: (UInt16) -> [UInt8] = { [0xFD, 0] + [UInt8](repeating: 0, count: 12) + [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    let ip: [UInt8] = [0x60, 0, 0, 0, 0, 10, 17, 64] + address(from) + address(to)
    let udp: [UInt8] = [UInt8(sport >> 8), UInt8(sport & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF), 0, 10, 0, 0, 0x5A, 0x5A]
    return mac(dst) + mac(src) + [0x86, 0xDD] + ip + udp
}

/// The load balancer benchmarks' two backends (10.0.0.11 and .12) announce themselves from a2
/// with ARP requests, so their MACs are known; `batch` is left empty.
func announceBackends(_ datapath: Datapath, _ batch: FrameBatch) {
    batch.removeAll()
    batch.ingressPort = 1
    for (index, ip) in [UInt32(0x0A00_000B), 0x0A00_000C].enumerated() {
        let sender = mac(300 + UInt64(index))
        let arp: [UInt8] = [0, 1, 8, 0, 6, 4, 0, 1] + sender + [10, 0, 0, UInt8(ip & 0xFF)] + [0, 0, 0, 0, 0, 0] + [10, 0, 0, 1]
        (MACAddress.broadcast.bytes + sender + [0x08, 0x06] + arp + [UInt8](repeating: 0, count: 18)).withUnsafeBytes { _ = batch.append($0) }
    }
    datapath.process(batch, now: Timestamp(seconds: 1))
    datapath.transmitQueues.removeAll()
    batch.removeAll()
}

/// Learns `hosts` hosts behind `port` by sending one broadcast from each.
func learn(_ datapath: Datapath, hosts: some Sequence<UInt64>, on port: PortID, vid: UInt16?) {
    let batch = datapath.makeBatch()
    batch.ingressPort = port
    for host in hosts {
        frame(dst: 0xFFFF_FFFF, src: host, vid: vid).withUnsafeBytes { _ = batch.append($0) }
        if batch.isFull {
            datapath.process(batch, now: Timestamp(seconds: 1))
            datapath.transmitQueues.removeAll()
            batch.removeAll()
        }
    }
    datapath.process(batch, now: Timestamp(seconds: 1))
    datapath.transmitQueues.removeAll()
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal, .instructions],
        timeUnits: .nanoseconds,
        warmupIterations: 1,
        scalingFactor: .mega,
        maxDuration: .seconds(3),
        maxIterations: 50
    )
    collisionBenchmarks()

    /// Unicast in steady state: 32 destinations learned behind `outPort`, 32 sources behind
    /// `inPort`, every frame forwarded to exactly one port.
    func unicast(_ name: String, inPort: PortID, inVID: UInt16?, outPort: PortID, outVID: UInt16?) {
        Benchmark(name) { benchmark in
            let datapath = makeDatapath()
            learn(datapath, hosts: 100..<132, on: outPort, vid: outVID)
            learn(datapath, hosts: 200..<232, on: inPort, vid: inVID)
            let frames = (0..<32).map { frame(dst: 100 + UInt64($0), src: 200 + UInt64($0), vid: inVID) }
            let batch = datapath.makeBatch()
            benchmark.startMeasurement()
            let sent = run(datapath, batch, frames, port: inPort, count: benchmark.scaledIterations.count)
            benchmark.stopMeasurement()
            precondition(sent == benchmark.scaledIterations.count, "every frame forwarded")
            blackHole(sent)
        }
    }

    unicast("L2+VLAN access->access 64B unicast", inPort: 0, inVID: nil, outPort: 1, outVID: nil)
    unicast("L2+VLAN access->trunk 64B unicast (tag push)", inPort: 0, inVID: nil, outPort: 2, outVID: 10)
    unicast("L2+VLAN trunk->access 64B unicast (tag pop)", inPort: 2, inVID: 20, outPort: 3, outVID: nil)

    // The full pipeline on the established path: VLAN, firewall (32 tracked UDP flows, each
    // already answered), L2. Default drop with an allow rule, so every flow went through the rules once.
    let firewall = FirewallConfiguration(
        defaultAction: .drop, maxConnections: 262_144,
        rules: [.init(action: .allow, proto: 17, destinationPorts: [5000...5000])])
    Benchmark("Full pipeline (VLAN+firewall established+L2) 64B") { benchmark in
        let datapath = makeDatapath(firewall: firewall)
        learn(datapath, hosts: 100..<132, on: 1, vid: nil)
        learn(datapath, hosts: 200..<232, on: 0, vid: nil)
        let frames = (0..<32).map {
            frame(dst: 100 + UInt64($0), src: 200 + UInt64($0), vid: nil, sport: 40000 + UInt16($0))
        }
        let replies = (0..<32).map {
            frame(dst: 200 + UInt64($0), src: 100 + UInt64($0), vid: nil, from: 0x0A00_0002, to: 0x0A00_0001,
                sport: 5000, dport: 40000 + UInt16($0))
        }
        let batch = datapath.makeBatch()
        _ = run(datapath, batch, frames, port: 0, count: 32)
        _ = run(datapath, batch, replies, port: 1, count: 32)
        precondition(datapath.connectionTable!.count == 32)
        benchmark.startMeasurement()
        let sent = run(datapath, batch, frames, port: 0, count: benchmark.scaledIterations.count)
        benchmark.stopMeasurement()
        precondition(sent == benchmark.scaledIterations.count, "every frame forwarded")
        blackHole(sent)
    }

    // The same with TCP: 32 connections through their handshakes, then data segments from the
    // clients (each frame is the same segment again, as a retransmission is: the state machine
    // and the sequence-window checks run in full on every frame).
    Benchmark("Full pipeline (VLAN+firewall TCP established+L2) 64B") { benchmark in
        let datapath = makeDatapath(firewall: tcpFirewall)
        let batch = datapath.makeBatch()
        let data = establishTCPConnections(datapath, batch)
        benchmark.startMeasurement()
        let sent = run(datapath, batch, data, port: 0, count: benchmark.scaledIterations.count)
        benchmark.stopMeasurement()
        precondition(sent == benchmark.scaledIterations.count, "every frame forwarded")
        blackHole(sent)
    }

    // The pipeline with a load balancer on the established path: 32 client flows to the VIP,
    // each already given a backend (alternating), rewritten to it on every frame; no firewall
    // section, so connection tracking runs in its tracking-only mode. The same with TCP health
    // checks configured (no probe runs here: probes are the live driver's; what is measured is
    // that the forwarding path pays nothing for them).
    for checked in [false, true] {
    Benchmark("Load balancer established path (VLAN+conntrack+LB NAT+L2)\(checked ? " with health checks" : "") 64B") { benchmark in
        let balancer = LoadBalancerConfiguration(
            name: "web", network: 0, vip: .v4(IPv4Address(10, 0, 0, 100)), port: 5000, proto: 17,
            mac: MACAddress(rawValue: 0x0200_0000_0100),
            backends: [.init(address: .v4(IPv4Address(10, 0, 0, 11)), port: 8080), .init(address: .v4(IPv4Address(10, 0, 0, 12)), port: 8080)],
            health: checked ? .init(probe: .tcp, interval: 2_000_000_000, timeout: 1_000_000_000, rise: 2, fall: 2) : nil)
        let datapath = makeDatapath(loadBalancers: [balancer])
        let batch = datapath.makeBatch()
        announceBackends(datapath, batch)
        learn(datapath, hosts: 200..<232, on: 0, vid: nil)
        let frames = (0..<32).map {
            frame(dst: 0x100, src: 200 + UInt64($0), vid: nil, from: 0x0A00_0001, to: 0x0A00_0064, sport: 40000 + UInt16($0), dport: 5000)
        }
        _ = run(datapath, batch, frames, port: 0, count: 32)
        precondition(datapath.counters.backendSelections == [[16, 16]], "32 flows spread over the two backends")
        benchmark.startMeasurement()
        let sent = run(datapath, batch, frames, port: 0, count: benchmark.scaledIterations.count)
        benchmark.stopMeasurement()
        precondition(sent == benchmark.scaledIterations.count, "every frame forwarded to its backend")
        blackHole(sent)
    }
    }

    // The same over IPv6: 32 client flows (fd00::1, ports 40000-40031) to the VIP fd00::100,
    // each rewritten to fd00::11 or fd00::12 (two 64-bit words per address, and the UDP checksum
    // updated for the pseudo-header's change).
    Benchmark("Load balancer established path IPv6 (VLAN+conntrack+LB NAT+L2) 64B") { benchmark in
        let address: (UInt64) -> IPAddress = { .v6(IPv6Address(high: 0xFD00_0000_0000_0000, low: $0)) }
        let balancer = LoadBalancerConfiguration(
            name: "web6", network: 0, vip: address(0x100), port: 5000, proto: 17,
            mac: MACAddress(rawValue: 0x0200_0000_0100),
            backends: [.init(address: address(0x11), port: 8080), .init(address: address(0x12), port: 8080)])
        let datapath = makeDatapath(loadBalancers: [balancer])
        let batch = datapath.makeBatch()
        // The backends speak once (any IPv6 packet from a backend's address teaches its MAC).
        batch.ingressPort = 1
        for (index, backend) in [UInt16(0x11), 0x12].enumerated() {
            frame6(dst: 200, src: 300 + UInt64(index), from: backend, to: 1).withUnsafeBytes { _ = batch.append($0) }
        }
        datapath.process(batch, now: Timestamp(seconds: 1))
        datapath.transmitQueues.removeAll()
        learn(datapath, hosts: 200..<232, on: 0, vid: nil)
        let frames = (0..<32).map { frame6(dst: 0x100, src: 200 + UInt64($0), from: 1, to: 0x100, sport: 40000 + UInt16($0)) }
        _ = run(datapath, batch, frames, port: 0, count: 32)
        precondition(datapath.counters.backendSelections == [[16, 16]], "32 flows spread over the two backends")
        benchmark.startMeasurement()
        let sent = run(datapath, batch, frames, port: 0, count: benchmark.scaledIterations.count)
        benchmark.stopMeasurement()
        precondition(sent == benchmark.scaledIterations.count, "every frame forwarded to its backend")
        blackHole(sent)
    }

    // Connection setup through a balancer with affinity: every frame is a new UDP flow to the
    // VIP from one of 4,096 clients (new source port each time), so each one creates a
    // connection and its alias, looks the client up in the affinity table and records it.
    for affinity in [false, true] {
        Benchmark(
            "Load balancer connection setup\(affinity ? " with affinity" : "") (new connections per second)",
            configuration: .init(scalingFactor: .kilo, maxDuration: .seconds(3), maxIterations: 20)
        ) { benchmark in
            let balancer = LoadBalancerConfiguration(
                name: "web", network: 0, vip: .v4(IPv4Address(10, 0, 0, 100)), port: 5000, proto: 17,
                mac: MACAddress(rawValue: 0x0200_0000_0100),
                backends: [.init(address: .v4(IPv4Address(10, 0, 0, 11)), port: 8080), .init(address: .v4(IPv4Address(10, 0, 0, 12)), port: 8080)],
                affinity: affinity ? 300_000_000_000 : nil)
            let datapath = makeDatapath(loadBalancers: [balancer])
            let batch = datapath.makeBatch()
            announceBackends(datapath, batch)
            batch.ingressPort = 0
            var prototype = frame(dst: 0x100, src: 200, vid: nil, from: 0x0A01_0000, to: 0x0A00_0064, dport: 5000)
            var flow: UInt32 = 0
            benchmark.startMeasurement()
            var done = 0
            while done < benchmark.scaledIterations.count {
                batch.removeAll()
                for _ in 0..<min(32, benchmark.scaledIterations.count - done) {
                    flow &+= 1
                    // Client 10.1.x.y (4,096 of them), source port from the flow number.
                    prototype[28] = UInt8(truncatingIfNeeded: (flow >> 8) & 0x0F)
                    prototype[29] = UInt8(truncatingIfNeeded: flow)
                    prototype[34] = UInt8(truncatingIfNeeded: flow >> 12) | 0x80
                    prototype[35] = UInt8(truncatingIfNeeded: flow >> 20)
                    prototype.withUnsafeBytes { _ = batch.append($0) }
                }
                done += batch.count
                datapath.process(batch, now: Timestamp(seconds: 2))
                datapath.transmitQueues.removeAll()
            }
            benchmark.stopMeasurement()
            precondition(datapath.counters.connectionsCreated > 0, "new connections were made")
            blackHole(done)
        }
    }

    // Connection setup: every frame is a new flow (a new source address and port), through the
    // rules and into the table; past 262,144 connections each new one evicts the oldest unreplied.
    Benchmark(
        "Firewall connection setup (new flows per second)",
        configuration: .init(scalingFactor: .kilo, maxDuration: .seconds(3), maxIterations: 20)
    ) { benchmark in
        let datapath = makeDatapath(firewall: firewall)
        learn(datapath, hosts: 100..<101, on: 1, vid: nil)
        let batch = datapath.makeBatch()
        batch.ingressPort = 0
        var prototype = frame(dst: 100, src: 200, vid: nil)
        var flow: UInt32 = 0
        benchmark.startMeasurement()
        var done = 0
        while done < benchmark.scaledIterations.count {
            batch.removeAll()
            for _ in 0..<min(32, benchmark.scaledIterations.count - done) {
                flow &+= 1
                // Source address 10.x.y.z and source port vary per flow.
                prototype[26] = 10
                prototype[27] = UInt8(truncatingIfNeeded: flow >> 16)
                prototype[28] = UInt8(truncatingIfNeeded: flow >> 8)
                prototype[29] = UInt8(truncatingIfNeeded: flow)
                prototype[34] = UInt8(truncatingIfNeeded: flow >> 24) | 0x80
                prototype.withUnsafeBytes { _ = batch.append($0) }
            }
            done += batch.count
            datapath.process(batch, now: Timestamp(seconds: 2))
            datapath.transmitQueues.removeAll()
        }
        benchmark.stopMeasurement()
        blackHole(datapath.counters.connectionsCreated)
    }

    // A table of 1,000,000 connections: built outside the measurement, then looked up.
    Benchmark(
        "Connection table 1M entries: lookup",
        configuration: .init(metrics: [.throughput, .wallClock, .mallocCountTotal, .peakMemoryResident],
            scalingFactor: .mega, maxDuration: .seconds(3), maxIterations: 10)
    ) { benchmark in
        let count = 1_000_000
        let table = ConnectionTable(maxEntries: count)
        func key(_ n: Int) -> FlowKey {
            var sourceIsA = true
            return FlowKey(
                network: 0, proto: 6, isIPv6: false, sourceHigh: 0,
                sourceLow: FlowKey.mapped(0x0A00_0000 | UInt32(n >> 8)), sourcePort: UInt16(n & 0xFF) | 0x8000,
                destinationHigh: 0, destinationLow: FlowKey.mapped(0x0AFF_FFFE), destinationPort: 80,
                sourceIsA: &sourceIsA)
        }
        for n in 0..<count {
            _ = table.insert(key(n), now: 1) { $0.timeout = .max / 2; $0.kind = .tcp; $0.tcpState = .established }
        }
        precondition(table.count == count)
        var found = 0
        var n = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            n = (n &+ 7_919) % count  // stride through the table, not in insertion order
            if table.lookup(key(n), now: 2) != nil { found &+= 1 }
        }
        benchmark.stopMeasurement()
        precondition(found == benchmark.scaledIterations.count)
        blackHole(found)
    }

    // Broadcast from an access port: one copy to each of the two other ports of the network.
    Benchmark("L2+VLAN broadcast flood to 2 ports 64B") { benchmark in
        let datapath = makeDatapath()
        let frames = (0..<32).map { frame(dst: 0xFFFF_FFFF_FFFF, src: 200 + UInt64($0), vid: nil) }
        let batch = datapath.makeBatch()
        _ = run(datapath, batch, frames, port: 0, count: 64)
        benchmark.startMeasurement()
        let sent = run(datapath, batch, frames, port: 0, count: benchmark.scaledIterations.count)
        benchmark.stopMeasurement()
        precondition(sent == 2 * benchmark.scaledIterations.count)
        blackHole(sent)
    }

    // Software TCP segmentation (socket ports): one 64,054-byte TSO frame from a TAP device cut
    // into 45 MSS-sized frames with their own headers and full checksums. One iteration is one
    // segment written.
    Benchmark("Software TCP segmentation, 64 KB TSO frame into 1448-byte segments") { benchmark in
        let payload = 64_000
        var bytes = mac(2) + mac(1) + [0x08, 0x00]
        let ipLength = 20 + 20 + payload
        bytes += [0x45, 0, UInt8(ipLength >> 8), UInt8(ipLength & 0xFF), 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
        bytes += [0x9C, 0x40, 0x14, 0x51, 0, 0, 0x10, 0, 0, 0, 0, 1, 0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]
        bytes += [UInt8](repeating: 0x5A, count: payload)
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 18, alignment: 64)
        defer { output.deallocate() }
        var produced = 0
        bytes.withUnsafeBytes { frame in
            benchmark.startMeasurement()
            while produced < benchmark.scaledIterations.count {
                produced += TCPSegmentation.segment(frame, mss: 1448, gap: 4, into: output) { _, _ in } ?? 0
            }
            benchmark.stopMeasurement()
        }
        precondition(produced >= benchmark.scaledIterations.count)
        blackHole(produced)
    }
}
