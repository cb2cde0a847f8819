// The firewall's TCP established path, timed without ordo-one/benchmark, whose runner reports
// nothing under Swift 6.3 on Linux unless the swift-runtime-interposer package (not on every
// machine) is built in: Benchmarks/firewall-timing.sh runs this binary of two checkouts in
// turn. The path is the same as the Pipeline benchmark "Full pipeline (VLAN+firewall TCP
// established+L2) 64B": 32 connections through their handshakes, then the clients' data
// segments again and again (as retransmissions: the state machine and the window checks run
// in full on every frame). Prints the median ns per frame over runs, and mallocs per frame when
// Tools/malloc_count.c is preloaded.
import Foundation
import TapestryDatapath
import TapestryWire

func mac(_ value: UInt64) -> [UInt8] { MACAddress(rawValue: 0x0200_0000_0000 | value).bytes }

func tcpFrame(dst: UInt64, src: UInt64, from: UInt32, to: UInt32, sport: UInt16, dport: UInt16, flags: UInt8, seq: UInt32, ack: UInt32) -> [UInt8] {
    func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    let ip: [UInt8] = [0x45, 0, 0, 50, 0, 1, 0x40, 0, 64, 6, 0, 0] + be32(from) + be32(to)
    let tcp: [UInt8] = [UInt8(sport >> 8), UInt8(sport & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF)] + be32(seq) + be32(ack)
        + [0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]
    return mac(dst) + mac(src) + [0x08, 0x00] + ip + tcp + [UInt8](repeating: 0x5A, count: 10)
}

@inline(never)
func run(_ datapath: Datapath, _ batch: FrameBatch, _ frames: [[UInt8]], port: PortID, count: Int) -> Int {
    batch.ingressPort = port
    var sent = 0
    var done = 0
    let now = Timestamp(seconds: 2)
    while done < count {
        batch.removeAll()
        for index in 0..<min(32, count - done) { frames[index].withUnsafeBytes { _ = batch.append($0) } }
        done += batch.count
        datapath.process(batch, now: now)
        let queues = datapath.transmitQueues
        for active in 0..<queues.activeCount { sent &+= queues.count(queues.activePort(active)) }
        queues.removeAll()
    }
    return sent
}

let configuration = DatapathConfiguration(
    networks: [.init(name: "web", vid: 10)],
    ports: [.init(name: "a1", mode: .access(0)), .init(name: "a2", mode: .access(0))],
    macAgingSeconds: 300, macTableSize: 8192,
    firewall: FirewallConfiguration(
        defaultAction: .drop, maxConnections: 262_144, rules: [.init(action: .allow, proto: 6, destinationPorts: [80...80])]))
let datapath = Datapath(configuration: configuration, batchCapacity: 32, maxFrameLength: 9216 + 18)
let batch = datapath.makeBatch()
func segment(_ flow: Int, client: Bool, flags: UInt8, seq: UInt32, ack: UInt32) -> [UInt8] {
    client
        ? tcpFrame(dst: 100 + UInt64(flow), src: 200 + UInt64(flow), from: 0x0A00_0001, to: 0x0A00_0002, sport: 40000 + UInt16(flow), dport: 80, flags: flags, seq: seq, ack: ack)
        : tcpFrame(dst: 200 + UInt64(flow), src: 100 + UInt64(flow), from: 0x0A00_0002, to: 0x0A00_0001, sport: 80, dport: 40000 + UInt16(flow), flags: flags, seq: seq, ack: ack)
}
_ = run(datapath, batch, (0..<32).map { segment($0, client: true, flags: 0x02, seq: 1000, ack: 0) }, port: 0, count: 32)
_ = run(datapath, batch, (0..<32).map { segment($0, client: false, flags: 0x12, seq: 9000, ack: 1001) }, port: 1, count: 32)
_ = run(datapath, batch, (0..<32).map { segment($0, client: true, flags: 0x10, seq: 1001, ack: 9001) }, port: 0, count: 32)
let data = (0..<32).map { segment($0, client: true, flags: 0x18, seq: 1001, ack: 9001) }
precondition(datapath.connectionTable!.count == 32)

let frames = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 5_000_000
let runs = 7
typealias Counter = UnsafeMutablePointer<UInt>
let mallocs = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "tapestry_malloc_calls").map { $0.assumingMemoryBound(to: UInt.self) }
var times: [Double] = []
var allocations: [UInt] = []
for _ in 0..<runs {
    let before = mallocs?.pointee ?? 0
    let start = DispatchTime.now().uptimeNanoseconds
    let sent = run(datapath, batch, data, port: 0, count: frames)
    let elapsed = DispatchTime.now().uptimeNanoseconds - start
    allocations.append((mallocs?.pointee ?? 0) - before)
    precondition(sent == frames, "every frame forwarded")
    times.append(Double(elapsed) / Double(frames))
}
let sorted = times.sorted()
let median = sorted[runs / 2]
print(String(format: "TCP established path: median %.1f ns/frame (%.2f Mpps), runs %@ ns", median, 1000 / median,
    times.map { String(format: "%.1f", $0) }.joined(separator: " ")))
if mallocs != nil {
    print("mallocs in the measured loops: \(allocations) (\(frames) frames each)")
} else {
    print("mallocs: not counted (run with LD_PRELOAD=Tools/malloc_count.so)")
}
