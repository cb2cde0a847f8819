import TapestryWire
import Yams

#if canImport(Glibc)
import Glibc
#endif

/// `peers`, `mode` and `group` on socket ports.
extension TopologyValidator {
    static let socketAccessKeys = ["peers", "mode", "group"]

    /// The access settings of a port; nil when one of them is invalid (reported).
    mutating func socketAccess(
        _ fields: [String: YAMLReader.Entry], _ attachment: Topology.Port.Attachment?, what: String
    ) -> Topology.SocketAccess? {
        var access = Topology.SocketAccess()
        var valid = true
        var isTCP = false
        var isUnix = false
        if case .socket(let endpoint)? = attachment {
            if case .tcpStream = endpoint { isTCP = true } else { isUnix = true }
        }
        if let entry = fields["peers"] {
            if attachment == nil {
                valid = false
            } else if !isTCP {
                reader.error(entry.keyNode, "peers applies to TCP socket ports only (\(what) is not one)")
                valid = false
            } else if let peers = peerPrefixes(entry.value) {
                access.peers = peers
            } else {
                valid = false
            }
        }
        if let entry = fields["mode"] {
            if attachment == nil {
                valid = false
            } else if !isUnix {
                reader.error(entry.keyNode, "mode applies to unix socket ports only (\(what) is not one)")
                valid = false
            } else if let text = reader.string(entry.value, what: "mode") {
                if let mode = Self.socketMode(text) {
                    if mode & 0o600 != 0o600 {
                        reader.error(entry.value, "mode '\(text)' must let the switch's own user read and write (0600 at least)")
                        valid = false
                    } else {
                        access.mode = mode
                    }
                } else {
                    reader.error(entry.value, "mode '\(text)' must be octal permission bits from 0600 to 0777, written as text like \"0660\"")
                    valid = false
                }
            } else {
                valid = false
            }
        }
        if let entry = fields["group"] {
            if attachment == nil {
                valid = false
            } else if !isUnix {
                reader.error(entry.keyNode, "group applies to unix socket ports only (\(what) is not one)")
                valid = false
            } else if let name = reader.string(entry.value, what: "group") {
                if Self.groupExists(name) {
                    access.group = name
                } else {
                    reader.error(entry.value, "group '\(name)' does not exist on this machine")
                    valid = false
                }
            } else {
                valid = false
            }
        }
        return valid ? access : nil
    }

    private mutating func peerPrefixes(_ node: Node) -> [IPPrefix]? {
        guard let items = reader.sequence(node, what: "peers") else { return nil }
        if items.isEmpty {
            reader.error(node, "peers must list at least one address or CIDR (leave it out to accept any source)")
            return nil
        }
        var result: [IPPrefix] = []
        var valid = true
        for item in items {
            guard let text = reader.string(item, what: "a peers entry") else {
                valid = false
                continue
            }
            switch IPPrefix.parse(text) {
            case .success(let prefix): result.append(prefix)
            case .failure(.hostBitsSet):
                reader.error(item, "peers entry '\(text)' has bits set past its prefix length")
                valid = false
            case .failure(.badLength):
                reader.error(item, "peers entry '\(text)' has an invalid prefix length")
                valid = false
            case .failure(.badAddress):
                reader.error(item, "peers entry '\(text)' is not an IPv4 or IPv6 address or CIDR")
                valid = false
            }
        }
        return valid ? result : nil
    }

    /// One to four octal digits ("0660", "660"), at most 0777: no setuid, setgid or sticky bit,
    /// which mean nothing on a socket.
    static func socketMode(_ text: String) -> UInt16? {
        let digits = Array(text.utf8)
        guard (1...4).contains(digits.count), digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "7")).contains($0) }) else {
            return nil
        }
        let value = digits.reduce(0) { $0 * 8 + Int($1 - UInt8(ascii: "0")) }
        return value <= 0o777 ? UInt16(value) : nil
    }

    static func groupExists(_ name: String) -> Bool {
        var group = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let status = getgrnam_r(name, &group, &buffer, buffer.count, &result)
        return status == 0 && result != nil
    }
}
