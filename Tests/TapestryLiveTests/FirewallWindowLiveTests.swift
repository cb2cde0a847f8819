import Foundation
import TapestryProcess
import Testing

/// Sequence-window tracking against real Linux stacks: a third host on the network that knows a
/// connection's four-tuple (it reads it off the client, as an on-path observer of addresses
/// could guess it) forges RSTs with sequence numbers spread over the whole space, both ways, while
/// iperf3 transfers. The Linux hosts themselves ignore out-of-window RSTs (RFC 5961); a switch
/// without window tracking does not: the first forgery moves its connection to CLOSE and every
/// later segment is dropped, and the transfer stalls (with the window check disabled, all four
/// checks below fail). With it, every forgery is dropped as `invalid` (or, the rare one landing
/// inside a window, passed without closing anything), and iperf3 carries on to its end.
@Suite(.serialized) struct FirewallWindowLiveTests {
    @Test func forgedRSTsDoNotEndAnIperf3Transfer() throws {
        if LiveLab.skip("forgedRSTsDoNotEndAnIperf3Transfer") { return }
        let python = "/usr/bin/python3"
        guard ChildProcess.run(python, ["-c", "import scapy.all"]).status == 0 else {
            print("forgedRSTsDoNotEndAnIperf3Transfer: skipped: python3-scapy is not installed (apt-get install python3-scapy)")
            return
        }
        let lab = LiveLab()
        defer { lab.tearDown() }
        let control = "/tmp/\(lab.prefix).sock"
        try lab.addHosts(["a1", "a2", "b1"])
        try lab.start(topology: """
            name: window
            control: \(control)
            networks: { web: { vlan: 10 } }
            ports:
              a1: { tap: \(lab.name("a1")), network: web, netns: \(lab.name("a1")) }
              a2: { tap: \(lab.name("a2")), network: web, netns: \(lab.name("a2")) }
              b1: { tap: \(lab.name("b1")), network: web, netns: \(lab.name("b1")) }
            firewall:
              default: drop
              rules:
                - { action: allow, proto: tcp, dport: 5201 }
            """)
        lab.address("a1", "10.0.0.1/24")
        lab.address("a2", "10.0.0.2/24")
        lab.address("b1", "10.0.0.3/24")
        let server = try lab.iperf3Server(in: "a2")
        usleep(300_000)
        let result = FileManager.default.temporaryDirectory.appendingPathComponent("\(lab.prefix)-iperf.json")
        defer { try? FileManager.default.removeItem(at: result) }
        // timeout: a transfer the switch stalls ends in a failure, not a hang.
        let client = try lab.background("timeout 30 iperf3 -c 10.0.0.2 -p 5201 -t 12 -J > \(result.path)", in: "a1")
        usleep(1_200_000)
        // iperf3's control connection and its data stream, as the client's kernel lists them.
        let listed = lab.sh("ss -Htn state established '( dport = :5201 )'", in: "a1").output
        let ports = listed.split(separator: "\n").compactMap { line -> Int? in
            line.split(separator: " ", omittingEmptySubsequences: true).first { $0.hasPrefix("10.0.0.1:") }
                .flatMap { Int($0.dropFirst("10.0.0.1:".count)) }
        }
        #expect(ports.count == 2, "\(listed)")
        let clientMAC = lab.mac("a1"), serverMAC = lab.mac("a2")
        // 256 forgeries per connection and direction, sequence numbers evenly over 2^32.
        let forge = """
            from scapy.all import Ether, IP, TCP, sendp
            frames = []
            for port in [\(ports.map(String.init).joined(separator: ", "))]:
                for i in range(256):
                    seq = (i * 16777216 + 12345) % 4294967296
                    frames.append(Ether(dst="\(clientMAC)")/IP(src="10.0.0.2", dst="10.0.0.1")/TCP(sport=5201, dport=port, flags="R", seq=seq))
                    frames.append(Ether(dst="\(serverMAC)")/IP(src="10.0.0.1", dst="10.0.0.2")/TCP(sport=port, dport=5201, flags="R", seq=seq))
            sendp(frames, iface="\(lab.name("b1"))", verbose=False)
            print(len(frames))
            """
        let sent = lab.sh("\(python) -c '\(forge)'", in: "b1")
        #expect(sent.status == 0 && sent.output.contains("\(ports.count * 512)"), "\(sent.output)")
        let binary = try #require(LiveLab.binary).path
        // Right after the forgeries, while iperf3 still runs: the switch still has both
        // connections established (a RST that moved one to CLOSE would drop its next segments).
        let tracked = lab.sh("\(binary) ctl --control \(control) conntrack proto=tcp")
        let established = tracked.output.split(separator: "\n").filter { $0.contains(":5201") && $0.contains("ESTABLISHED") }
        #expect(established.count == 2, "\(tracked.output)")
        let clientStatus = client.wait()
        server.wait()
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: result)) as? [String: Any]
        let end = json?["end"] as? [String: Any]
        let received = (end?["sum_received"] as? [String: Any])?["bytes"] as? Double ?? 0
        #expect(clientStatus == 0 && received > 10_000_000, "the transfer survived the forged RSTs: \(received) bytes, \(json?["error"] ?? "")")
        // And it went on after them: the last second still carried data.
        let intervals = json?["intervals"] as? [[String: Any]] ?? []
        let lastBytes = (intervals.last?["sum"] as? [String: Any])?["bytes"] as? Double ?? 0
        #expect(intervals.count >= 11 && lastBytes > 1_000_000, "the last interval carried \(lastBytes) bytes of \(intervals.count)")
        let stats = lab.sh("\(binary) ctl --control \(control) --json stats")
        let statsJSON = try JSONSerialization.jsonObject(with: Data(stats.output.utf8)) as? [String: Any]
        let attacker = (statsJSON?["ports"] as? [String: Any])?["b1"] as? [String: Any]
        let invalid = (attacker?["drops"] as? [String: Any])?["invalid"] as? Int ?? 0
        // A forgery inside a window passes (and closes nothing): with windows of at most a few
        // MB, at most a handful of 2048 land there.
        #expect(invalid >= ports.count * 512 - 16, "forged RSTs counted invalid on b1: \(invalid) of \(ports.count * 512); \(stats.output)")
        #expect(lab.stop() == 0)
    }
}
