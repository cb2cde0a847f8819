import Foundation
import Testing
import TapestryPcap
import TapestryReplay
import TapestryTestSupport
import TapestryTopology
import TapestryWire

/// Capture files are untrusted (docs/security.md): a timestamp nanoseconds in an
/// Int64 cannot hold is an error naming the file and frame, and timestamps before 1970 (a pcapng
/// `if_tsoffset`) replay and trace without trapping.
@Suite struct HostileCaptureTests {
    static let topology = try! TopologyLoader.parse(
        yaml: """
            name: two
            networks: { lan: { vlan: 7 } }
            ports:
              a: { tap: ta, network: lan }
              b: { tap: tb, network: lan }
            """, file: "two.yaml"
    ).get()

    static let frame = FrameBuilder.udp4(
        dst: .broadcast, src: MACAddress("02:00:00:00:00:0a")!, from: IPv4Address("10.0.0.1")!,
        to: IPv4Address("10.0.0.2")!, payload: [1, 2, 3])

    func write(_ builder: PcapNGBuilder, _ name: String) throws -> (URL, String) {
        let dir = Repository.temporaryDirectory(name)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("in.pcapng").path
        try Data(builder.bytes).write(to: URL(fileURLWithPath: path))
        return (dir, path)
    }

    /// Frame 2 is stamped 2^64 - 1 ns after 1970 (year 2554). This trapped at
    /// `tv_sec * 1_000_000_000` in PcapReader.
    @Test func aTimestampAfter2262IsAnErrorNamingFileAndFrame() throws {
        var builder = PcapNGBuilder()
        builder.interface()
        builder.packet(timestamp: 1_700_000_000_000_000_000, Self.frame)
        builder.packet(timestamp: UInt64.max, Self.frame)
        let (dir, path) = try write(builder, "y2262")
        defer { try? FileManager.default.removeItem(at: dir) }
        let reader = try PcapReader(path: path)
        #expect(try reader.next()?.timestampNanoseconds == 1_700_000_000_000_000_000)
        #expect(throws: PcapError(.timestampOutOfRange(frame: 2), path: path, detail: "18446744073 s + 709551615 ns")) {
            try reader.next()
        }
        let error = PcapError(.timestampOutOfRange(frame: 2), path: path, detail: "18446744073 s + 709551615 ns")
        #expect(error.description.hasPrefix("\(path): frame 2: timestamp"))

        // replay and trace stop with that error and write nothing.
        let out = dir.appendingPathComponent("out")
        #expect(throws: ReplayError.capture(error)) {
            try Replay(topology: Self.topology, inputs: [.init(port: "a", path: path)], outputDirectory: out.path).run()
        }
        #expect(!FileManager.default.fileExists(atPath: out.path))
        #expect(throws: ReplayError.capture(error)) {
            try Tracer(topology: Self.topology, inputs: [.init(port: "a", path: path)]).run()
        }
    }

    /// An interface whose if_tsoffset puts its frames before 1970. `trace` trapped rendering the
    /// negative time (`Timestamp.description` builds a padding of 9 - 10 characters).
    @Test func timestampsBefore1970TraceAndReplay() throws {
        var builder = PcapNGBuilder()
        builder.interface(offsetSeconds: -2_000_000_000)
        builder.packet(timestamp: 123_456_789, Self.frame)  // 1906-08-16, and a fraction of 0.123456789
        builder.packet(timestamp: 1_000_000_000, Self.frame)
        let (dir, path) = try write(builder, "before1970")
        defer { try? FileManager.default.removeItem(at: dir) }
        let frames = try PcapReader(path: path).readAll()
        #expect(frames.map(\.timestampNanoseconds) == [-1_999_999_999_876_543_211, -1_999_999_999_000_000_000])

        let trace = try Tracer(topology: Self.topology, inputs: [.init(port: "a", path: path)]).run()
        #expect(trace.contains("frame 1: port a, t=-1999999999.876543211,"), "\(trace)")
        #expect(trace.contains("frame 2: port a, t=-1999999999.000000000,"), "\(trace)")

        let out = dir.appendingPathComponent("out")
        let summary = try Replay(topology: Self.topology, inputs: [.init(port: "a", path: path)], outputDirectory: out.path).run()
        #expect(summary.framesIn == 2)
        // The writer stores the time as a floor second and a positive fraction, so it reads back
        // as it went in (within a classic pcap's 32-bit seconds).
        let flooded = try PcapReader(path: out.appendingPathComponent("b.pcap").path).readAll()
        #expect(flooded.map(\.timestampNanoseconds) == frames.map(\.timestampNanoseconds))
    }

    @Test func renderingCoversTheWholeRange() {
        #expect(Replay.seconds(0) == "0.000000000")
        #expect(Replay.seconds(1_700_000_000_000_000_001) == "1700000000.000000001")
        #expect(Replay.seconds(-1) == "-0.000000001")
        #expect(Replay.seconds(-1_500_000_000) == "-1.500000000")
        #expect(Replay.seconds(Int64.min) == "-9223372036.854775808")
        #expect(Replay.seconds(Int64.max) == "9223372036.854775807")
    }

    /// The reader keeps capture times within 2^62 ns of 1970 (1824 to 2116), so that the
    /// datapath's clock arithmetic has room for its timeouts.
    @Test func timestampsOutsideTheLimitAreErrors() throws {
        let limit = UInt64(PcapReader.timestampLimit)
        var builder = PcapNGBuilder()
        builder.interface()
        builder.packet(timestamp: limit - 1, Self.frame)
        builder.packet(timestamp: limit, Self.frame)
        let (dir, path) = try write(builder, "limit")
        defer { try? FileManager.default.removeItem(at: dir) }
        let reader = try PcapReader(path: path)
        #expect(try reader.next()?.timestampNanoseconds == PcapReader.timestampLimit - 1)
        #expect(throws: PcapError(.timestampOutOfRange(frame: 2), path: path, detail: "4611686018 s + 427387904 ns")) {
            try reader.next()
        }

        var before = PcapNGBuilder()
        before.interface(offsetSeconds: -4_611_686_019)  // 1823
        before.packet(timestamp: 0, Self.frame)
        let (dir2, early) = try write(before, "limit-early")
        defer { try? FileManager.default.removeItem(at: dir2) }
        #expect(throws: PcapError(.timestampOutOfRange(frame: 1), path: early, detail: "-4611686019 s + 0 ns")) {
            try PcapReader(path: early).next()
        }
    }

    /// A first fragment stamped 2262-04-11 (Int64.max ns) trapped replay at FirewallStage's
    /// `now + fragmentTimeout` (found by the datapath fuzzer); the reader now refuses the time,
    /// and a fragment at the very end of the accepted range replays.
    @Test func aFirstFragmentAtTheEndOfTimeDoesNotTrap() throws {
        let topology = try TopologyLoader.parse(
            yaml: """
                name: fragments
                networks: { lan: { vlan: 10 } }
                ports:
                  c: { tap: fc, network: lan }
                  s: { tap: fs, network: lan }
                firewall:
                  default: drop
                  rules:
                    - { action: allow, proto: udp, dport: 5000 }
                """, file: "fragments.yaml"
        ).get()
        // UDP 10.0.1.1:4000 -> 10.0.1.2:5000, more fragments set, its UDP length covering more.
        var ip: [UInt8] = [0x45, 0, 0, 68, 0, 7, 0x20, 0, 64, 17, 0, 0, 10, 0, 1, 1, 10, 0, 1, 2]
        let header = InternetChecksum.fold(ip.withUnsafeBytes { InternetChecksum.sum($0) })
        ip[10] = UInt8(header >> 8)
        ip[11] = UInt8(header & 0xFF)
        let udp: [UInt8] = [0x0F, 0xA0, 0x13, 0x88, 0, 148, 0, 0] + [UInt8](repeating: 0, count: 40)
        let fragment = FrameBuilder.ethernet(
            dst: MACAddress("02:00:00:00:00:0b")!, src: MACAddress("02:00:00:00:00:0a")!, type: EtherType.ipv4,
            payload: ip + udp)
        for (stamp, replays) in [(UInt64(Int64.max), false), (UInt64(PcapReader.timestampLimit - 1), true)] {
            var builder = PcapNGBuilder()
            builder.interface()
            builder.packet(timestamp: stamp, fragment)
            let (dir, path) = try write(builder, "fragment-\(replays)")
            defer { try? FileManager.default.removeItem(at: dir) }
            let out = dir.appendingPathComponent("out").path
            let replay = Replay(topology: topology, inputs: [.init(port: "c", path: path)], outputDirectory: out)
            if replays {
                let summary = try replay.run()
                #expect(summary.framesIn == 1 && summary.framesOut == 1, "\(summary)")
            } else {
                #expect(throws: ReplayError.self) { try replay.run() }
            }
        }
    }
}
