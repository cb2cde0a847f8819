import Foundation
import Testing
import TapestryPcap
import TapestryReplay
import TapestryTestSupport
import TapestryTopology
import TapestryWire

/// Frames that try to get past the firewall.
@Suite struct HostileFrameTests {
    static let topology = try! TopologyLoader.parse(
        yaml: """
            name: fw
            networks: { lan: { vlan: 10 } }
            ports:
              a: { tap: fa, network: lan }
              t: { tap: ft, trunk: [lan] }
            firewall:
              default: drop
              rules: []
            """, file: "fw.yaml"
    ).get()

    /// UDP 10.0.10.1 -> 10.0.10.2:9999 on the trunk with `tags` VLAN 10 tags.
    static func udp(tags: Int) -> [UInt8] {
        FrameBuilder.frame(
            dst: MACAddress("02:00:00:00:00:02")!, src: MACAddress("02:00:00:00:00:01")!,
            tags: Array(repeating: .dot1q(10), count: tags),
            FrameBuilder.ipv4(src: IPv4Address("10.0.10.1")!, dst: IPv4Address("10.0.10.2")!),
            FrameBuilder.udp(sport: 1234, dport: 9999), payload: Array("hello".utf8), pad: false)
    }

    func outOfA(_ frame: [UInt8]) throws -> Int {
        let dir = Repository.temporaryDirectory("tags-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.pcap").path
        let writer = try PcapWriter(path: path)
        writer.write(frame, timestampNanoseconds: 1_700_000_000_000_000_000)
        try writer.commit()
        let out = dir.appendingPathComponent("out")
        _ = try Replay(topology: Self.topology, inputs: [.init(port: "t", path: path)], outputDirectory: out.path).run()
        return try PcapReader(path: out.appendingPathComponent("a.pcap").path).readAll().count
    }

    @Test func oneOrTwoTagsAreFirewalled() throws {
        #expect(try outOfA(Self.udp(tags: 1)) == 0)
        #expect(try outOfA(Self.udp(tags: 2)) == 0)
    }

    /// Found by the datapath fuzzer (Fuzz/Regressions/datapath/three-tags-output-does-not-parse):
    /// with three tags the parser stops ("opaque L2") and the firewall used to pass the frame as
    /// not IP, out of access port `a` as a double-tagged IPv4 datagram no rule allowed. Under a
    /// firewall such frames are now dropped (`firewall`).
    @Test func threeTagsAreDroppedByTheFirewall() throws {
        #expect(try outOfA(Self.udp(tags: 3)) == 0)
    }
}
