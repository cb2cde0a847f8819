import Benchmark
import TapestryDatapath
import TapestryWire

// The L2 + VLAN pipeline on 64-byte frames in batches of 32, in steady state (every destination
// already learned). One benchmark iteration is one frame (scaling factor mega: throughput reads as
// Mpps), so mallocCountTotal divided by the scaled iterations is mallocs per frame.

/// Ports: a1, a2 access in network 0 (VLAN 10); t trunk carrying networks 0 and 1 (VLAN 10, 20),
/// no native; b1 access in network 1.
func makeDatapath() -> Datapath {
    let configuration = DatapathConfiguration(
        networks: [.init(name: "web", vid: 10), .init(name: "db", vid: 20)],
        ports: [
            .init(name: "a1", mode: .access(0)), .init(name: "a2", mode: .access(0)),
            .init(name: "t", mode: .trunk([0, 1], native: nil)), .init(name: "b1", mode: .access(1)),
        ],
        macAgingSeconds: 300, macTableSize: 8192)
    return Datapath(configuration: configuration, batchCapacity: 32, maxFrameLength: 9216 + 18)
}

func mac(_ value: UInt64) -> [UInt8] { MACAddress(rawValue: 0x0200_0000_0000 | value).bytes }

/// A 64-byte IPv4/UDP frame (headers valid so the parser walks to L4), optionally tagged.
func frame(dst: UInt64, src: UInt64, vid: UInt16?) -> [UInt8] {
    var bytes = mac(dst) + mac(src)
    if let vid { bytes += [0x81, 0x00, UInt8(vid >> 8), UInt8(vid & 0xFF)] }
    let ipLength = 64 - bytes.count - 2
    var ip: [UInt8] = [0x45, 0, UInt8(ipLength >> 8), UInt8(ipLength & 0xFF), 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
    let udpLength = ipLength - 20
    ip += [0x9c, 0x40, 0x13, 0x88, UInt8(udpLength >> 8), UInt8(udpLength & 0xFF), 0, 0]
    ip += [UInt8](repeating: 0x5A, count: udpLength - 8)
    return bytes + [0x08, 0x00] + ip
}

/// Learns `hosts` hosts behind `port` by sending one broadcast from each.
func learn(_ datapath: Datapath, hosts: Range<UInt64>, on port: PortID, vid: UInt16?) {
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

/// Runs `frames` through the datapath from `port`, refilling one batch from a fixed set of 32
/// frames each time (a copy per frame, as a receive into the slot would be).
@inline(never)
func run(_ datapath: Datapath, _ batch: FrameBatch, _ frames: [[UInt8]], port: PortID, count: Int) -> Int {
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

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal, .instructions],
        timeUnits: .nanoseconds,
        warmupIterations: 1,
        scalingFactor: .mega,
        maxDuration: .seconds(3),
        maxIterations: 50
    )

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
}
