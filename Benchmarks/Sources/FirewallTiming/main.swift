// The firewall's TCP established path, timed without ordo-one/benchmark, whose runner reports
// nothing under Swift 6.3 on Linux unless the swift-runtime-interposer package (not on every
// machine) is built in: Benchmarks/firewall-timing.sh runs this binary of two checkouts in
// turn. The path is the same as the Pipeline benchmark "Full pipeline (VLAN+firewall TCP
// established+L2) 64B": 32 connections through their handshakes, then the clients' data
// segments again and again (as retransmissions: the state machine and the window checks run
// in full on every frame). Then the fragment path: two-fragment UDP datagrams in order and last
// fragment first. Prints the median ns per frame over runs, and mallocs per frame when
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
@MainActor func report(_ name: String, _ times: [Double], _ allocations: [UInt]) {
    let median = times.sorted()[runs / 2]
    print(String(format: "%@: median %.1f ns/frame (%.2f Mpps), runs %@ ns", name, median, 1000 / median,
        times.map { String(format: "%.1f", $0) }.joined(separator: " ")))
    if mallocs != nil {
        print("  mallocs in the measured loops: \(allocations) (\(frames) frames each)")
    } else {
        print("  mallocs: not counted (run with LD_PRELOAD=Tools/malloc_count.so)")
    }
}
report("TCP established path", times, allocations)

// Fragments: 16 two-fragment UDP datagrams a batch, in order and last fragment first (the last
// held, then released after the batch). Skipped with a second argument "tcp".
if CommandLine.arguments.dropFirst(2).first != "tcp" {
    for lastFirst in [false, true] {
        let fragmented = makeDatapath(firewall: udpFirewall)
        let fragmentBatch = fragmented.makeBatch()
        let released = fragmented.makeBatch()
        learnFragmentHosts(fragmented, fragmentBatch)
        let frameSet = fragmentFrames(lastFirst: lastFirst)
        _ = runReleasing(fragmented, fragmentBatch, released, frameSet, port: 0, count: 3200)  // the held slots' memory
        var fragmentTimes: [Double] = []
        var fragmentAllocations: [UInt] = []
        for _ in 0..<runs {
            let before = mallocs?.pointee ?? 0
            let start = DispatchTime.now().uptimeNanoseconds
            let sent = runReleasing(fragmented, fragmentBatch, released, frameSet, port: 0, count: frames)
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            fragmentAllocations.append((mallocs?.pointee ?? 0) - before)
            precondition(sent == frames, "every fragment forwarded (\(sent) of \(frames))")
            fragmentTimes.append(Double(elapsed) / Double(frames))
        }
        report(lastFirst ? "UDP fragments, last first (held, released)" : "UDP fragments, in order", fragmentTimes, fragmentAllocations)
    }
}
