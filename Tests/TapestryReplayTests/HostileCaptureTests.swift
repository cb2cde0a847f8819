import Foundation
import Testing
import TapestryPcap
import TapestryReplay
import TapestryTestSupport
import TapestryTopology
import TapestryWire

/// Capture files are untrusted (CONTRACT "Trust and bounds"): a timestamp nanoseconds in an
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
}
