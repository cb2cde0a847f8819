import Foundation
import TapestryProcess
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The ports VM users wire up, end to end with real Linux stacks: `interface:` ports on veth
/// pairs whose other ends sit in namespaces, a QEMU stream peer bridged to a namespace (QEMU's
/// own hub joining its TAP and stream backends, no guest), and two real QEMU guests. Root only;
/// the QEMU tests also need qemu-system-x86_64 (scripts/setup-debian.sh installs it).
@Suite(.serialized) struct VMPortTests {
    static var hasQEMU: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-system-x86_64") }

    /// Host `short`'s veth pair: `<name>` in the root namespace (the switch's interface port),
    /// `<name>p` inside the host's namespace with `cidr`.
    func veth(_ lab: LiveLab, _ short: String, _ cidr: String) throws {
        let outside = lab.name(short), inside = "\(lab.name(short))p"
        guard lab.sh("ip link add \(outside) type veth peer name \(inside)").status == 0 else {
            throw LabError("cannot create veth \(outside)")
        }
        lab.sh("ip link set \(inside) netns \(outside)")
        lab.sh("ip addr add \(cidr) dev \(inside) && ip link set \(inside) up", in: short)
    }

    /// iperf3 from h1 to `server` (10.0.0.2) and back; each way must carry `minimum` bytes, and
    /// no frame may have been dropped as `offload-unsupported` (the lab's control socket is
    /// /tmp/PREFIX.sock).
    func tcpBothWays(_ lab: LiveLab, server: String, minimum: Double, label: String) throws {
        let forward = try iperf(lab, from: "h1", to: server, address: "10.0.0.2")
        let backward = try iperf(lab, from: "h1", to: server, address: "10.0.0.2", reverse: true)
        print("\(label), TCP (debug build): \(String(format: "%.2f", forward.rate / 1e9)) Gbit/s there, \(String(format: "%.2f", backward.rate / 1e9)) back")
        #expect(forward.bytes > minimum, "\(label): TCP from h1")
        #expect(backward.bytes > minimum, "\(label): TCP to h1")
        let binary = try #require(LiveLab.binary).path
        let stats = lab.sh("\(binary) ctl --control /tmp/\(lab.prefix).sock stats").output
        #expect(!stats.contains("offload-unsupported"), "\(stats)")
    }

    func iperf(_ lab: LiveLab, from client: String, to server: String, address: String, reverse: Bool = false) throws -> (bytes: Double, rate: Double) {
        let listener = try lab.iperf3Server(in: server)
        usleep(300_000)
        let run = lab.sh("iperf3 -c \(address) -p 5201 -t 2 -J \(reverse ? "-R" : "")", in: client)
        listener.wait()
        let json = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any]
        let received = (json?["end"] as? [String: Any])?["sum_received"] as? [String: Any]
        return (received?["bytes"] as? Double ?? 0, received?["bits_per_second"] as? Double ?? 0)
    }

    @Test func interfacePortsOnVethPairs() throws {
        if LiveLab.skip("interfacePortsOnVethPairs") { return }
        let lab = LiveLab()
        defer {
            lab.sh("ip link del \(lab.name("h1")) 2>/dev/null; ip link del \(lab.name("h2")) 2>/dev/null")
            lab.tearDown()
        }
        try lab.addHosts(["h1", "h2", "h3"])
        try veth(lab, "h1", "10.0.0.1/24")
        try veth(lab, "h2", "10.0.0.2/24")
        try lab.start(
            topology: """
                name: veths
                control: /tmp/\(lab.prefix).sock
                networks:
                  lan: { vlan: 10 }
                  other: { vlan: 20 }
                ports:
                  i1: { interface: \(lab.name("h1")), network: lan }
                  i2: { interface: \(lab.name("h2")), network: lan }
                  t3: { tap: \(lab.name("h3")), trunk: [lan, other], netns: \(lab.name("h3")) }
                """)
        let ping = lab.sh("ping -c 3 -i 0.2 -W 2 10.0.0.2", in: "h1")
        #expect(ping.status == 0, "veth to veth through interface ports: \(ping.output)")
        // TCP both ways: the veths hand over 64 KB TSO segments with their virtio-net headers.
        if lab_has("iperf3") {
            try tcpBothWays(lab, server: "h2", minimum: 10_000_000, label: "interface ports")
        }
        // A VLAN-aware host on the trunk reaches h1 through an interface port with tag 10.
        let probe = LiveLab.root.appendingPathComponent("scripts/vlan_probe.py").path
        let tagged = lab.sh("python3 \(probe) --dev \(lab.name("h3")) --vid 10 --ip 10.0.0.9 --ping 10.0.0.1 --count 3", in: "h3")
        #expect(tagged.status == 0, "tagged ping from the trunk reaches h1: \(tagged.output)")
        // Frames the host itself sends out of i1's interface go to h1, not into the switch.
        let binary = try #require(LiveLab.binary).path
        let before = framesIn(lab.sh("\(binary) ctl --control /tmp/\(lab.prefix).sock --json stats").output, "i1")
        let send = "import socket; s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('\(lab.name("h1"))', 0)); "
            + "[s.send(b'\\xff'*6 + b'\\x02\\x00\\x00\\x00\\x00\\x99\\x88\\xb5' + bytes(46)) for _ in range(20)]"
        #expect(lab.sh("python3 -c \"\(send)\"").status == 0)
        usleep(200_000)
        let after = framesIn(lab.sh("\(binary) ctl --control /tmp/\(lab.prefix).sock --json stats").output, "i1")
        #expect(before >= 0 && after - before < 20, "the host's 20 own frames were not read back as input (\(before) -> \(after))")
        // Deleting an interface takes only its port down.
        lab.sh("ip link del \(lab.name("h2"))")
        let deadline = Date().addingTimeInterval(5)
        while !lab.log.contains("is down") && Date() < deadline {
            lab.sh("ping -c 1 -W 1 10.0.0.2", in: "h1")
        }
        #expect(lab.log.contains("port 'i2' (interface '\(lab.name("h2"))') is down"), "\(lab.log)")
        let still = lab.sh("python3 \(probe) --dev \(lab.name("h3")) --vid 10 --ip 10.0.0.9 --ping 10.0.0.1 --count 2", in: "h3")
        #expect(still.status == 0, "the other ports keep switching: \(still.output)")
        // The interface is back (a VM restarted): a reload attaches it again.
        try veth(lab, "h2", "10.0.0.2/24")
        let reload = lab.sh("\(binary) ctl --control /tmp/\(lab.prefix).sock reload")
        #expect(reload.status == 0 && reload.output.contains("ports attached again: i2"), "\(reload.output)")
        // h2's new veth has a new MAC; h1 must ask again, as after a real VM restart.
        lab.sh("ip neigh flush all", in: "h1")
        let again = lab.sh("ping -c 2 -i 0.2 -W 2 10.0.0.2", in: "h1")
        #expect(again.status == 0, "h2 is reachable again: \(again.output)\n\(lab.log)")
        #expect(lab.stop() == 0)
    }

    /// TSO segments from an interface port (a veth hands them over) leaving through a TAP port
    /// run with `--no-offloads`: cut into MSS-sized frames in software, TCP both ways.
    @Test func segmentsFromAnInterfaceReachATapWithoutOffloads() throws {
        if LiveLab.skip("segmentsFromAnInterfaceReachATapWithoutOffloads") { return }
        guard lab_has("iperf3") else {
            print("skipping segmentsFromAnInterfaceReachATapWithoutOffloads: iperf3 is not installed")
            return
        }
        let lab = LiveLab()
        defer {
            lab.sh("ip link del \(lab.name("h1")) 2>/dev/null")
            lab.tearDown()
        }
        try lab.addHosts(["h1", "h2"])
        try veth(lab, "h1", "10.0.0.1/24")
        try lab.start(
            topology: """
                name: nooff
                control: /tmp/\(lab.prefix).sock
                networks:
                  lan: { vlan: 10 }
                ports:
                  i1: { interface: \(lab.name("h1")), network: lan }
                  t2: { tap: \(lab.name("h2")), network: lan, netns: \(lab.name("h2")) }
                """, arguments: ["--no-offloads"])
        lab.address("h2", "10.0.0.2/24")
        #expect(lab.sh("ping -c 2 -i 0.2 -W 2 10.0.0.2", in: "h1").status == 0)
        try tcpBothWays(lab, server: "h2", minimum: 5_000_000, label: "interface to a TAP without offloads")
        #expect(lab.stop() == 0)
    }

    func framesIn(_ stats: String, _ port: String) -> Int {
        let json = try? JSONSerialization.jsonObject(with: Data(stats.utf8)) as? [String: Any]
        return ((json?["ports"] as? [String: Any])?[port] as? [String: Any])?["frames_in"] as? Int ?? -1
    }

    /// A QEMU process with no guest (`-machine none`) whose netdevs are joined by its hub, each
    /// argument one `-netdev` value; returns once the TAP devices it creates exist.
    final class QEMUBridge {
        let process: ChildProcess

        init(netdevs: [String], devices: [String], lab: LiveLab) throws {
            var arguments = ["-machine", "none", "-nodefaults", "-display", "none"]
            for netdev in netdevs { arguments += ["-netdev", netdev] }
            for index in netdevs.indices { arguments += ["-netdev", "hubport,id=p\(index),hubid=0,netdev=n\(index)"] }
            process = try ChildProcess("/usr/bin/qemu-system-x86_64", arguments, output: .discard)
            let check = devices.map { "ip link show \($0) >/dev/null" }.joined(separator: " && ")
            let deadline = Date().addingTimeInterval(10)
            while lab.sh(check).status != 0 && Date() < deadline { usleep(100_000) }
        }

        /// SIGTERM (QEMU starts with a clean signal mask: ChildProcess), SIGKILL if it lingers.
        func stop() { process.terminate(grace: 5) }

        deinit { stop() }
    }

    /// A namespace behind QEMU's stream backend (QEMU bridging its TAP to the socket port, no
    /// guest) and one behind a Tapestry TAP port: TCP both ways. The TAP side hands over TSO
    /// segments that the socket port must cut in software, since QEMU's stream takes plain frames.
    @Test func qemuStreamPeerAndTapHostExchangeTCP() throws {
        if LiveLab.skip("qemuStreamPeerAndTapHostExchangeTCP") { return }
        guard Self.hasQEMU, lab_has("iperf3") else {
            print("skipping qemuStreamPeerAndTapHostExchangeTCP: needs qemu-system-x86_64 and iperf3 (scripts/setup-debian.sh)")
            return
        }
        let lab = LiveLab()
        var qemu: QEMUBridge?
        defer {
            qemu?.stop()
            lab.tearDown()
        }
        try lab.addHosts(["h1", "q2"])
        let socketPath = "/tmp/\(lab.prefix)-q2.sock"
        try lab.start(
            topology: """
                name: mixed
                control: /tmp/\(lab.prefix).sock
                networks:
                  lan: { vlan: 10 }
                ports:
                  h1: { tap: \(lab.name("h1")), network: lan, netns: \(lab.name("h1")) }
                  q2: { socket: \(socketPath), network: lan }
                """)
        lab.address("h1", "10.0.0.1/24")
        qemu = try QEMUBridge(
            netdevs: [
                "tap,id=n0,ifname=\(lab.name("q2")),script=no,downscript=no",
                "stream,id=n1,server=off,addr.type=unix,addr.path=\(socketPath)",
            ],
            devices: [lab.name("q2")], lab: lab)
        lab.sh("ip link set \(lab.name("q2")) netns \(lab.name("q2"))")
        lab.address("q2", "10.0.0.2/24")
        let ping = lab.sh("ping -c 3 -i 0.2 -W 2 10.0.0.2", in: "h1")
        #expect(ping.status == 0, "TAP host to QEMU stream peer: \(ping.output)")
        #expect(lab.log.contains("port 'q2' (socket \(socketPath)) is up: a VM connected"), "\(lab.log)")
        // The TAP host's TSO segments must be cut for the stream peer.
        try tcpBothWays(lab, server: "q2", minimum: 5_000_000, label: "TAP and a QEMU stream peer")
        #expect(lab.stop() == 0)
    }

    /// A TAP device QEMU opened, attached as an `interface:` port (the third way in vms.md):
    /// QEMU joins its TAP (the switch's interface) and a second TAP moved into a namespace with
    /// its hub, standing in for the guest; a TAP-port host reaches it, TCP both ways.
    @Test func qemuOwnedTapAsInterfacePort() throws {
        if LiveLab.skip("qemuOwnedTapAsInterfacePort") { return }
        guard Self.hasQEMU, lab_has("iperf3") else {
            print("skipping qemuOwnedTapAsInterfacePort: needs qemu-system-x86_64 and iperf3 (scripts/setup-debian.sh)")
            return
        }
        let lab = LiveLab()
        var qemu: QEMUBridge?
        defer {
            qemu?.stop()
            lab.tearDown()
        }
        try lab.addHosts(["h1", "q2"])
        let qemuTap = "\(lab.prefix)-qt"
        qemu = try QEMUBridge(
            netdevs: [
                "tap,id=n0,ifname=\(qemuTap),script=no,downscript=no",
                "tap,id=n1,ifname=\(lab.name("q2")),script=no,downscript=no",
            ],
            devices: [qemuTap, lab.name("q2")], lab: lab)
        lab.sh("ip link set \(lab.name("q2")) netns \(lab.name("q2"))")
        try lab.start(
            topology: """
                name: qtap
                control: /tmp/\(lab.prefix).sock
                networks:
                  lan: { vlan: 10 }
                ports:
                  h1: { tap: \(lab.name("h1")), network: lan, netns: \(lab.name("h1")) }
                  vm: { interface: \(qemuTap), network: lan }
                """)
        lab.address("h1", "10.0.0.1/24")
        lab.address("q2", "10.0.0.2/24")
        let ping = lab.sh("ping -c 3 -i 0.2 -W 2 10.0.0.2", in: "h1")
        #expect(ping.status == 0, "TAP host to the QEMU-owned TAP: \(ping.output)")
        try tcpBothWays(lab, server: "q2", minimum: 5_000_000, label: "TAP and a QEMU-owned TAP as an interface port")
        #expect(lab.stop() == 0)
        #expect(lab.sh("ip link show \(qemuTap)").status == 0, "the switch leaves QEMU's TAP device alone")
    }

    /// Two real QEMU guests (Debian's kernel, a busybox initramfs built by the script) ping each
    /// other, one on a stream socket port, one on a dgram socket port; the switch runs as nobody.
    @Test func twoRealVMsPingEachOther() throws {
        guard Self.hasQEMU, FileManager.default.isExecutableFile(atPath: "/bin/busybox") else {
            print("skipping twoRealVMsPingEachOther: needs qemu-system-x86_64 and busybox-static (scripts/setup-debian.sh)")
            return
        }
        let binary = try #require(LiveLab.binary).path
        let lab = LiveLab()
        let script = LiveLab.root.appendingPathComponent("scripts/vm/test-vms.sh").path
        let user = LiveLab.isRoot ? "SWITCH_USER=nobody" : ""
        let run = lab.sh("TAPESTRY=\(binary) \(user) \(script)", timeout: 600)
        print(run.output.split(separator: "\n").filter { $0.contains("test-vms:") || $0.contains("packets") }.joined(separator: "\n"))
        #expect(run.status == 0, "\(run.output.suffix(3000))")
        #expect(run.output.contains("vm1 (stream) and vm2 (dgram) pinged each other"))
    }
}
