import Foundation
import TapestryLab
import TapestryProcess
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A torn-down lab leaves no process and no namespace behind: not the switch, not a server
/// started under `timeout` (which makes a process group of its own), not one that ignores
/// SIGTERM, and no child of the switch.
@Suite struct LabCleanupTests {
    @Test func tearDownLeavesNothing() throws {
        if LiveLab.skip("tearDownLeavesNothing") { return }
        let live = LiveLab()
        try live.addHosts(["a", "b"])
        try live.start(topology: """
            name: cleanup
            networks: { lan: { vlan: 10 } }
            ports:
              a: { tap: \(live.name("a")), network: lan, netns: \(live.name("a")) }
              b: { tap: \(live.name("b")), network: lan, netns: \(live.name("b")) }
            """)
        let switchPID = try #require(live.lab.switchPID)
        _ = try live.background("exec timeout 300 python3 -m http.server 18080 --bind 127.0.0.1", in: "a")
        _ = try live.background("trap '' TERM; sleep 300", in: "b")
        _ = try live.background("sleep 300 & sleep 300 & wait", in: "b")
        // Everything is up: the namespaces hold the servers and sleepers.
        var inside: [pid_t] = []
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            inside = live.namespaces.flatMap(Lab.processes(in:))
            if inside.count >= 5 { break }
            usleep(50_000)
        }
        #expect(inside.count >= 5, "python, timeout, two shells and three sleeps: \(inside)")
        // The switch blocks SIGTERM and SIGHUP for its signalfd: the mask its `ip` children would
        // inherit but for ChildProcess (ChildProcessTests).
        let status = (try? String(contentsOfFile: "/proc/\(switchPID)/status", encoding: .utf8)) ?? ""
        #expect(status.contains("SigBlk:\t0000000000004001") || status.contains("SigBlk:\t0000000000004003"), "\(status)")

        let namespaces = live.namespaces
        live.tearDown()
        let left = live.lab.leftovers(namespaces: namespaces, processes: inside + [switchPID])
        #expect(left.isEmpty, "left behind: \(left)")
    }
}
