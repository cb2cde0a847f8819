import Benchmark
import BenchmarkFrames
import TapestryDatapath
import TapestryWire

// Hash flooding: keys an attacker computes offline so that they collide under the
// unkeyed hashes the tables had before they were keyed. Against the keyed hashes these keys are
// as good as random, so the figures below should match the ordinary benchmarks; against the old
// ones every lookup walks one long probe run. The same file runs against the old tree to show it.

/// The connection table's hash before the tables were keyed (constant seed, invertible multiply-xorshift).
func oldFlowHash(_ key: FlowKey) -> UInt64 {
    var h = (0x5EED_7A9E_5775_0001 ^ key.meta) &* 0x9E37_79B9_7F4A_7C15
    h = (h ^ key.aLow ^ (key.aHigh >> 1)) &* 0xBF58_476D_1CE4_E5B9
    h = (h ^ key.bLow ^ (key.bHigh << 1)) &* 0x94D0_49BB_1331_11EB
    return h ^ (h >> 29)
}

/// The inverse of an odd number modulo 2^64 (Newton's iteration).
func inverse(_ odd: UInt64) -> UInt64 {
    var x = odd
    for _ in 0..<6 { x = x &* (2 &- odd &* x) }
    return x
}

/// `count` IPv6 UDP flows from one client to servers in one /64 whose keys all get the same
/// index tag (and so the same home cell) under `oldFlowHash`: the last multiply is inverted to
/// choose each server's low 64 bits. The client is the smaller address, so it is endpoint A.
func collidingIPv6Flows(_ count: Int) -> [FlowKey] {
    let clientHigh: UInt64 = 0xFD00_0000_0000_0001
    let clientLow: UInt64 = 1
    let serverHigh: UInt64 = 0xFD00_0000_0000_0002
    var probe = true
    let template = FlowKey(
        network: 0, proto: 17, isIPv6: true, sourceHigh: clientHigh, sourceLow: clientLow, sourcePort: 40000,
        destinationHigh: serverHigh, destinationLow: 0, destinationPort: 53, sourceIsA: &probe)
    var h = (0x5EED_7A9E_5775_0001 ^ template.meta) &* 0x9E37_79B9_7F4A_7C15
    h = (h ^ template.aLow ^ (template.aHigh >> 1)) &* 0xBF58_476D_1CE4_E5B9
    let c3inverse = inverse(0x94D0_49BB_1331_11EB)
    let target: UInt64 = 0x1234_5678_A000_0000  // low 29 bits clear: the top 35 bits, hence the tag, are shared
    let keys = (0..<count).map { index in
        let product = target &+ UInt64(index)
        let serverLow = (product &* c3inverse) ^ h ^ (serverHigh << 1)
        var sourceIsA = true
        return FlowKey(
            network: 0, proto: 17, isIPv6: true, sourceHigh: clientHigh, sourceLow: clientLow, sourcePort: 40000,
            destinationHigh: serverHigh, destinationLow: serverLow, destinationPort: 53, sourceIsA: &sourceIsA)
    }
    precondition(Set(keys.map { oldFlowHash($0) >> 32 }).count == 1, "every key has the same old tag")
    return keys
}

/// Random IPv6 flows of the same shape, the control.
func randomIPv6Flows(_ count: Int) -> [FlowKey] {
    var state: UInt64 = 0x9E37_79B9
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        var sourceIsA = true
        return FlowKey(
            network: 0, proto: 17, isIPv6: true, sourceHigh: 0xFD00_0000_0000_0001, sourceLow: 1, sourcePort: 40000,
            destinationHigh: 0xFD00_0000_0000_0002, destinationLow: state | 2, destinationPort: 53,
            sourceIsA: &sourceIsA)
    }
}

/// Unicast MACs (network 0) that share one home slot of the old MAC table's hash
/// (`(key &* 0x9E3779B97F4A7C15) >> shift`) for a table of `maxEntries`.
func collidingMACs(_ count: Int, maxEntries: Int) -> [UInt64] {
    var slots = 16
    while slots < maxEntries * 2 { slots <<= 1 }
    let shift = UInt64(64 - slots.trailingZeroBitCount)
    var found: [UInt64] = []
    var candidate: UInt64 = 0
    let home = (UInt64(0x0200_0000_0000) &* 0x9E37_79B9_7F4A_7C15) >> shift
    while found.count < count {
        let key = 0x0200_0000_0000 | candidate
        if (key &* 0x9E37_79B9_7F4A_7C15) >> shift == home { found.append(candidate) }
        candidate += 1
    }
    return found
}

func collisionBenchmarks() {
    for (name, flows) in [("chosen to collide under the old hash", collidingIPv6Flows), ("random", randomIPv6Flows)] {
        Benchmark(
            "Connection table 25k IPv6 flows \(name): lookup",
            configuration: .init(scalingFactor: .kilo, maxDuration: .seconds(3), maxIterations: 10)
        ) { benchmark in
            let keys = flows(25_000)
            let table = ConnectionTable(maxEntries: 32_768)
            for key in keys {
                _ = table.insert(key, now: 1) { $0.timeout = .max / 2; $0.kind = .udp; $0.replied = true }
            }
            precondition(table.count == keys.count)
            var found = 0
            var n = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                n = (n &+ 7_919) % keys.count
                if table.lookup(keys[n], now: 2) != nil { found &+= 1 }
            }
            benchmark.stopMeasurement()
            precondition(found == benchmark.scaledIterations.count)
            blackHole(found)
        }
    }

    // 8,000 MACs flooded from one port that all share one home slot of the old hash, then
    // unicast from port a1 to 32 hosts among them: each destination lookup walks the run.
    for colliding in [true, false] {
        Benchmark(
            "L2 to hosts behind 8k MACs \(colliding ? "chosen to collide under the old hash" : "at random") 64B",
            configuration: .init(scalingFactor: .kilo, maxDuration: .seconds(3), maxIterations: 20)
        ) { benchmark in
            let datapath = makeDatapath()
            var state: UInt64 = 12_345
            let hosts: [UInt64] = colliding
                ? collidingMACs(8_032, maxEntries: 8192)
                : (0..<8_032).map { _ in
                    state = state &* 6_364_136_223_846_793_005 &+ 1
                    return (state >> 24) & 0xFF_FFFF_FFFE
                }
            learn(datapath, hosts: hosts, on: 1, vid: nil)
            learn(datapath, hosts: 200..<232, on: 0, vid: nil)
            let batch = datapath.makeBatch()
            let frames = (0..<32).map { frame(dst: hosts[8_000 + $0], src: 200 + UInt64($0), vid: nil) }
            _ = run(datapath, batch, frames, port: 0, count: 32)
            benchmark.startMeasurement()
            let sent = run(datapath, batch, frames, port: 0, count: benchmark.scaledIterations.count)
            benchmark.stopMeasurement()
            precondition(sent == benchmark.scaledIterations.count, "every frame forwarded")
            blackHole(sent)
        }
    }
}
