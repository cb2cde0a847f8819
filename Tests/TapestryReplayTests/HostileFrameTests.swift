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
        FrameBuilder.ethernet(
            dst: MACAddress("02:00:00:00:00:02")!, src: MACAddress("02:00:00:00:00:01")!,
            tags: Array(repeating: .dot1q(10), count: tags), type: EtherType.ipv4,
            payload: FrameBuilder.ipv4(
                src: IPv4Address("10.0.10.1")!, dst: IPv4Address("10.0.10.2")!, proto: IPProtocol.udp,
                payload: [0x04, 0xD2, 0x27, 0x0F, 0, 13, 0, 0, 104, 101, 108, 108, 111]))
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
    /// with three tags the parser stops ("opaque L2"), the firewall passes the frame as not IP,
    /// and it leaves access port `a` with the outer tag removed: a double-tagged IPv4 datagram
    /// no rule allowed. The fix belongs to VLAN ingress or the parser (drop, or count as
    /// `vlan`, frames with more tags than the switch walks); when it lands, this known issue
    /// stops occurring and the test says so.
    @Test func threeTagsPassAFirewall() throws {
        let count = try outOfA(Self.udp(tags: 3))
        withKnownIssue("three VLAN tags bypass the firewall (VLAN ingress / FrameParser)") {
            #expect(count == 0)
        }
    }
}
