// The firewall's TCP established path, timed without ordo-one/benchmark, whose runner reports
// nothing under Swift 6.3 on Linux unless the swift-runtime-interposer package (not on every
// machine) is built in: Benchmarks/firewall-timing.sh runs this binary of two checkouts in
// turn. The path is the same as the Pipeline benchmark "Full pipeline (VLAN+firewall TCP
// established+L2) 64B": 32 connections through their handshakes, then the clients' data
// segments again and again (as retransmissions: the state machine and the window checks run
// in full on every frame). Prints the median ns per frame over runs, and mallocs per frame when
// Tools/malloc_count.c is preloaded.
import BenchmarkFrames
import Foundation
import TapestryDatapath

let datapath = makeDatapath(firewall: tcpFirewall)
let batch = datapath.makeBatch()
let data = establishTCPConnections(datapath, batch)

let frames = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 5_000_000
let runs = 7
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
