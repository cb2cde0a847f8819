import Foundation
import Testing
import TapestryDatapath
import TapestryPcap
import TapestryReplay
import TapestryTestSupport
import TapestryTopology
import TapestryWire

@Suite struct ReplayBehaviourTests {
    static let topology = try! TopologyLoader.parse(
        yaml: """
            name: pair
            mac_aging: 10
            networks: { lan: { vlan: 7 } }
            ports:
              a: { tap: ta, network: lan }
              b: { tap: tb, network: lan }
              c: { tap: tc, network: lan }
            """, file: "pair.yaml"
    ).get()

    static let hostA = MACAddress("02:00:00:00:00:0a")!
    static let hostB = MACAddress("02:00:00:00:00:0b")!

    func frame(_ src: MACAddress, _ dst: MACAddress, _ marker: UInt8) -> [UInt8] {
        FrameBuilder.udp4(
            dst: dst, src: src, from: IPv4Address("10.0.0.1")!, to: IPv4Address("10.0.0.2")!,
            payload: [UInt8](repeating: marker, count: 30))
    }

    func writeCapture(_ path: String, _ frames: [(Int64, [UInt8])]) throws {
        let writer = try PcapWriter(path: path)
        for (time, bytes) in frames { writer.write(bytes, timestampNanoseconds: time) }
        try writer.commit()
    }

    func outputs(_ directory: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
    }

    /// Frames from several inputs are merged by timestamp; ties go to the earlier --in; outputs
    /// carry the causing frame's timestamp; the clock is the capture's (aging happens in replay time).
    @Test func mergesByTimestampAndUsesCaptureTime() throws {
        let dir = Repository.temporaryDirectory("merge")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let second: Int64 = 1_000_000_000
        let base: Int64 = 1_700_000_000 * second
        try writeCapture(dir.appendingPathComponent("a.pcap").path, [
            (base, frame(Self.hostA, .broadcast, 1)),  // learn a
            (base + 5 * second, frame(Self.hostA, .broadcast, 3)),  // ties with b's frame 4: a's goes first
            (base + 30 * second, frame(Self.hostA, Self.hostB, 5)),  // b aged out (seen at +5): floods
        ])
        try writeCapture(dir.appendingPathComponent("b.pcap").path, [
            (base + 2 * second + 123, frame(Self.hostB, Self.hostA, 2)),  // a known: to a only
            (base + 5 * second, frame(Self.hostB, .broadcast, 4)),
        ])
        let out = dir.appendingPathComponent("out")
        let summary = try Replay(
            topology: Self.topology,
            inputs: [.init(port: "a", path: dir.appendingPathComponent("a.pcap").path),
                     .init(port: "b", path: dir.appendingPathComponent("b.pcap").path)],
            outputDirectory: out.path
        ).run()
        #expect(summary.framesIn == 5)
        let a = try PcapReader(path: out.appendingPathComponent("a.pcap").path).readAll()
        let b = try PcapReader(path: out.appendingPathComponent("b.pcap").path).readAll()
        let c = try PcapReader(path: out.appendingPathComponent("c.pcap").path).readAll()
        #expect(a.map(\.timestampNanoseconds) == [base + 2 * second + 123, base + 5 * second])
        #expect(a.map { $0.bytes.last } == [2, 4])
        #expect(b.map { $0.bytes.last } == [1, 3, 5], "+30 s: b aged out (seen at +5), so 5 flooded")
        #expect(c.map { $0.bytes.last } == [1, 3, 4, 5], "the tie went to the first --in")
        #expect(outputs(out) == ["a.pcap", "b.pcap", "c.pcap"], "one capture per port, no temporary files")
    }

    @Test func expectReportsTheFirstDifferingField() throws {
        let dir = Repository.temporaryDirectory("expect")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let time: Int64 = 1_700_000_000_000_000_000
        try writeCapture(dir.appendingPathComponent("in.pcap").path, [(time, frame(Self.hostA, .broadcast, 1))])
        let wrong = FrameBuilder.udp4(
            dst: .broadcast, src: Self.hostA, from: IPv4Address("10.0.0.1")!, to: IPv4Address("10.0.0.9")!,
            payload: [UInt8](repeating: 1, count: 30))
        try writeCapture(dir.appendingPathComponent("b.pcap").path, [(time, wrong)])
        try writeCapture(dir.appendingPathComponent("c.pcap").path, [])
        let summary = try Replay(
            topology: Self.topology, inputs: [.init(port: "a", path: dir.appendingPathComponent("in.pcap").path)],
            outputDirectory: dir.appendingPathComponent("out").path,
            expectations: [.init(port: "b", path: dir.appendingPathComponent("b.pcap").path),
                           .init(port: "c", path: dir.appendingPathComponent("c.pcap").path)]
        ).run()
        #expect(summary.differences.count == 2)
        #expect(summary.differences.first?.text == "port b, frame 1: field ipv4.dst: expected 10.0.0.9, got 10.0.0.2")
        #expect(summary.differences.first == ExpectDifference(
            port: "b", frame: 1, kind: .field, field: "ipv4.dst", expected: "10.0.0.9", actual: "10.0.0.2"))
        #expect(summary.differences.last?.text.hasPrefix("port c: unexpected frame 1: 02:00:00:00:00:0a > ff:ff:ff:ff:ff:ff UDP 10.0.0.1:") == true,
                "\(summary.differences.map(\.text))")
        #expect(summary.text.contains("expect: 2 differences"))
        #expect(summary.json.contains("\"kind\" : \"unexpected\""), "\(summary.json)")
    }

    /// `--expect` aligns by content: one frame missing from the output is reported once, as itself,
    /// and the frames after it still match; an extra frame likewise.
    @Test func expectAlignsByContent() {
        let a = IPv4Address("10.0.0.1")!
        let b = IPv4Address("10.0.0.2")!
        func tcp(_ flags: TCPFlags, _ payload: [UInt8] = [], dport: UInt16 = 80) -> [UInt8] {
            FrameBuilder.tcp4(dst: Self.hostB, src: Self.hostA, from: a, to: b, sport: 40000, dport: dport, flags: flags, payload: payload)
        }
        let conversation = [tcp(.syn), tcp([.syn, .ack]), tcp(.ack), tcp([.psh, .ack], [1]), tcp([.fin, .ack], [2])]
        let timed = conversation.enumerated().map { (Int64($0.offset), $0.element) }
        var lost = timed
        lost.remove(at: 1)
        let missing = Replay.compare(port: "db1", expected: timed, actual: lost)
        #expect(missing.map(\.text) == ["port db1: missing expected frame 2: 02:00:00:00:00:0a > 02:00:00:00:00:0b TCP 10.0.0.1:40000 > 10.0.0.2:80 flags SA, 60 bytes"])
        var extra = timed
        extra.insert((2, tcp(.rst)), at: 3)
        let unexpected = Replay.compare(port: "db1", expected: timed, actual: extra)
        #expect(unexpected.map(\.kind) == [.unexpected] && unexpected.first?.frame == 4, "\(unexpected.map(\.text))")
        #expect(unexpected.first?.text.hasSuffix("TCP 10.0.0.1:40000 > 10.0.0.2:80 flags R, 60 bytes") == true)
        // A frame changed in place is a field difference at its own number, not a missing and an extra.
        var changed = timed
        changed[3] = (3, tcp([.psh, .ack], [1], dport: 81))
        let field = Replay.compare(port: "db1", expected: timed, actual: changed)
        #expect(field == [ExpectDifference(port: "db1", frame: 4, kind: .field, field: "tcp.dport", expected: "80", actual: "81")],
                "\(field.map(\.text))")
    }

    /// Bad input: a clear error, and no output directory contents left behind.
    @Test func badInputsFailCleanly() throws {
        let dir = Repository.temporaryDirectory("bad")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.pcap").path
        try writeCapture(good, [(1, frame(Self.hostA, .broadcast, 1)), (2, frame(Self.hostA, .broadcast, 2))])

        // Truncated capture: cut the last record in half.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        let truncated = dir.appendingPathComponent("truncated.pcap").path
        try bytes.prefix(bytes.count - 20).write(to: URL(fileURLWithPath: truncated))
        // Not Ethernet: the same file with link type 101 (raw IP) in the global header.
        var raw = bytes
        raw[20] = 101
        let notEthernet = dir.appendingPathComponent("raw.pcap").path
        try raw.write(to: URL(fileURLWithPath: notEthernet))
        let garbage = dir.appendingPathComponent("garbage.pcap").path
        try Data("this is not a capture".utf8).write(to: URL(fileURLWithPath: garbage))

        let cases: [(String, Replay.Input, String)] = [
            ("missing", .init(port: "a", path: dir.appendingPathComponent("nope.pcap").path), "cannot read capture"),
            ("truncated", .init(port: "a", path: truncated), "damaged or truncated"),
            ("not ethernet", .init(port: "a", path: notEthernet), "link type RAW (12) is not Ethernet"),
            ("garbage", .init(port: "a", path: garbage), "cannot read capture"),
            ("unknown port", .init(port: "zz", path: good), "no port named 'zz'"),
        ]
        for (name, input, message) in cases {
            let out = dir.appendingPathComponent("out-\(name.replacingOccurrences(of: " ", with: "-"))")
            do {
                _ = try Replay(topology: Self.topology, inputs: [input], outputDirectory: out.path).run()
                Issue.record("\(name): replay should have failed")
            } catch {
                #expect("\(error)".contains(message), "\(name): \(error)")
            }
            #expect(outputs(out).isEmpty, "\(name): left \(outputs(out))")
        }
    }

    /// A frame the capture cut short (snap length) is not replayed: its missing bytes are unknown.
    @Test func snappedFramesAreCountedNotSent() throws {
        let dir = Repository.temporaryDirectory("snapped")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("a.pcap").path
        try writeCapture(path, [(1, frame(Self.hostA, .broadcast, 1))])
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[24 + 12] &+= 100  // the record's original length, little-endian: claim 100 more bytes on the wire
        try bytes.write(to: URL(fileURLWithPath: path))
        let summary = try Replay(
            topology: Self.topology, inputs: [.init(port: "a", path: path)],
            outputDirectory: dir.appendingPathComponent("out").path
        ).run()
        #expect(summary.framesOut == 0)
        #expect(summary.drops == [.captureTruncated: 1])
        // trace says what replay did (it used to run the partial frame through the pipeline).
        let trace = try Tracer(topology: Self.topology, inputs: [.init(port: "a", path: path)]).run()
        #expect(trace.contains("  dropped (capture-truncated): the capture holds"), "\(trace)")
        #expect(!trace.contains("flood"), "\(trace)")
    }

    /// Ports a and b in one network behind a firewall with `default: drop` and `rules` (lines
    /// indented by 4; the first rule is on line 9 of fw.yaml).
    static func firewall(rules: String) throws -> Topology {
        try TopologyLoader.parse(
            yaml: """
                name: fw
                networks: { lan: { vlan: 7 } }
                ports:
                  a: { tap: ta, network: lan }
                  b: { tap: tb, network: lan }
                firewall:
                  default: drop
                  rules:
                \(rules)
                """, file: "fw.yaml"
        ).get()
    }

    /// `trace` says which rule decided (as written, with FILE:LINE) and which kind of `invalid`
    /// it was, from what the stage recorded when it decided.
    @Test func traceNamesTheRuleAndTheKindOfInvalid() throws {
        let topology = try Self.firewall(rules: """
                - { action: allow, proto: tcp, dport: [80, 443] }
                - { action: drop, proto: udp, dport: 53 }
            """)
        let dir = Repository.temporaryDirectory("trace-causes")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("a.pcap").path
        let a = IPv4Address("10.0.0.1")!
        let b = IPv4Address("10.0.0.2")!
        try writeCapture(path, [
            (1, FrameBuilder.tcp4(dst: Self.hostB, src: Self.hostA, from: a, to: b, sport: 40000, dport: 80, flags: .syn)),
            (2, FrameBuilder.tcp4(dst: Self.hostB, src: Self.hostA, from: a, to: b, sport: 40001, dport: 80, flags: .ack)),
            (3, FrameBuilder.udp4(dst: Self.hostB, src: Self.hostA, from: a, to: b, dport: 53)),
            (4, FrameBuilder.tcp4(dst: Self.hostB, src: Self.hostA, from: a, to: b, sport: 40002, dport: 22, flags: .syn)),
            (5, FrameBuilder.tcp4(dst: Self.hostB, src: Self.hostA, from: a, to: b, sport: 40000, dport: 80, flags: [.fin, .ack])),
        ])
        let trace = try Tracer(topology: topology, inputs: [.init(port: "a", path: path)]).run()
        #expect(trace.contains("new, allowed by rule 1 (fw.yaml:9: action: allow, proto: tcp, dport: [80, 443])"), "\(trace)")
        #expect(trace.contains("dropped (invalid): TCP ACK without a connection (only a SYN opens one)"), "\(trace)")
        #expect(trace.contains("dropped (firewall): new connection; rule 2 (fw.yaml:10: action: drop, proto: udp, dport: 53) matched first"), "\(trace)")
        #expect(trace.contains("dropped (firewall): new connection; no rule matched and default is drop"), "\(trace)")
        #expect(trace.contains("dropped (invalid): TCP FIN+ACK does not fit its connection's state SYN_SENT"), "\(trace)")
    }

    /// Frames of one port with one timestamp share a batch in `trace` as in `replay`, and each
    /// frame's lines are what the stages recorded for that frame, not for the batch's first.
    @Test func traceExplainsEveryFrameOfABatch() throws {
        let topology = try Self.firewall(rules: """
                - { action: allow, proto: tcp, dport: [80, 443] }
                - { action: drop, proto: udp, dport: 53 }
            """)
        let dir = Repository.temporaryDirectory("trace-batch")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("a.pcap").path
        let a = IPv4Address("10.0.0.1")!
        let b = IPv4Address("10.0.0.2")!
        let syn = FrameBuilder.tcp4(dst: Self.hostB, src: Self.hostA, from: a, to: b, sport: 40000, dport: 80, flags: .syn)
        var badHeader = FrameBuilder.udp4(dst: Self.hostB, src: Self.hostA, from: a, to: b, dport: 5000)
        badHeader[14] = 0x44  // version 4, header length 4 words
        try writeCapture(path, [
            (1, syn), (1, syn),
            (1, FrameBuilder.udp4(dst: Self.hostB, src: Self.hostA, from: a, to: b, dport: 53)),
            (1, badHeader),
        ])
        let trace = try Tracer(topology: topology, inputs: [.init(port: "a", path: path)]).run()
        let frames = trace.components(separatedBy: "frame ").dropFirst().map { "frame " + $0 }
        try #require(frames.count == 4, "\(trace)")
        #expect(frames[0].contains("connection #0 (original direction): none -> SYN_SENT; new, allowed by rule 1"), "\(trace)")
        #expect(frames[0].contains("out b (untagged)") || frames[0].contains("-> flood"), "\(trace)")
        #expect(frames[1].contains("connection #0 (original direction): SYN_SENT -> SYN_SENT"), "\(trace)")
        #expect(!frames[1].contains("none ->"), "\(trace)")
        #expect(frames[2].contains("dropped (firewall): new connection; rule 2 (fw.yaml:10"), "\(trace)")
        #expect(!frames[2].contains("egress"), "\(trace)")
        #expect(frames[3].contains("dropped (invalid): IPv4 header length 4 is below 5"), "\(trace)")
    }

    /// `--drops`: every dropped frame, as it arrived, in a pcapng that libpcap and tshark read,
    /// with the stage, reason and cause as its comment.
    @Test func dropsAreWrittenWithTheirCause() throws {
        let topology = try Self.firewall(rules: "    - { action: allow, proto: tcp, dport: 80 }")
        let dir = Repository.temporaryDirectory("replay-drops")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("a.pcap").path
        let a = IPv4Address("10.0.0.1")!
        let b = IPv4Address("10.0.0.2")!
        var badHeader = FrameBuilder.udp4(dst: Self.hostB, src: Self.hostA, from: a, to: b, dport: 5000)
        badHeader[14] = 0x44
        let dropped = [
            FrameBuilder.tcp4(dst: Self.hostB, src: Self.hostA, from: a, to: b, sport: 40001, dport: 80, flags: .ack),
            FrameBuilder.udp4(dst: Self.hostB, src: Self.hostA, from: a, to: b, dport: 53),
            badHeader,
        ]
        try writeCapture(path, [
            (1, FrameBuilder.tcp4(dst: Self.hostB, src: Self.hostA, from: a, to: b, sport: 40000, dport: 80, flags: .syn)),
            (2, dropped[0]), (3, dropped[1]), (3, dropped[2]),
        ])
        let drops = dir.appendingPathComponent("drops.pcapng").path
        var replay = Replay(topology: topology, inputs: [.init(port: "a", path: path)], outputDirectory: dir.appendingPathComponent("out").path)
        replay.dropsPath = drops
        let summary = try replay.run()
        #expect(summary.drops == [.invalid: 2, .firewall: 1])
        let expected = [
            "port a: firewall: invalid: TCP ACK without a connection (only a SYN opens one)",
            "port a: firewall: firewall: new connection; no rule matched and default is drop",
            "port a: vlan: invalid: IPv4 header length 4 is below 5",
        ]
        #expect(try PcapngComments.read(drops) == expected)
        let reader = try PcapReader(path: drops)
        var frames: [(Int64, [UInt8])] = []
        while let record = try reader.next() { frames.append((record.timestampNanoseconds, Array(record.bytes))) }
        #expect(frames.map(\.1) == dropped, "the frames as they arrived")
        #expect(frames.map(\.0) == [2, 3, 3])
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tshark") else {
            print("skipping the tshark check of dropsAreWrittenWithTheirCause: /usr/bin/tshark is not installed (scripts/setup-debian.sh installs it)")
            return
        }
        let tshark = Process()
        tshark.executableURL = URL(fileURLWithPath: "/usr/bin/tshark")
        tshark.arguments = ["-r", drops, "-T", "fields", "-e", "frame.comment"]
        let output = Pipe()
        tshark.standardOutput = output
        tshark.standardError = FileHandle.nullDevice
        try tshark.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        tshark.waitUntilExit()
        #expect(tshark.terminationStatus == 0)
        #expect(text.split(separator: "\n").map(String.init) == expected, "\(text)")
    }

    /// The log's rate limit holds when capture times go back and forth: a rule's second only
    /// moves forward.
    @Test func theLogRateHoldsWhenTimeGoesBack() throws {
        let topology = try Self.firewall(rules: "    - { action: drop, proto: udp, dport: 53, log: true }")
        let dir = Repository.temporaryDirectory("log-rate")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("a.pcap").path
        let frames = (0..<20).map { index -> (Int64, [UInt8]) in
            (index % 2 == 0 ? 1_500_000_000 : 500_000_000,
             FrameBuilder.udp4(dst: Self.hostB, src: Self.hostA, from: IPv4Address("10.0.0.1")!, to: IPv4Address("10.0.0.2")!,
                sport: 1000 + UInt16(index), dport: 53))
        }
        try writeCapture(path, frames)
        let lines = LockedLines()
        var replay = Replay(topology: topology, inputs: [.init(port: "a", path: path)], outputDirectory: dir.appendingPathComponent("out").path)
        replay.log = { lines.append($0) }
        let summary = try replay.run()
        #expect(summary.drops == [.firewall: 20])
        let logged = lines.all
        #expect(logged.filter { $0.contains("firewall: drop udp") }.count == 10, "\(logged)")
        #expect(logged.last?.contains("firewall: 10 more connections decided by rule 1 (fw.yaml:9:") == true, "\(logged)")
    }

    @Test func summaryJSONIsMachineReadable() throws {
        let dir = Repository.temporaryDirectory("json")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var runt = frame(Self.hostA, .broadcast, 1)
        runt.removeLast(runt.count - 9)
        try writeCapture(dir.appendingPathComponent("a.pcap").path, [(1, frame(Self.hostA, .broadcast, 1)), (2, runt)])
        let summary = try Replay(
            topology: Self.topology, inputs: [.init(port: "a", path: dir.appendingPathComponent("a.pcap").path)],
            outputDirectory: dir.appendingPathComponent("out").path
        ).run()
        let object = try JSONSerialization.jsonObject(with: Data(summary.json.utf8)) as! [String: Any]
        #expect(object["frames_in"] as? Int == 2)
        #expect(object["frames_out"] as? Int == 2)
        #expect((object["drops"] as! [String: Int])["invalid"] == 1)
        #expect(((object["ports"] as! [String: Any])["a"] as! [String: Int])["frames_in"] == 2)
    }
}

/// Lines collected from a callback.
final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}

/// The frame comments of a pcapng file written on this machine (its byte order), in order.
enum PcapngComments {
    static func read(_ path: String) throws -> [String] {
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func u32(_ at: Int) -> Int { data.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: at, as: UInt32.self)) } }
        func u16(_ at: Int) -> Int { data.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: at, as: UInt16.self)) } }
        var comments: [String] = []
        var offset = 0
        while offset + 12 <= data.count {
            let type = u32(offset)
            let length = u32(offset + 4)
            guard length >= 12, offset + length <= data.count else { break }
            if type == 6 {
                let captured = u32(offset + 20)
                var option = offset + 28 + (captured + 3) / 4 * 4
                while option + 4 <= offset + length - 4 {
                    let code = u16(option)
                    let size = u16(option + 2)
                    if code == 0 { break }
                    if code == 1 { comments.append(String(decoding: data[(option + 4)..<(option + 4 + size)], as: UTF8.self)) }
                    option += 4 + (size + 3) / 4 * 4
                }
            }
            offset += length
        }
        return comments
    }
}

@Suite struct EthernetUnderlayTests {
    /// A vxlan port also replays an underlay capture taken on an Ethernet interface: each frame's
    /// IPv4 packet (behind its Ethernet header, or one 802.1Q tag) is what it takes. The scenario's
    /// raw-IPv4 input wrapped in Ethernet, half of it tagged, gives the same outputs byte for byte.
    @Test func aVXLANPortTakesAnEthernetUnderlayCapture() throws {
        let scenario = Repository.scenarios.appendingPathComponent("vxlan-tunnel")
        let dir = Repository.temporaryDirectory("ethernet-underlay")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let raw = try PcapReader(path: scenario.appendingPathComponent("in/dc2.pcap").path, linkType: .rawIPv4).readAll()
        #expect(raw.count == 9)
        let ethernet = raw.enumerated().map { index, record -> (Int64, [UInt8]) in
            let macs: [UInt8] = [2, 0, 0, 0, 0x99, 1, 2, 0, 0, 0, 0x99, 2]
            let tag: [UInt8] = index % 2 == 0 ? [] : [0x81, 0x00, 0x00, 0x07]
            return (record.timestampNanoseconds, macs + tag + [0x08, 0x00] + record.bytes)
        }
        let wrapped = dir.appendingPathComponent("dc2-ethernet.pcap").path
        let writer = try PcapWriter(path: wrapped)
        for (time, bytes) in ethernet { writer.write(bytes, timestampNanoseconds: time) }
        try writer.commit()
        let topology = try TopologyLoader.load(path: scenario.appendingPathComponent("topology.yaml").path).get()
        let inputs = ["a", "b"].map { Replay.Input(port: $0, path: scenario.appendingPathComponent("in/\($0).pcap").path) }
        let expectations = ["a", "b", "dc2"].map {
            Replay.Input(port: $0, path: scenario.appendingPathComponent("expect/\($0).pcap").path)
        }
        let summary = try Replay(
            topology: topology, inputs: inputs + [.init(port: "dc2", path: wrapped)],
            outputDirectory: dir.appendingPathComponent("out").path, expectations: expectations
        ).run()
        #expect(summary.differences == [], "\(summary.differences.map(\.text))")
        #expect(Dictionary(uniqueKeysWithValues: summary.drops.map { ($0.key.name, $0.value) }) == ["hairpin": 1, "oversize": 1, "tunnel": 4, "vlan": 1])
    }
}
