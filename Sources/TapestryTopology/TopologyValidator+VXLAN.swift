import TapestryWire
import Yams

/// The `vxlan:` mapping of a port: `local`, `remotes`, `port`, `mtu`.
extension TopologyValidator {
    static let vxlanKeys = ["local", "remotes", "port", "mtu"]

    /// The tunnel, or nil when any of its fields is invalid (each reported at its place).
    mutating func vxlanTunnel(
        _ entry: YAMLReader.Entry, owner: String, netns: String, devices: inout [String: String]
    ) -> Topology.VXLANTunnel? {
        guard let fields = reader.entries(entry.value, what: "vxlan", allowed: Self.vxlanKeys) else { return nil }
        var valid = true
        var local: IPv4Address?
        if let localEntry = fields["local"] {
            local = unicastAddress(localEntry.value, what: "local")
            if local == nil { valid = false }
        } else {
            reader.error(entry.value, "vxlan needs 'local': the IPv4 address its UDP socket binds")
            valid = false
        }
        var remotes: [IPv4Address] = []
        if let remotesEntry = fields["remotes"] {
            if let items = reader.sequence(remotesEntry.value, what: "remotes") {
                if items.isEmpty {
                    reader.error(remotesEntry.value, "remotes must list at least one tunnel endpoint")
                    valid = false
                } else if items.count > Topology.VXLANTunnel.maxRemotes {
                    reader.error(
                        remotesEntry.value,
                        "remotes lists \(items.count) endpoints; at most \(Topology.VXLANTunnel.maxRemotes) are allowed")
                    valid = false
                }
                for item in items.prefix(Topology.VXLANTunnel.maxRemotes) {
                    guard let address = unicastAddress(item, what: "remote") else {
                        valid = false
                        continue
                    }
                    if address == local {
                        reader.error(item, "remote \(address) is the tunnel's own local address")
                        valid = false
                    } else if remotes.contains(address) {
                        reader.error(item, "remote \(address) is listed twice")
                        valid = false
                    } else {
                        remotes.append(address)
                    }
                }
            } else {
                valid = false
            }
        } else {
            reader.error(entry.value, "vxlan needs 'remotes': the list of tunnel endpoints it exchanges packets with")
            valid = false
        }
        var port = VXLAN.defaultPort
        if let portEntry = fields["port"] {
            if let value = reader.integer(portEntry.value, what: "port", range: 1...65_535) {
                port = UInt16(value)
            } else {
                valid = false
            }
        }
        var mtu = 1500
        if let mtuEntry = fields["mtu"] {
            let range = Topology.VXLANTunnel.mtuRange
            if let value = reader.integer(mtuEntry.value, what: "mtu", range: range) {
                mtu = value
            } else {
                valid = false
            }
        }
        guard valid, let local else { return nil }
        let socket = "vxlan:\(netns)/\(local):\(port)"
        if let other = devices[socket] {
            reader.error(
                entry.value,
                "\(local):\(port) is already the tunnel socket of port '\(other)'\(netns.isEmpty ? "" : " in netns '\(netns)'")")
            return nil
        }
        devices[socket] = owner
        return Topology.VXLANTunnel(local: local, remotes: remotes, port: port, mtu: mtu)
    }

    /// A unicast IPv4 address (a tunnel endpoint): not 0.0.0.0, multicast or broadcast.
    private mutating func unicastAddress(_ node: Node, what: String) -> IPv4Address? {
        guard let text = reader.string(node, what: what) else { return nil }
        guard let address = IPv4Address(text) else {
            reader.error(node, "\(what) must be an IPv4 address, not '\(text)'")
            return nil
        }
        let first = address.rawValue >> 24
        if address.rawValue == 0 || first >= 224 || first == 0 {
            reader.error(node, "\(what) \(address) is not a unicast address (multicast underlays are not supported)")
            return nil
        }
        return address
    }
}

extension Topology.Port.Attachment {
    /// Kinds whose device or socket can live in another network namespace (`netns`).
    public var takesNetns: Bool {
        switch self {
        case .tap, .vxlan: return true
        case .socket, .interface: return false
        }
    }
}
