// Frames, datapaths and the batch loop the benchmark targets share (Pipeline, FirewallTiming).
import TapestryDatapath
import TapestryWire

/// Ports: a1, a2 access in network 0 (VLAN 10); t trunk carrying networks 0 and 1 (VLAN 10, 20),
/// no native; b1 access in network 1.
public func makeDatapath(firewall: FirewallConfiguration? = nil, loadBalancers: [LoadBalancerConfiguration] = []) -> Datapath {
    let configuration = DatapathConfiguration(
        networks: [.init(name: "web", vid: 10), .init(name: "db", vid: 20)],
        ports: [
            .init(name: "a1", mode: .access(0)), .init(name: "a2", mode: .access(0)),
            .init(name: "t", mode: .trunk([0, 1], native: nil)), .init(name: "b1", mode: .access(1)),
        ],
        macAgingSeconds: 300, macTableSize: 8192, firewall: firewall, loadBalancers: loadBalancers)
    return Datapath(configuration: configuration, batchCapacity: 32, maxFrameLength: 9216 + 18)
}

public func mac(_ value: UInt64) -> [UInt8] { MACAddress(rawValue: 0x0200_0000_0000 | value).bytes }

/// A 64-byte IPv4/TCP frame (10 payload bytes) with the given flags and numbers.
public func tcpFrame(
    dst: UInt64, src: UInt64, from: UInt32, to: UInt32, sport: UInt16, dport: UInt16, flags: UInt8, seq: UInt32, ack: UInt32
) -> [UInt8] {
    func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    let ip: [UInt8] = [0x45, 0, 0, 50, 0, 1, 0x40, 0, 64, 6, 0, 0] + be32(from) + be32(to)
    let tcp: [UInt8] = [UInt8(sport >> 8), UInt8(sport & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF)] + be32(seq) + be32(ack)
        + [0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]
    return mac(dst) + mac(src) + [0x08, 0x00] + ip + tcp + [UInt8](repeating: 0x5A, count: 10)
}

/// Runs `frames` through the datapath from `port`, refilling one batch from a fixed set of 32
/// frames each time (a copy per frame, as a receive into the slot would be).
@inline(never)
public func run(_ datapath: Datapath, _ batch: FrameBatch, _ frames: [[UInt8]], port: PortID, count: Int) -> Int {
    batch.ingressPort = port
    var sent = 0
    var done = 0
    let now = Timestamp(seconds: 2)
    while done < count {
        batch.removeAll()
        for index in 0..<min(32, count - done) {
            frames[index].withUnsafeBytes { _ = batch.append($0) }
        }
        done += batch.count
        datapath.process(batch, now: now)
        let queues = datapath.transmitQueues
        for active in 0..<queues.activeCount { sent &+= queues.count(queues.activePort(active)) }
        queues.removeAll()
    }
    return sent
}


/// The firewall of the TCP established-path measurements: default drop, TCP to port 80 allowed.
public let tcpFirewall = FirewallConfiguration(
    defaultAction: .drop, maxConnections: 262_144, rules: [.init(action: .allow, proto: 6, destinationPorts: [80...80])])

/// 32 TCP connections from hosts 200... on a1 to hosts 100... on a2, port 80, through their
/// handshakes (client ISN 1000, server ISN 9000), all learned; returns the clients' next data
/// segments (10 bytes each), which may be sent again and again: each time a retransmission,
/// so the state machine and the window checks run in full and pass.
public func establishTCPConnections(_ datapath: Datapath, _ batch: FrameBatch) -> [[UInt8]] {
    func segment(_ flow: Int, client: Bool, flags: UInt8, seq: UInt32, ack: UInt32) -> [UInt8] {
        client
            ? tcpFrame(dst: 100 + UInt64(flow), src: 200 + UInt64(flow), from: 0x0A00_0001, to: 0x0A00_0002,
                sport: 40000 + UInt16(flow), dport: 80, flags: flags, seq: seq, ack: ack)
            : tcpFrame(dst: 200 + UInt64(flow), src: 100 + UInt64(flow), from: 0x0A00_0002, to: 0x0A00_0001,
                sport: 80, dport: 40000 + UInt16(flow), flags: flags, seq: seq, ack: ack)
    }
    _ = run(datapath, batch, (0..<32).map { segment($0, client: true, flags: 0x02, seq: 1000, ack: 0) }, port: 0, count: 32)
    _ = run(datapath, batch, (0..<32).map { segment($0, client: false, flags: 0x12, seq: 9000, ack: 1001) }, port: 1, count: 32)
    _ = run(datapath, batch, (0..<32).map { segment($0, client: true, flags: 0x10, seq: 1001, ack: 9001) }, port: 0, count: 32)
    precondition(datapath.connectionTable!.count == 32, "every handshake completed")
    return (0..<32).map { segment($0, client: true, flags: 0x18, seq: 1001, ack: 9001) }
}

/// The firewall of the fragment-path measurements: default drop, UDP to port 53 allowed.
public let udpFirewall = FirewallConfiguration(
    defaultAction: .drop, maxConnections: 262_144, rules: [.init(action: .allow, proto: 17, destinationPorts: [53...53])])

/// 16 UDP datagrams to port 53 from hosts 200... on a1 to hosts 100... on a2 (flows 0..<16),
/// each in two IPv4 fragments: bytes 0..<24 (the UDP header and 16 bytes) and 24..<48. In
/// `lastFirst` order each datagram's last fragment comes before its first (held, then released
/// after the batch); otherwise in order. A datagram completes in each batch, so its record is
/// freed and the same frames may be sent again and again.
public func fragmentFrames(lastFirst: Bool) -> [[UInt8]] {
    func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    func fragment(_ flow: Int, offset: Int, more: Bool) -> [UInt8] {
        let flags = UInt16(offset / 8) | (more ? 0x2000 : 0)
        let ip: [UInt8] = [0x45, 0, 0, 44, 0x12, UInt8(flow), UInt8(flags >> 8), UInt8(flags & 0xFF), 64, 17, 0, 0]
            + be32(0x0A00_0001) + be32(0x0A00_0002)
        let payload: [UInt8] = offset == 0
            ? [UInt8((40000 + flow) >> 8), UInt8((40000 + flow) & 0xFF), 0, 53, 0, 48, 0, 0] + [UInt8](repeating: 0x5A, count: 16)
            : [UInt8](repeating: 0xA5, count: 24)
        return mac(100 + UInt64(flow)) + mac(200 + UInt64(flow)) + [0x08, 0x00] + ip + payload
    }
    return (0..<16).flatMap { flow in
        lastFirst
            ? [fragment(flow, offset: 24, more: false), fragment(flow, offset: 0, more: true)]
            : [fragment(flow, offset: 0, more: true), fragment(flow, offset: 24, more: false)]
    }
}

/// Like `run`, then the held fragments a batch released, as `SwitchCore.run` sends them.
@inline(never)
public func runReleasing(
    _ datapath: Datapath, _ batch: FrameBatch, _ released: FrameBatch, _ frames: [[UInt8]], port: PortID, count: Int
) -> Int {
    var sent = 0
    var done = 0
    let now = Timestamp(seconds: 2)
    let queues = datapath.transmitQueues
    while done < count {
        batch.removeAll()
        batch.ingressPort = port
        for index in 0..<min(32, count - done) {
            frames[index].withUnsafeBytes { _ = batch.append($0) }
        }
        done += batch.count
        datapath.process(batch, now: now)
        for active in 0..<queues.activeCount { sent &+= queues.count(queues.activePort(active)) }
        queues.removeAll()
        while datapath.releaseHeldFragments(into: released, now: now) {
            for active in 0..<queues.activeCount { sent &+= queues.count(queues.activePort(active)) }
            queues.removeAll()
        }
    }
    return sent
}

/// Teaches the datapath where hosts 100... (a2) and 200... (a1) are, for flows 0..<16.
public func learnFragmentHosts(_ datapath: Datapath, _ batch: FrameBatch) {
    let hello = { (dst: UInt64, src: UInt64) -> [UInt8] in
        mac(dst) + mac(src) + [0x88, 0xB5] + [UInt8](repeating: 0, count: 46)
    }
    _ = run(datapath, batch, (0..<32).map { hello(100 + UInt64($0 % 16), 200 + UInt64($0 % 16)) }, port: 0, count: 32)
    _ = run(datapath, batch, (0..<32).map { hello(200 + UInt64($0 % 16), 100 + UInt64($0 % 16)) }, port: 1, count: 32)
}
