import Foundation
import TapestryProcess
import Testing

/// Fragments out of order against real Linux stacks: a host sends UDP datagrams fragmented by
/// scapy, last fragment first; the receiving kernel reassembles them and a socket reads them
/// whole. A switch that drops later fragments arriving before their first (as Tapestry did) loses
/// every such datagram; held and released after the first, each arrives intact. A datagram to a
/// port the rules refuse is sent the same way: nothing arrives and its held fragments count
/// `invalid` beside the first fragment's `firewall`.
@Suite(.serialized) struct FirewallFragmentLiveTests {
    @Test func aDatagramSentLastFragmentFirstArrives() throws {
        if LiveLab.skip("aDatagramSentLastFragmentFirstArrives") { return }
        let python = "/usr/bin/python3"
        guard ChildProcess.run(python, ["-c", "import scapy.all"]).status == 0 else {
            print("aDatagramSentLastFragmentFirstArrives: skipped: python3-scapy is not installed (apt-get install python3-scapy)")
            return
        }
        let lab = LiveLab()
        defer { lab.tearDown() }
        let control = "/tmp/\(lab.prefix).sock"
        try lab.addHosts(["a1", "a2"])
        try lab.start(topology: """
            name: fragments
            control: \(control)
            networks: { lan: { vlan: 10 } }
            ports:
              a1: { tap: \(lab.name("a1")), network: lan, netns: \(lab.name("a1")) }
              a2: { tap: \(lab.name("a2")), network: lan, netns: \(lab.name("a2")) }
            firewall:
              default: drop
              rules:
                - { action: allow, proto: udp, dport: 7000 }
                - { action: allow, proto: icmp }
            """)
        lab.address("a1", "10.0.0.1/24")
        lab.address("a2", "10.0.0.2/24")
        // The receiver: each datagram's length and SHA-256, for 8 s or 4 datagrams.
        let receiver = """
            import hashlib, socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("10.0.0.2", int(sys.argv[1])))
            s.settimeout(8)
            try:
                for _ in range(4):
                    data = s.recv(65535)
                    print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
            except socket.timeout:
                pass
            """
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("\(lab.prefix)-received.txt")
        let refusedOutput = FileManager.default.temporaryDirectory.appendingPathComponent("\(lab.prefix)-refused.txt")
        defer {
            try? FileManager.default.removeItem(at: output)
            try? FileManager.default.removeItem(at: refusedOutput)
        }
        let allowed = try lab.background("\(python) -c '\(receiver)' 7000 > \(output.path)", in: "a2")
        let refused = try lab.background("\(python) -c '\(receiver)' 7001 > \(refusedOutput.path)", in: "a2")
        #expect(lab.sh("ping -c 1 -W 2 10.0.0.2", in: "a1").status == 0, "the hosts reach each other (MACs learned)")
        usleep(300_000)
        let serverMAC = lab.mac("a2")
        // Three datagrams of 4,000 bytes to 7000, in four fragments each, sent last first (then
        // the middle ones reversed, then the first); one more to 7001, which the rules refuse.
        let send = """
            import hashlib
            from scapy.all import Ether, IP, UDP, Raw, fragment, sendp
            frames = []
            for n, port in enumerate([7000, 7000, 7000, 7001]):
                data = bytes((i * 7 + n) % 256 for i in range(4000))
                if port == 7000:
                    print(len(data), hashlib.sha256(data).hexdigest())
                packet = IP(src="10.0.0.1", dst="10.0.0.2", id=0x4000 + n) / UDP(sport=40000 + n, dport=port) / Raw(data)
                pieces = fragment(packet, fragsize=1200)
                frames += [Ether(dst="\(serverMAC)") / p for p in reversed(pieces)]
            sendp(frames, iface="\(lab.name("a1"))", verbose=False)
            """
        let sent = lab.sh("\(python) -c '\(send)'", in: "a1")
        #expect(sent.status == 0, "\(sent.output)")
        let expected = sent.output.split(separator: "\n").filter { $0.hasPrefix("4000 ") }.map(String.init)
        #expect(expected.count == 3)
        allowed.wait()
        refused.wait()
        let received = ((try? String(contentsOf: output, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        #expect(received == expected, "every datagram reassembled whole, in order: got \(received)")
        let refusedReceived = (try? String(contentsOf: refusedOutput, encoding: .utf8)) ?? ""
        #expect(refusedReceived.isEmpty, "nothing of the refused datagram arrives: \(refusedReceived)")

        let binary = try #require(LiveLab.binary).path
        let stats = lab.sh("\(binary) ctl --control \(control) --json stats")
        let statsJSON = try JSONSerialization.jsonObject(with: Data(stats.output.utf8)) as? [String: Any]
        let drops = ((statsJSON?["ports"] as? [String: Any])?["a1"] as? [String: Any])?["drops"] as? [String: Any]
        #expect(drops?["firewall"] as? Int == 1, "the refused datagram's first fragment: \(stats.output)")
        #expect(drops?["invalid"] as? Int == 3, "its three held fragments: \(stats.output)")
        #expect(lab.stop() == 0)
    }
}
