import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `vxlan:` ports against real peers: Linux `vxlan` devices in namespaces this lab creates, and a
/// second Tapestry. The underlay is veth pairs between namespaces (10.0.9x.0/24); the overlay
/// hosts use 10.0.5x.0/24.
///
/// The Linux peers' veths have transmit checksum offload turned off: a packet crossing a veth
/// keeps its checksum unfinished (the kernel trusts the other end), and a UDP socket hands the
/// payload to the switch as it is, inner TCP checksum unfinished. A NIC computes it on a real
/// underlay; docs/multi-host.md says so.
@Suite(.serialized) struct VXLANPortTests {
    /// The underlay: namespace `u` (where the switch's tunnel socket lives, `local` on its lo)
    /// joined to each remote namespace by a veth pair, `10.0.9N.1` on u's end, `10.0.9N.2` on the
    /// remote's, and a route to `local` in each remote.
    static func underlay(_ lab: LiveLab, local: String, remotes: [(short: String, subnet: Int)]) {
        lab.sh("ip -n \(lab.name("u")) addr add \(local)/32 dev lo")
        for (short, subnet) in remotes {
            let here = "\(lab.prefix)u\(subnet)"
            let there = "\(lab.prefix)r\(subnet)"
            lab.sh("ip link add \(here) netns \(lab.name("u")) type veth peer name \(there) netns \(lab.name(short))")
            lab.sh("ip -n \(lab.name("u")) addr add 10.0.\(subnet).1/24 dev \(here)")
            lab.sh("ip -n \(lab.name("u")) link set \(here) up")
            lab.sh("ip -n \(lab.name(short)) addr add 10.0.\(subnet).2/24 dev \(there)")
            lab.sh("ip -n \(lab.name(short)) link set \(there) up")
            lab.sh("ip -n \(lab.name(short)) route add \(local)/32 via 10.0.\(subnet).1")
            // Without this the peer's TCP over the tunnel fails (docs/multi-host.md): say so here.
            let offload = lab.sh("ethtool -K \(there) tx off", in: short)
            #expect(offload.status == 0, "ethtool -K \(there) tx off (scripts/setup-debian.sh installs ethtool): \(offload.output)")
        }
    }

    /// A Linux `vxlan` device in host `short` with an overlay address.
    static func linuxVXLAN(_ lab: LiveLab, _ short: String, device: String, vni: Int, local: String, remote: String, address: String) {
        let result = lab.sh(
            "ip link add \(device) type vxlan id \(vni) local \(local) remote \(remote) dstport 4789 && ip addr add \(address) dev \(device) && ip link set \(device) up",
            in: short)
        #expect(result.status == 0, "vxlan device \(device) in \(short): \(result.output)")
    }

    static func ctl(_ lab: LiveLab, _ arguments: String) -> String {
        guard let binary = LiveLab.binary else { return "" }
        return lab.sh("\(binary.path) ctl --control \(controlPath(lab)) \(arguments)").output
    }

    static func controlPath(_ lab: LiveLab) -> String { "\(NSTemporaryDirectory())\(lab.name("ctl")).sock" }

    /// A switch with host h1 on a tap port and one vxlan port (its socket in namespace u), both
    /// in network web (VNI 5010).
    static func oneTunnel(_ lab: LiveLab, local: String, remotes: [String]) -> String {
        """
        name: \(lab.prefix)
        control: \(controlPath(lab))
        networks: { web: { vlan: 10, vni: 5010 } }
        ports:
          h1: { tap: \(lab.name("h1")), network: web, netns: \(lab.name("h1")) }
          dc2:
            vxlan: { local: \(local), remotes: [\(remotes.joined(separator: ", "))] }
            netns: \(lab.name("u"))
            network: web
        """
    }

    @Test func linuxVXLANPeerPingsAndCarriesTCPBothWays() throws {
        if LiveLab.skip("linuxVXLANPeerPingsAndCarriesTCPBothWays") { return }
        let lab = LiveLab()
        defer { lab.tearDown() }
        try lab.addHosts(["h1", "u", "r1"])
        Self.underlay(lab, local: "10.0.99.1", remotes: [("r1", 98)])
        Self.linuxVXLAN(lab, "r1", device: "vx0", vni: 5010, local: "10.0.98.2", remote: "10.0.99.1", address: "10.0.50.2/24")
        try lab.start(topology: Self.oneTunnel(lab, local: "10.0.99.1", remotes: ["10.0.98.2"]))
        lab.address("h1", "10.0.50.1/24", mtu: 1450)
        let ping = lab.sh("ping -c 3 -i 0.2 -W 2 10.0.50.2", in: "h1")
        #expect(ping.status == 0, "h1 -> Linux vxlan peer: \(ping.output)")
        let back = lab.sh("ping -c 3 -i 0.2 -W 2 10.0.50.1", in: "r1")
        #expect(back.status == 0, "Linux vxlan peer -> h1: \(back.output)")
        // ARP went through the tunnel: each side knows the other's real MAC.
        let peerMAC = lab.sh("cat /sys/class/net/vx0/address", in: "r1").output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(lab.sh("ip neigh show 10.0.50.2", in: "h1").output.contains(peerMAC))
        #expect(lab.sh("ip neigh show 10.0.50.1", in: "r1").output.contains(lab.mac("h1")))
        let fdb = Self.ctl(lab, "fdb")
        #expect(fdb.contains(peerMAC) && fdb.contains("10.0.98.2"), "the peer's MAC is behind its remote: \(fdb)")
        let show = Self.ctl(lab, "show")
        #expect(show.contains("tunnel dc2") && show.contains("10.0.98.2"), "show lists the remote: \(show)")
        guard lab_has("iperf3") else {
            print("skipping the iperf3 half of linuxVXLANPeerPingsAndCarriesTCPBothWays: iperf3 is not installed")
            return
        }
        for (server, client, address) in [("r1", "h1", "10.0.50.2"), ("h1", "r1", "10.0.50.1")] {
            let process = try lab.iperf3Server(in: server)
            // The server may not listen yet on a loaded machine: a refused connection does not
            // use up its one client, so try again (the server's timeout ends it if none comes).
            var run = (status: Int32(1), output: "")
            for _ in 0..<5 where run.status != 0 {
                usleep(300_000)
                run = lab.sh("iperf3 -c \(address) -p 5201 -t 2 -J", in: client)
            }
            process.wait()
            let json = try? JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any]
            let received = ((json?["end"] as? [String: Any])?["sum_received"] as? [String: Any])
            let bytes = received?["bytes"] as? Double ?? 0
            let rate = received?["bits_per_second"] as? Double ?? 0
            #expect(run.status == 0 && bytes > 1_000_000, "iperf3 \(client) -> \(server): \(run.output.prefix(300))")
            print("live TCP over VXLAN \(client) -> \(server) (this build): \(String(format: "%.2f", rate / 1e9)) Gbit/s")
        }
        // The bytes arrive intact: TCP segments from the tunnel reach h1 merged into TSO frames,
        // whose checksum h1 trusts; a file's hash on both ends says nothing was changed.
        if lab_has("curl") {
            let directory = "/tmp/\(lab.prefix)-www"
            lab.sh("mkdir -p \(directory) && head -c 30000000 /dev/urandom > \(directory)/blob")
            defer { lab.sh("rm -rf \(directory)") }
            let server = try lab.background("cd \(directory) && exec python3 -m http.server 8080 --bind 10.0.50.2", in: "r1")
            defer { kill(server.pid, SIGTERM) }
            // Retry only while the server is not listening yet (curl's 7): any other failure
            // is the result, not a reason to spend another 30 s.
            var fetched = (status: Int32(7), output: "")
            for _ in 0..<20 where fetched.status == 7 {
                usleep(200_000)
                fetched = lab.sh("curl -sf --max-time 30 -o \(directory)/fetched http://10.0.50.2:8080/blob && sha256sum < \(directory)/fetched", in: "h1")
            }
            let original = lab.sh("sha256sum < \(directory)/blob").output
            #expect(fetched.status == 0 && fetched.output.prefix(64) == original.prefix(64), "30 MB over the tunnel: \(fetched.output) vs \(original)")
        }
        let stats = Self.ctl(lab, "stats --json")
        let drops = (try? JSONSerialization.jsonObject(with: Data(stats.utf8)) as? [String: Any])?["drops"] as? [String: Any]
        #expect(drops != nil && drops?["tunnel"] as? Int == 0, "no tunnel drops on a clean path: \(stats.prefix(400))")
    }

    @Test func twoNetworksByVNIAndAFloodToTwoRemotes() throws {
        if LiveLab.skip("twoNetworksByVNIAndAFloodToTwoRemotes") { return }
        let lab = LiveLab()
        defer { lab.tearDown() }
        try lab.addHosts(["h1", "h2", "u", "r1", "r2"])
        Self.underlay(lab, local: "10.0.99.1", remotes: [("r1", 98), ("r2", 97)])
        Self.linuxVXLAN(lab, "r1", device: "vx0", vni: 5010, local: "10.0.98.2", remote: "10.0.99.1", address: "10.0.50.2/24")
        Self.linuxVXLAN(lab, "r1", device: "vx1", vni: 5020, local: "10.0.98.2", remote: "10.0.99.1", address: "10.0.60.2/24")
        Self.linuxVXLAN(lab, "r2", device: "vx0", vni: 5010, local: "10.0.97.2", remote: "10.0.99.1", address: "10.0.50.3/24")
        try lab.start(topology: """
            name: \(lab.prefix)
            control: \(Self.controlPath(lab))
            networks:
              web: { vlan: 10, vni: 5010 }
              db: { vlan: 20, vni: 5020 }
            ports:
              h1: { tap: \(lab.name("h1")), network: web, netns: \(lab.name("h1")) }
              h2: { tap: \(lab.name("h2")), network: db, netns: \(lab.name("h2")) }
              dc2:
                vxlan: { local: 10.0.99.1, remotes: [10.0.98.2, 10.0.97.2] }
                netns: \(lab.name("u"))
                trunk: [web, db]
            """)
        lab.address("h1", "10.0.50.1/24", mtu: 1450)
        lab.address("h2", "10.0.60.1/24", mtu: 1450)
        // h1's ARP requests are floods: both remotes get them, each answers for its own address.
        for target in ["10.0.50.2", "10.0.50.3"] {
            let ping = lab.sh("ping -c 2 -i 0.2 -W 2 \(target)", in: "h1")
            #expect(ping.status == 0, "h1 (web) -> \(target): \(ping.output)")
        }
        let db = lab.sh("ping -c 2 -i 0.2 -W 2 10.0.60.2", in: "h2")
        #expect(db.status == 0, "h2 (db, VNI 5020) -> r1's vx1: \(db.output)")
        let fdb = Self.ctl(lab, "fdb")
        let r1web = lab.sh("cat /sys/class/net/vx0/address", in: "r1").output.trimmingCharacters(in: .whitespacesAndNewlines)
        let r1db = lab.sh("cat /sys/class/net/vx1/address", in: "r1").output.trimmingCharacters(in: .whitespacesAndNewlines)
        let r2web = lab.sh("cat /sys/class/net/vx0/address", in: "r2").output.trimmingCharacters(in: .whitespacesAndNewlines)
        for (mac, network, remote) in [(r1web, "web", "10.0.98.2"), (r1db, "db", "10.0.98.2"), (r2web, "web", "10.0.97.2")] {
            let line = fdb.split(separator: "\n").first { $0.contains(mac) } ?? ""
            #expect(line.contains(network) && line.contains(remote), "\(mac) in \(network) behind \(remote): \(fdb)")
        }
        let show = Self.ctl(lab, "show --json")
        let json = try JSONSerialization.jsonObject(with: Data(show.utf8)) as? [String: Any]
        let port = (json?["ports"] as? [[String: Any]])?.first { $0["name"] as? String == "dc2" }
        let remotes = port?["remotes"] as? [[String: Any]] ?? []
        #expect(remotes.count == 2, "\(show.prefix(600))")
        for remote in remotes {
            #expect((remote["frames_out"] as? Int ?? 0) > 0 && (remote["frames_in"] as? Int ?? 0) > 0, "each remote sent and got frames: \(remote)")
        }
    }

    @Test func unlistedSourcesAndUnknownVNIsAreDroppedAndCounted() throws {
        if LiveLab.skip("unlistedSourcesAndUnknownVNIsAreDroppedAndCounted") { return }
        let lab = LiveLab()
        defer { lab.tearDown() }
        try lab.addHosts(["h1", "u", "r1"])
        Self.underlay(lab, local: "10.0.99.1", remotes: [("r1", 98)])
        // Not listed: a second address of r1's namespace. Listed, but VNI 7777 is no network here.
        lab.sh("ip -n \(lab.name("r1")) addr add 10.0.98.9/24 dev \(lab.prefix)r98")
        Self.linuxVXLAN(lab, "r1", device: "vx8", vni: 5010, local: "10.0.98.9", remote: "10.0.99.1", address: "10.0.50.8/24")
        Self.linuxVXLAN(lab, "r1", device: "vx7", vni: 7777, local: "10.0.98.2", remote: "10.0.99.1", address: "10.0.70.7/24")
        try lab.start(topology: Self.oneTunnel(lab, local: "10.0.99.1", remotes: ["10.0.98.2"]))
        lab.address("h1", "10.0.50.1/24", mtu: 1450)
        // Each ping's ARP requests leave r1 through the tunnel and are refused at the switch.
        #expect(lab.sh("ping -c 3 -i 0.2 -W 1 -I vx8 10.0.50.1", in: "r1").status != 0, "an unlisted source gets no answer")
        #expect(lab.sh("ping -c 3 -i 0.2 -W 1 -I vx7 10.0.70.1", in: "r1").status != 0)
        let stats = Self.ctl(lab, "stats --json")
        let json = try JSONSerialization.jsonObject(with: Data(stats.utf8)) as? [String: Any]
        let drops = json?["drops"] as? [String: Any] ?? [:]
        #expect((drops["tunnel"] as? Int ?? 0) >= 2, "tunnel drops counted: \(stats.prefix(600))")
        let vx8 = lab.sh("cat /sys/class/net/vx8/address", in: "r1").output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!vx8.isEmpty && !Self.ctl(lab, "fdb").contains(vx8), "nothing from an unlisted source is learned")
    }

    @Test func twoTapestrySwitchesJoinedByVXLAN() throws {
        if LiveLab.skip("twoTapestrySwitchesJoinedByVXLAN") { return }
        guard let binary = LiveLab.binary else { throw LabError("tapestry binary not found") }
        let lab = LiveLab()
        defer { lab.tearDown() }
        try lab.addHosts(["h1", "h2", "u", "v"])
        // u and v are the two sites' underlays: one veth, 10.0.98.1 and 10.0.98.2.
        lab.sh("ip link add \(lab.prefix)uv netns \(lab.name("u")) type veth peer name \(lab.prefix)vu netns \(lab.name("v"))")
        lab.sh("ip -n \(lab.name("u")) addr add 10.0.98.1/24 dev \(lab.prefix)uv && ip -n \(lab.name("u")) link set \(lab.prefix)uv up")
        lab.sh("ip -n \(lab.name("v")) addr add 10.0.98.2/24 dev \(lab.prefix)vu && ip -n \(lab.name("v")) link set \(lab.prefix)vu up")
        func topology(_ site: String, _ host: String, local: String, remote: String, underlay: String) -> String {
            """
            name: \(lab.prefix)\(site)
            control: \(NSTemporaryDirectory())\(lab.name(site)).sock
            networks: { web: { vlan: 10, vni: 5010 } }
            firewall:
              default: drop
              rules:
                - { action: allow, proto: icmp }
                - { action: allow, proto: tcp, dport: 5201 }
            ports:
              \(host): { tap: \(lab.name(host)), network: web, netns: \(lab.name(host)) }
              wan:
                vxlan: { local: \(local), remotes: [\(remote)] }
                netns: \(lab.name(underlay))
                network: web
            """
        }
        try lab.start(topology: topology("a", "h1", local: "10.0.98.1", remote: "10.0.98.2", underlay: "u"))
        let second = "\(NSTemporaryDirectory())\(lab.name("b")).yaml"
        let secondLog = "\(NSTemporaryDirectory())\(lab.name("b")).log"
        try topology("b", "h2", local: "10.0.98.2", remote: "10.0.98.1", underlay: "v").write(toFile: second, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: second); try? FileManager.default.removeItem(atPath: secondLog) }
        // The second switch runs inside namespace u (where the lab starts background commands):
        // it creates its TAP there and moves it to h2; tearDown ends it with u's processes.
        let other = try lab.background("exec \(binary.path) run \(second) > \(secondLog) 2>&1", in: "u")
        defer { kill(other.pid, SIGTERM); other.wait() }
        var ready = false
        for _ in 0..<200 where !ready {
            ready = ((try? String(contentsOfFile: secondLog, encoding: .utf8)) ?? "").contains("ready")
            if !ready { usleep(50_000) }
        }
        #expect(ready, "second switch: \((try? String(contentsOfFile: secondLog, encoding: .utf8)) ?? "")")
        lab.address("h1", "10.0.50.1/24", mtu: 1450)
        lab.address("h2", "10.0.50.2/24", mtu: 1450)
        let ping = lab.sh("ping -c 3 -i 0.2 -W 2 10.0.50.2", in: "h1")
        #expect(ping.status == 0, "h1 (site a) -> h2 (site b): \(ping.output)")
        guard lab_has("iperf3") else { return }
        let server = try lab.iperf3Server(in: "h2")
        usleep(300_000)
        let run = lab.sh("iperf3 -c 10.0.50.2 -p 5201 -t 2 -J", in: "h1")
        server.wait()
        #expect(run.status == 0, "iperf3 across two switches: \(run.output.prefix(300))")
        // Both firewalls hold the connection; a port neither allows stays closed.
        let closed = lab.sh("timeout 3 bash -c 'echo > /dev/tcp/10.0.50.2/22'", in: "h1")
        #expect(closed.status != 0)
    }

    /// Open vSwitch's userspace datapath as the peer: a netdev bridge with a `type=vxlan` port,
    /// its underlay on a second netdev bridge (OVS's native tunnelling needs the route and the
    /// address there: `ovs-appctl ovs/route/add`). Its own ovsdb-server and ovs-vswitchd run in
    /// namespace `o`, with their files in a temporary directory; they are ended by PID.
    @Test func openVSwitchUserspaceVXLANPeer() throws {
        if LiveLab.skip("openVSwitchUserspaceVXLANPeer") { return }
        guard lab_has("ovs-vswitchd"), lab_has("ovsdb-server"), lab_has("ovs-vsctl"),
            FileManager.default.fileExists(atPath: "/usr/share/openvswitch/vswitch.ovsschema")
        else {
            print("skipping openVSwitchUserspaceVXLANPeer: Open vSwitch is not installed (openvswitch-switch)")
            return
        }
        let lab = LiveLab()
        defer { lab.tearDown() }
        try lab.addHosts(["h1", "u", "o", "oh"])
        let ovs = NSTemporaryDirectory() + lab.name("ovs")
        try? FileManager.default.removeItem(atPath: ovs)
        try FileManager.default.createDirectory(atPath: ovs, withIntermediateDirectories: true)
        defer {
            for daemon in ["vswitchd", "ovsdb"] {
                if let text = try? String(contentsOfFile: "\(ovs)/\(daemon).pid", encoding: .utf8),
                    let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
                {
                    kill(pid, SIGTERM)
                }
            }
            usleep(300_000)
            try? FileManager.default.removeItem(atPath: ovs)
        }
        let (u, o) = (lab.name("u"), lab.name("o"))
        let env = "OVS_RUNDIR=\(ovs) OVS_LOGDIR=\(ovs) OVS_DBDIR=\(ovs)"
        let vsctl = "ovs-vsctl --db=unix:\(ovs)/db.sock --timeout=15"
        let setup = [
            "ip link add \(lab.prefix)tu netns \(u) type veth peer name \(lab.prefix)ou netns \(o)",
            "ip -n \(u) addr add 10.0.98.1/24 dev \(lab.prefix)tu && ip -n \(u) link set \(lab.prefix)tu up",
            "ip -n \(o) link set \(lab.prefix)ou up",
            // Both veth ends: checksums complete, for the switch's UDP socket and OVS's AF_PACKET.
            "ip netns exec \(u) ethtool -K \(lab.prefix)tu tx off",
            "ip netns exec \(o) ethtool -K \(lab.prefix)ou tx off",
            "ovsdb-tool create \(ovs)/conf.db /usr/share/openvswitch/vswitch.ovsschema",
            "\(env) ip netns exec \(o) ovsdb-server \(ovs)/conf.db --remote=punix:\(ovs)/db.sock --pidfile=\(ovs)/ovsdb.pid --unixctl=\(ovs)/ovsdb.ctl --log-file=\(ovs)/ovsdb.log -vconsole:off --detach",
            "\(vsctl) --no-wait init",
            "\(env) ip netns exec \(o) ovs-vswitchd unix:\(ovs)/db.sock --pidfile=\(ovs)/vswitchd.pid --unixctl=\(ovs)/vswitchd.ctl --log-file=\(ovs)/vswitchd.log -vconsole:off --detach",
            "\(vsctl) add-br br-phy -- set bridge br-phy datapath_type=netdev -- add-port br-phy \(lab.prefix)ou",
            "ip -n \(o) addr add 10.0.98.2/24 dev br-phy && ip -n \(o) link set br-phy up",
            "ovs-appctl -t \(ovs)/vswitchd.ctl ovs/route/add 10.0.98.1/24 br-phy",
            "\(vsctl) add-br br-int -- set bridge br-int datapath_type=netdev",
            "\(vsctl) add-port br-int vx0 -- set interface vx0 type=vxlan options:remote_ip=10.0.98.1 options:key=5010",
            "\(vsctl) add-port br-int \(lab.prefix)ot -- set interface \(lab.prefix)ot type=tap",
            "for i in $(seq 50); do ip -n \(o) link show \(lab.prefix)ot >/dev/null 2>&1 && break; sleep 0.1; done",
            "ip -n \(o) link set \(lab.prefix)ot netns \(lab.name("oh"))",
            "ip -n \(lab.name("oh")) addr add 10.0.50.2/24 dev \(lab.prefix)ot && ip -n \(lab.name("oh")) link set \(lab.prefix)ot mtu 1450 up",
        ]
        for command in setup {
            let result = lab.sh(command)
            #expect(result.status == 0, "\(command): \(result.output)")
            if result.status != 0 { return }
        }
        try lab.start(topology: Self.oneTunnel(lab, local: "10.0.98.1", remotes: ["10.0.98.2"]))
        lab.address("h1", "10.0.50.1/24", mtu: 1450)
        let ping = lab.sh("ping -c 3 -i 0.2 -W 2 10.0.50.2", in: "h1")
        #expect(ping.status == 0, "h1 -> the host behind Open vSwitch: \(ping.output)\n\(lab.sh("tail -5 \(ovs)/vswitchd.log").output)")
        let back = lab.sh("ping -c 3 -i 0.2 -W 2 10.0.50.1", in: "oh")
        #expect(back.status == 0, "the host behind Open vSwitch -> h1: \(back.output)")
        guard lab_has("iperf3") else { return }
        let server = try lab.iperf3Server(in: "oh")
        usleep(300_000)
        let run = lab.sh("iperf3 -c 10.0.50.2 -p 5201 -t 2 -J", in: "h1")
        server.wait()
        #expect(run.status == 0, "iperf3 to the host behind Open vSwitch: \(run.output.prefix(300))")
    }
}
