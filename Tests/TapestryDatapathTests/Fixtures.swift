import TapestryTestSupport
import TapestryWire

/// Hosts used across the datapath tests.
enum Host {
    static let a = MACAddress("02:00:00:00:00:0a")!
    static let b = MACAddress("02:00:00:00:00:0b")!
    static let c = MACAddress("02:00:00:00:00:0c")!
    static let d = MACAddress("02:00:00:00:00:0d")!
    static let ipA = IPv4Address("10.0.10.1")!
    static let ipB = IPv4Address("10.0.10.2")!
    static let ipC = IPv4Address("10.0.10.3")!
}

/// Web (VLAN 10) and db (VLAN 20): access ports w1, w2 in web, d1 in db; trunk `up` carries both
/// with web native; trunk `t2` carries web and db without native.
let twoNetworks = """
    name: lab
    mac_aging: 60
    networks:
      web: { vlan: 10 }
      db: { vlan: 20 }
    ports:
      w1: { tap: tw1, network: web }
      w2: { tap: tw2, network: web }
      d1: { tap: td1, network: db }
      up: { tap: tup, trunk: [web, db], native: web }
      t2: { tap: tt2, trunk: [web, db] }
    """

/// A UDP frame long enough (72 bytes untagged) that padding to the 60-byte minimum never blurs
/// what a tag push or pop did.
func udp(_ src: MACAddress, _ dst: MACAddress, tags: [FrameBuilder.Tag] = []) -> [UInt8] {
    FrameBuilder.udp4(
        dst: dst, src: src, from: Host.ipA, to: Host.ipB, payload: Array("a payload of thirty bytes long".utf8),
        tags: tags)
}

/// The frame as it should leave a port: the same bytes with the tags replaced.
func retagged(_ src: MACAddress, _ dst: MACAddress, _ tags: [FrameBuilder.Tag]) -> [UInt8] { udp(src, dst, tags: tags) }
