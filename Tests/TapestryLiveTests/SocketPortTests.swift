import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Socket ports with test clients that speak QEMU's framing (`QEMUPeer`). These need no root:
/// run as root (CI), the switch itself runs as `nobody`, which shows a socket-only topology
/// needs no privileges; otherwise it runs as the calling user.
@Suite(.serialized) struct SocketPortTests {
    /// Frame equality that reports only lengths on failure (frames are long).
    func same(_ received: [UInt8]?, _ expected: [UInt8]) -> Bool {
        if received == expected { return true }
        print("frame differs: received \(received.map { "\($0.count) bytes" } ?? "nothing"), expected \(expected.count) bytes")
        return false
    }

    static let broadcast = "ff:ff:ff:ff:ff:ff"
    static let a = "02:00:00:00:00:0a", b = "02:00:00:00:00:0b", c = "02:00:00:00:00:0c"

    /// A lab directory the switch's user can write its sockets into.
    static func directory(_ lab: LiveLab) -> String {
        let path = "/tmp/\(lab.prefix)-sockets"
        try? FileManager.default.removeItem(atPath: path)
        mkdir(path, 0o755)
        if LiveLab.isRoot { chown(path, 65534, 65534) }
        return path
    }

    static func topology(_ directory: String, tcpPort: UInt16) -> String {
        """
        name: sockets
        control: \(directory)/control.sock
        networks:
          lan: { vlan: 10 }
        ports:
          s1: { socket: \(directory)/s1.sock, network: lan }
          s2: { socket: "dgram:\(directory)/s2.sock", network: lan }
          s3: { socket: "127.0.0.1:\(tcpPort)", network: lan }
        """
    }

    static func ctl(_ lab: LiveLab, _ directory: String, _ command: String) throws -> [String: Any] {
        let binary = try #require(LiveLab.binary).path
        let answer = lab.sh("\(binary) ctl --control \(directory)/control.sock --json \(command)")
        return try #require(try JSONSerialization.jsonObject(with: Data(answer.output.utf8)) as? [String: Any], "\(answer.output)")
    }

    static func states(_ lab: LiveLab, _ directory: String) throws -> [String: String] {
        let ports = try ctl(lab, directory, "show")["ports"] as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: ports.map { ($0["name"] as? String ?? "", $0["state"] as? String ?? "") })
    }

    static func drops(_ lab: LiveLab, _ directory: String, port: String) throws -> [String: Int] {
        let ports = try ctl(lab, directory, "stats")["ports"] as? [String: Any]
        return ((ports?[port] as? [String: Any])?["drops"] as? [String: Int]) ?? [:]
    }

    @Test func framesCrossStreamDatagramAndTCPPorts() throws {
        let lab = LiveLab()
        defer { lab.tearDown() }
        let directory = Self.directory(lab)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tcpPort = UInt16(20_000 + getpid() % 1000)
        try lab.start(topology: Self.topology(directory, tcpPort: tcpPort), user: "nobody")
        if LiveLab.isRoot {
            let owner = try FileManager.default.attributesOfItem(atPath: "\(directory)/s1.sock")[.ownerAccountID] as? Int
            #expect(owner == 65534, "the switch runs as nobody and still serves socket ports")
        }
        #expect(try Self.states(lab, directory) == ["s1": "down", "s2": "down", "s3": "down"], "down until a VM connects")

        let s1 = try QEMUPeer.stream(unix: "\(directory)/s1.sock")
        let s3 = try QEMUPeer.stream(tcpPort: tcpPort)
        let s2 = try QEMUPeer.datagram(local: "/tmp/\(lab.prefix)-qemu-s2.sock", remote: "\(directory)/s2.sock")
        usleep(200_000)
        // The datagram port comes up with its VM's first frame: a broadcast the others receive.
        let hello = QEMUPeer.frame(to: Self.broadcast, from: Self.b, length: 60, seed: 1)
        try s2.send(hello)
        #expect(same(s1.receive(), hello))
        #expect(same(s3.receive(), hello))
        #expect(try Self.states(lab, directory) == ["s1": "up", "s2": "up", "s3": "up"])

        // Unicast to the learned MAC, from the unix stream to the datagram port.
        let toB = QEMUPeer.frame(to: Self.b, from: Self.a, length: 1514, seed: 2)
        try s1.send(toB)
        #expect(same(s2.receive(), toB))
        // Several frames in one write, and one frame split over writes (TCP): all arrive whole,
        // in order, including a 9000-byte jumbo frame.
        let burst = (0..<5).map { QEMUPeer.frame(to: Self.b, from: Self.c, length: $0 == 2 ? 9000 : 100 + $0, seed: UInt8($0)) }
        let bytes = QEMUPeer.framed(burst)
        try s3.sendRaw(Array(bytes[0..<3]))
        usleep(50_000)
        try s3.sendRaw(Array(bytes[3..<700]))
        usleep(50_000)
        try s3.sendRaw(Array(bytes[700...]))
        for expected in burst { #expect(same(s2.receive(), expected)) }
        // Back from the datagram port to the TCP port (unicast to c, learned above).
        let toC = QEMUPeer.frame(to: Self.c, from: Self.b, length: 200, seed: 9)
        try s2.send(toC)
        #expect(same(s3.receive(), toC))
        #expect(s1.receive(timeout: 0.3) == nil, "a unicast goes only where its destination is")
        #expect(lab.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/s1.sock"), "socket files are removed on stop")
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/s2.sock"))
    }

    /// A peer that announces a frame too long for any port, one that stops in the middle of a
    /// frame, one that connects and vanishes: each loses its connection with a logged reason and
    /// the switch keeps serving the next VM.
    @Test func badPeersLoseTheirConnectionAndTheSwitchKeepsRunning() throws {
        let lab = LiveLab()
        defer { lab.tearDown() }
        let directory = Self.directory(lab)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tcpPort = UInt16(21_000 + getpid() % 1000)
        try lab.start(topology: Self.topology(directory, tcpPort: tcpPort), user: "nobody")
        let s2 = try QEMUPeer.datagram(local: "/tmp/\(lab.prefix)-qemu-s2.sock", remote: "\(directory)/s2.sock")
        try s2.send(QEMUPeer.frame(to: Self.broadcast, from: Self.b))

        let oversize = try QEMUPeer.stream(unix: "\(directory)/s1.sock")
        try oversize.sendRaw([0x00, 0x01, 0x00, 0x20] + [UInt8](repeating: 0, count: 32))  // 65,568 bytes announced
        #expect(oversize.closedBySwitch(), "the switch hangs up on a length over 65,553")

        let truncated = try QEMUPeer.stream(tcpPort: tcpPort)
        try truncated.sendRaw([0x00, 0x00, 0x00, 0x64] + [UInt8](repeating: 7, count: 20))  // 100 announced, 20 sent
        usleep(100_000)
        shutdown(truncated.fd, Int32(SHUT_WR))
        #expect(truncated.closedBySwitch())

        do {
            // Connects and vanishes: its descriptor is closed when it goes out of scope.
            let vanishing = try QEMUPeer.stream(unix: "\(directory)/s1.sock")
            usleep(100_000)
            _ = vanishing
        }
        let log = lab.log(containing: "port 's1' (socket \(directory)/s1.sock) is down: the peer closed the connection")
        #expect(log.contains("announced a 65568-byte frame, more than 65553"), "\(log)")
        #expect(log.contains("in the middle of a frame (24 of 104 bytes"), "\(log)")
        #expect(log.contains("port 's1' (socket \(directory)/s1.sock) is down: the peer closed the connection"), "\(log)")
        #expect(try Self.drops(lab, directory, port: "s1")["invalid"] == 1)
        #expect(try Self.drops(lab, directory, port: "s3")["invalid"] == 1)

        // Still switching: a new VM on s1 gets s2's frames.
        let s1 = try QEMUPeer.stream(unix: "\(directory)/s1.sock")
        usleep(100_000)
        let frame = QEMUPeer.frame(to: Self.broadcast, from: Self.b, seed: 3)
        try s2.send(frame)
        #expect(same(s1.receive(), frame))
        // A zero-length and a 10-byte frame are `invalid` drops; the connection stays.
        try s1.sendRaw(QEMUPeer.framed([[], [UInt8](repeating: 1, count: 10)]))
        let after = QEMUPeer.frame(to: Self.broadcast, from: Self.a, seed: 4)
        try s1.send(after)
        #expect(same(s2.receive(), after), "the connection survives runt frames")
        #expect(try Self.drops(lab, directory, port: "s1")["invalid"] == 3)
        #expect(lab.stop() == 0)
    }

    /// One VM per port: a second connection while a VM is connected is closed at once (logged,
    /// counted) and the first VM keeps the port; once it has gone, the next VM gets the port.
    /// While no VM is connected the port is down and frames for it are counted as `port-down`.
    @Test func secondConnectionIsRefusedAndTheFirstKeepsThePort() throws {
        let lab = LiveLab()
        defer { lab.tearDown() }
        let directory = Self.directory(lab)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tcpPort = UInt16(22_000 + getpid() % 1000)
        try lab.start(topology: Self.topology(directory, tcpPort: tcpPort), user: "nobody")
        let s2 = try QEMUPeer.datagram(local: "/tmp/\(lab.prefix)-qemu-s2.sock", remote: "\(directory)/s2.sock")
        try s2.send(QEMUPeer.frame(to: Self.broadcast, from: Self.b))
        usleep(100_000)
        #expect(try Self.drops(lab, directory, port: "s1")["port-down"] == 1, "the broadcast found s1 without a VM")

        let first = try QEMUPeer.stream(unix: "\(directory)/s1.sock")
        try first.send(QEMUPeer.frame(to: Self.broadcast, from: Self.a))
        #expect(s2.receive() != nil)
        let intruder = try QEMUPeer.stream(unix: "\(directory)/s1.sock")
        #expect(intruder.closedBySwitch(timeout: 1), "a second connection is closed at once")
        let tcpFirst = try QEMUPeer.stream(tcpPort: tcpPort)
        let tcpIntruder = try QEMUPeer.stream(tcpPort: tcpPort)
        #expect(tcpIntruder.closedBySwitch(timeout: 1), "likewise on a TCP port")
        let frame = QEMUPeer.frame(to: Self.a, from: Self.b, seed: 5)
        try s2.send(frame)
        #expect(same(first.receive(), frame), "the first VM keeps the port")
        let log = lab.log
        #expect(log.contains("port 's1' (socket \(directory)/s1.sock) refused a connection: a unix client connected while a unix client is: one VM per port"), "\(log)")
        #expect(log.contains("port 's3' (socket 127.0.0.1:\(tcpPort)) refused a connection: 127.0.0.1:"), "\(log)")
        #expect(!log.contains("replaces"), "nothing replaces a connected VM")
        let ports = try Self.ctl(lab, directory, "show")["ports"] as? [[String: Any]] ?? []
        let refused = Dictionary(uniqueKeysWithValues: ports.map { ($0["name"] as? String ?? "", $0["refused"] as? Int) })
        #expect(refused["s1"] == 1 && refused["s3"] == 1 && refused["s2"] == Optional<Int>.none, "\(ports)")
        _ = tcpFirst

        // The first VM goes away: the port goes down, and the next VM to connect gets it.
        shutdown(first.fd, Int32(SHUT_RDWR))
        usleep(200_000)
        #expect(try Self.states(lab, directory)["s1"] == "down")
        let second = try QEMUPeer.stream(unix: "\(directory)/s1.sock")
        usleep(100_000)
        #expect(try Self.states(lab, directory)["s1"] == "up")
        try second.send(QEMUPeer.frame(to: Self.broadcast, from: Self.a, seed: 8))
        #expect(s2.receive() != nil, "the next VM's frames cross")

        // The datagram VM restarts: its old socket goes away, the new one (a new path) is heard
        // at once, with nothing sent to the old one in between, and answered.
        do {
            let restarted = try QEMUPeer.datagram(local: "/tmp/\(lab.prefix)-qemu-s2b.sock", remote: "\(directory)/s2.sock")
            let hello = QEMUPeer.frame(to: Self.broadcast, from: Self.b, seed: 6)
            try restarted.send(hello)
            #expect(same(second.receive(), hello), "the restarted VM's first frame crosses")
            let reply = QEMUPeer.frame(to: Self.b, from: Self.a, seed: 7)
            try second.send(reply)
            #expect(same(restarted.receive(), reply), "and the answer goes to its new socket")
            #expect(lab.log.contains("a new socket: the VM restarted"), "\(lab.log)")
        }
        shutdown(second.fd, Int32(SHUT_RDWR))
        usleep(200_000)
        #expect(try Self.states(lab, directory)["s1"] == "down")
        #expect(lab.stop() == 0)
    }

    /// Run by an ordinary user, a topology without `control:` gets its control socket in that
    /// user's directory (/tmp/tapestry-UID without XDG_RUNTIME_DIR), and `ctl` finds it there.
    @Test func ordinaryUserGetsAControlDirectoryOfItsOwn() throws {
        guard LiveLab.isRoot else {
            print("skipping ordinaryUserGetsAControlDirectoryOfItsOwn: needs root to become nobody")
            return
        }
        let lab = LiveLab()
        defer { lab.tearDown() }
        let directory = Self.directory(lab)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let name = "u\(lab.prefix)"
        try lab.start(
            topology: """
                name: \(name)
                networks: { lan: { vlan: 10 } }
                ports:
                  vm1: { socket: \(directory)/vm1.sock, network: lan }
                """, user: "nobody")
        let control = "/tmp/tapestry-65534/\(name).sock"
        let attributes = try FileManager.default.attributesOfItem(atPath: "/tmp/tapestry-65534")
        #expect(attributes[.posixPermissions] as? Int == 0o700 && attributes[.ownerAccountID] as? Int == 65534)
        #expect(FileManager.default.fileExists(atPath: control), "\(lab.log)")
        let binary = try #require(LiveLab.binary).path
        let show = lab.sh("setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env \(binary) ctl show")
        #expect(show.status == 0 && show.output.contains("switch '\(name)'"), "\(show.output)")
        #expect(lab.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: control))
    }

    /// Random bytes on the stream and datagram ports (lengths of every size, frames cut anywhere):
    /// connections end or frames are dropped, the switch keeps serving.
    @Test func randomBytesNeverBringTheSwitchDown() throws {
        let lab = LiveLab()
        defer { lab.tearDown() }
        let directory = Self.directory(lab)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tcpPort = UInt16(23_000 + getpid() % 1000)
        try lab.start(topology: Self.topology(directory, tcpPort: tcpPort), user: "nobody")
        var state: UInt64 = 0x7A9E_5717
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        for round in 0..<30 {
            let count = Int(next() % 70_000) + 1
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
            // Every third round announces a plausible length, so real frames of random content flow.
            if round % 3 == 0 { bytes = QEMUPeer.framed([Array(bytes.prefix(Int(next() % 1500) + 1))]) + bytes }
            let peer = round % 2 == 0 ? try QEMUPeer.stream(unix: "\(directory)/s1.sock") : try QEMUPeer.stream(tcpPort: tcpPort)
            try? peer.sendRaw(bytes)
            let datagrams = try QEMUPeer.datagram(local: "/tmp/\(lab.prefix)-qemu-r.sock", remote: "\(directory)/s2.sock")
            try? datagrams.send(Array(bytes.prefix(Int(next() % 66_000))))
        }
        usleep(300_000)
        let s1 = try QEMUPeer.stream(unix: "\(directory)/s1.sock")
        let s2 = try QEMUPeer.datagram(local: "/tmp/\(lab.prefix)-qemu-s2.sock", remote: "\(directory)/s2.sock")
        let frame = QEMUPeer.frame(to: Self.broadcast, from: Self.b, seed: 11)
        try s2.send(frame)
        #expect(same(s1.receive(), frame), "still switching after 30 rounds of random input")
        #expect(try Self.states(lab, directory)["s1"] == "up")
        #expect(lab.stop() == 0, "the switch was alive to stop: \(lab.log.suffix(2000))")
    }

    /// The access keys: a unix socket's file gets its `mode` and `group`, 0600 by default even
    /// under umask 000 (the control socket too); a TCP port refuses sources outside `peers`
    /// (logged, counted) and keeps its connections alive with TCP keepalive.
    @Test func accessKeysGuardTheSocketPorts() throws {
        let lab = LiveLab()
        defer { lab.tearDown() }
        let directory = Self.directory(lab)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tcpPort = UInt16(24_000 + getpid() % 1000)
        // Run as nobody (its group is nogroup), a member of the group it gives s1 to.
        let group = LiveLab.isRoot ? "nogroup" : String(cString: getgrgid(getgid()).pointee.gr_name)
        try lab.start(
            topology: """
                name: access
                control: \(directory)/control.sock
                networks:
                  lan: { vlan: 10 }
                ports:
                  s1: { socket: \(directory)/s1.sock, network: lan, mode: "0660", group: \(group) }
                  s2: { socket: "dgram:\(directory)/s2.sock", network: lan }
                  s3: { socket: "127.0.0.1:\(tcpPort)", network: lan, peers: [10.9.9.0/24, "fd00::/8"] }
                  s4: { socket: "127.0.0.1:\(tcpPort + 1)", network: lan, peers: [127.0.0.0/8] }
                  s5: { socket: \(directory)/s5.sock, network: lan }
                """, user: "nobody", umask: "000")
        func mode(_ name: String) throws -> Int {
            try #require(FileManager.default.attributesOfItem(atPath: "\(directory)/\(name)")[.posixPermissions] as? Int)
        }
        #expect(try mode("s1.sock") == 0o660)
        #expect(try mode("s2.sock") == 0o600, "a datagram port's file is private by default")
        #expect(try mode("s5.sock") == 0o600, "umask 000 does not open a socket without `mode`")
        #expect(try mode("control.sock") == 0o600)
        if LiveLab.isRoot {
            let gid = try FileManager.default.attributesOfItem(atPath: "\(directory)/s1.sock")[.groupOwnerAccountID] as? Int
            #expect(gid == 65534, "s1's file belongs to group nogroup")
        }

        let outsider = try QEMUPeer.stream(tcpPort: tcpPort)
        #expect(outsider.closedBySwitch(timeout: 1), "127.0.0.1 is outside s3's peers")
        let allowed = try QEMUPeer.stream(tcpPort: tcpPort + 1)
        #expect(!allowed.closedBySwitch(timeout: 0.3), "127.0.0.1 is inside s4's peers")
        usleep(100_000)
        #expect(try Self.states(lab, directory)["s4"] == "up" && Self.states(lab, directory)["s3"] == "down")
        #expect(lab.log.contains("port 's3' (socket 127.0.0.1:\(tcpPort)) refused a connection: 127.0.0.1:"), "\(lab.log)")
        #expect(lab.log.contains("is not in the port's peers (10.9.9.0/24, fd00::/8)"), "\(lab.log)")
        let ports = try Self.ctl(lab, directory, "show")["ports"] as? [[String: Any]] ?? []
        #expect(ports.first { $0["name"] as? String == "s3" }?["refused"] as? Int == 1, "\(ports)")

        // The switch's end of s4's connection runs the keepalive timer (idle 15 s before probes).
        let sockets = lab.sh("ss -tnoH state established '( sport = :\(tcpPort + 1) )'").output
        #expect(sockets.contains("timer:(keepalive,"), "\(sockets)")
        if let range = sockets.range(of: #"keepalive,(\d+)"#, options: .regularExpression) {
            let seconds = Int(sockets[range].dropFirst("keepalive,".count)) ?? 99
            #expect(seconds <= 15, "\(sockets)")
        }
        #expect(lab.stop() == 0)
    }
}
