import Foundation

/// The control protocol's answers, typed: the switch encodes one of these as the JSON document
/// it sends back, `ctl` decodes the one its request expects and renders it (`ControlRender`).
/// Keys are the JSON's (snake_case), so `ctl --json` and scripts see what they always saw.
public enum ControlAnswer {
    /// `{"ok": false, "error": ..., "usage": true}`: the request was refused; `usage` when the
    /// request itself was wrong (ctl exits 64).
    public struct Failure: Codable, Sendable, Equatable {
        public var ok = false
        public var error: String
        public var usage: Bool?
        public init(error: String, usage: Bool? = nil) {
            self.error = error
            self.usage = usage
        }
    }

    /// The part every successful answer has.
    public struct Head: Codable, Sendable, Equatable {
        public var ok: Bool
        public var error: String?
        public var usage: Bool?
    }

    public struct Show: Codable, Sendable, Equatable {
        public struct Port: Codable, Sendable, Equatable {
            public var name: String
            public var kind: String
            public var device: String
            public var mode: String
            public var netns: String
            public var state: String
            public var peer: String
            public var framesIn: UInt64
            public var framesOut: UInt64
            public var bytesIn: UInt64
            public var bytesOut: UInt64
            public var drops: UInt64
            /// Stream socket ports: connections refused (a second VM, a source outside `peers`).
            public var refused: UInt64?
            /// VXLAN ports: each remote's inner frames and bytes, and copies the socket refused.
            public var remotes: [Remote]?
            /// VXLAN ports: the local UDP ports frames leave from (one per flow hash bucket).
            public var sourcePorts: [UInt16]?

            public init(
                name: String, kind: String, device: String, mode: String, netns: String, state: String, peer: String,
                framesIn: UInt64, framesOut: UInt64, bytesIn: UInt64, bytesOut: UInt64, drops: UInt64, refused: UInt64?
            ) {
                self.name = name
                self.kind = kind
                self.device = device
                self.mode = mode
                self.netns = netns
                self.state = state
                self.peer = peer
                self.framesIn = framesIn
                self.framesOut = framesOut
                self.bytesIn = bytesIn
                self.bytesOut = bytesOut
                self.drops = drops
                self.refused = refused
            }

            enum CodingKeys: String, CodingKey {
                case name, kind, device, mode, netns, state, peer, drops, refused, remotes
                case framesIn = "frames_in", framesOut = "frames_out", bytesIn = "bytes_in", bytesOut = "bytes_out"
                case sourcePorts = "source_ports"
            }
        }

        public struct Remote: Codable, Sendable, Equatable {
            public var address: String
            public var framesIn: UInt64
            public var framesOut: UInt64
            public var bytesIn: UInt64
            public var bytesOut: UInt64
            public var sendFailures: UInt64
            public init(address: String, framesIn: UInt64, framesOut: UInt64, bytesIn: UInt64, bytesOut: UInt64, sendFailures: UInt64) {
                self.address = address
                self.framesIn = framesIn
                self.framesOut = framesOut
                self.bytesIn = bytesIn
                self.bytesOut = bytesOut
                self.sendFailures = sendFailures
            }
            enum CodingKeys: String, CodingKey {
                case address
                case framesIn = "frames_in", framesOut = "frames_out", bytesIn = "bytes_in", bytesOut = "bytes_out"
                case sendFailures = "send_failures"
            }
        }

        public var ok = true
        public var `switch`: String
        public var ports: [Port]
        public init(switch name: String, ports: [Port]) {
            self.switch = name
            self.ports = ports
        }
    }

    public struct FDB: Codable, Sendable, Equatable {
        public struct Entry: Codable, Sendable, Equatable {
            public var network: String
            public var vlan: UInt16
            public var mac: String
            public var port: String
            public var ageSeconds: Double
            /// On a VXLAN port: the remote the MAC is behind.
            public var remote: String?
            public init(network: String, vlan: UInt16, mac: String, port: String, ageSeconds: Double, remote: String? = nil) {
                self.network = network
                self.vlan = vlan
                self.mac = mac
                self.port = port
                self.ageSeconds = ageSeconds
                self.remote = remote
            }
            enum CodingKeys: String, CodingKey {
                case network, vlan, mac, port, remote
                case ageSeconds = "age_seconds"
            }
        }

        public var ok = true
        public var `switch`: String
        public var entries: [Entry]
        public var capacity: Int
        public var agingSeconds: Int
        public init(switch name: String, entries: [Entry], capacity: Int, agingSeconds: Int) {
            self.switch = name
            self.entries = entries
            self.capacity = capacity
            self.agingSeconds = agingSeconds
        }
        enum CodingKeys: String, CodingKey {
            case ok, `switch`, entries, capacity
            case agingSeconds = "aging_seconds"
        }
    }

    /// `conntrack`: streamed by the switch (the head, then rows as the table is read, then
    /// `complete`), decoded whole by `ctl`.
    public struct Conntrack: Codable, Sendable, Equatable {
        public struct Connection: Codable, Sendable, Equatable {
            public var id: Int
            public var network: String
            public var proto: String
            public var source: String
            public var sourcePort: UInt16
            public var destination: String
            public var destinationPort: UInt16
            public var state: String
            public var ageSeconds: Double
            public var expiresInSeconds: Double
            public var packetsOriginal: UInt64
            public var packetsReply: UInt64
            public var bytesOriginal: UInt64
            public var bytesReply: UInt64
            /// The rule that allowed it: its number, or `default`.
            public var rule: String
            public var loadBalancer: String?
            public var backend: String?

            public init(
                id: Int, network: String, proto: String, source: String, sourcePort: UInt16, destination: String,
                destinationPort: UInt16, state: String, ageSeconds: Double, expiresInSeconds: Double,
                packetsOriginal: UInt64, packetsReply: UInt64, bytesOriginal: UInt64, bytesReply: UInt64, rule: String,
                loadBalancer: String? = nil, backend: String? = nil
            ) {
                self.id = id
                self.network = network
                self.proto = proto
                self.source = source
                self.sourcePort = sourcePort
                self.destination = destination
                self.destinationPort = destinationPort
                self.state = state
                self.ageSeconds = ageSeconds
                self.expiresInSeconds = expiresInSeconds
                self.packetsOriginal = packetsOriginal
                self.packetsReply = packetsReply
                self.bytesOriginal = bytesOriginal
                self.bytesReply = bytesReply
                self.rule = rule
                self.loadBalancer = loadBalancer
                self.backend = backend
            }

            enum CodingKeys: String, CodingKey {
                case id, network, proto, source, destination, state, rule, backend
                case sourcePort = "source_port", destinationPort = "destination_port", ageSeconds = "age_seconds"
                case expiresInSeconds = "expires_in_seconds", packetsOriginal = "packets_original"
                case packetsReply = "packets_reply", bytesOriginal = "bytes_original", bytesReply = "bytes_reply"
                case loadBalancer = "load_balancer"
            }
        }

        public var ok = true
        public var `switch`: String
        /// False without a firewall or load balancer (nothing is tracked).
        public var tracking: Bool
        public var capacity: Int?
        public var count: Int?
        public var connections: [Connection]
        /// False when a reload cut the listing short (`note` says so).
        public var complete: Bool?
        public var note: String?

        public init(switch name: String, tracking: Bool, capacity: Int?, count: Int?, connections: [Connection]) {
            self.switch = name
            self.tracking = tracking
            self.capacity = capacity
            self.count = count
            self.connections = connections
        }
    }

    public struct Balancers: Codable, Sendable, Equatable {
        public struct Backend: Codable, Sendable, Equatable {
            public var address: String
            public var weight: Int
            public var connections: UInt64
            public var drained: Bool
            public var mac: String
            /// "up" or "down" by its health checks, "unchecked" without `health:`; when that last
            /// changed (seconds since 1970), nil when never.
            public var health: String
            public var healthChanged: Double?
            public init(
                address: String, weight: Int, connections: UInt64, drained: Bool, mac: String, health: String = "unchecked",
                healthChanged: Double? = nil
            ) {
                self.address = address
                self.weight = weight
                self.connections = connections
                self.drained = drained
                self.mac = mac
                self.health = health
                self.healthChanged = healthChanged
            }
            enum CodingKeys: String, CodingKey {
                case address, weight, connections, drained, mac, health
                case healthChanged = "health_changed"
            }
        }
        public struct Balancer: Codable, Sendable, Equatable {
            public var name: String
            public var vip: String
            public var port: UInt16
            public var proto: String
            public var mac: String
            public var backends: [Backend]
            public init(name: String, vip: String, port: UInt16, proto: String, mac: String, backends: [Backend]) {
                self.name = name
                self.vip = vip
                self.port = port
                self.proto = proto
                self.mac = mac
                self.backends = backends
            }
        }

        public var ok = true
        public var `switch`: String
        public var loadBalancers: [Balancer]
        public init(switch name: String, loadBalancers: [Balancer]) {
            self.switch = name
            self.loadBalancers = loadBalancers
        }
        enum CodingKeys: String, CodingKey {
            case ok, `switch`
            case loadBalancers = "load_balancers"
        }
    }

    public struct Stats: Codable, Sendable, Equatable {
        public struct Port: Codable, Sendable, Equatable {
            public var framesIn: UInt64
            public var framesOut: UInt64
            public var bytesIn: UInt64
            public var bytesOut: UInt64
            /// Only the reasons with drops.
            public var drops: [String: UInt64]
            public init(framesIn: UInt64, framesOut: UInt64, bytesIn: UInt64, bytesOut: UInt64, drops: [String: UInt64]) {
                self.framesIn = framesIn
                self.framesOut = framesOut
                self.bytesIn = bytesIn
                self.bytesOut = bytesOut
                self.drops = drops
            }
            enum CodingKeys: String, CodingKey {
                case drops
                case framesIn = "frames_in", framesOut = "frames_out", bytesIn = "bytes_in", bytesOut = "bytes_out"
            }
        }
        public struct MACTable: Codable, Sendable, Equatable {
            public var entries: Int
            public var learned: UInt64
            public var moved: UInt64
            public var evicted: UInt64
            public init(entries: Int, learned: UInt64, moved: UInt64, evicted: UInt64) {
                self.entries = entries
                self.learned = learned
                self.moved = moved
                self.evicted = evicted
            }
        }
        public struct Connections: Codable, Sendable, Equatable {
            public var tracked: Int
            public var created: UInt64
            public var evicted: UInt64
            public var related: UInt64
            public init(tracked: Int, created: UInt64, evicted: UInt64, related: UInt64) {
                self.tracked = tracked
                self.created = created
                self.evicted = evicted
                self.related = related
            }
        }
        public struct LoadBalancers: Codable, Sendable, Equatable {
            public var answers: UInt64
            /// Frames that found their backend's MAC unknown; of them, those sent once it
            /// answered, those dropped after waiting, and those waiting now.
            public var heldForARP: UInt64
            public var heldReleased: UInt64
            public var heldExpired: UInt64
            public var heldWaiting: Int
            public init(answers: UInt64, heldForARP: UInt64, heldReleased: UInt64 = 0, heldExpired: UInt64 = 0, heldWaiting: Int = 0) {
                self.answers = answers
                self.heldForARP = heldForARP
                self.heldReleased = heldReleased
                self.heldExpired = heldExpired
                self.heldWaiting = heldWaiting
            }
            enum CodingKeys: String, CodingKey {
                case answers
                case heldForARP = "held_for_arp"
                case heldReleased = "held_released"
                case heldExpired = "held_expired"
                case heldWaiting = "held_waiting"
            }
        }
        public struct Control: Codable, Sendable, Equatable {
            public var longestPauseSeconds: Double
            public var longestWorkSeconds: Double
            public init(longestPauseSeconds: Double, longestWorkSeconds: Double) {
                self.longestPauseSeconds = longestPauseSeconds
                self.longestWorkSeconds = longestWorkSeconds
            }
            enum CodingKeys: String, CodingKey {
                case longestPauseSeconds = "longest_pause_seconds", longestWorkSeconds = "longest_work_seconds"
            }
        }
        /// What one rule decided (`ctl rules` has the rest of the row).
        public struct Rule: Codable, Sendable, Equatable {
            public var rule: String
            public var location: String
            public var connections: UInt64
            public init(rule: String, location: String, connections: UInt64) {
                self.rule = rule
                self.location = location
                self.connections = connections
            }
        }

        public var ok = true
        public var `switch`: String
        public var ports: [String: Port]
        /// Every reason, summed over the ports.
        public var drops: [String: UInt64]
        public var macTable: MACTable
        public var connections: Connections
        public var loadBalancers: LoadBalancers
        public var control: Control
        public var rules: [Rule]

        public init(
            switch name: String, ports: [String: Port], drops: [String: UInt64], macTable: MACTable,
            connections: Connections, loadBalancers: LoadBalancers, control: Control, rules: [Rule]
        ) {
            self.switch = name
            self.ports = ports
            self.drops = drops
            self.macTable = macTable
            self.connections = connections
            self.loadBalancers = loadBalancers
            self.control = control
            self.rules = rules
        }
        enum CodingKeys: String, CodingKey {
            case ok, `switch`, ports, drops, connections, control, rules
            case macTable = "mac_table", loadBalancers = "load_balancers"
        }
    }

    public struct Rules: Codable, Sendable, Equatable {
        public struct Row: Codable, Sendable, Equatable {
            /// The rule's number (from 1), or `default`.
            public var rule: String
            /// `FILE:LINE`, `-` for the default.
            public var location: String
            public var text: String
            public var action: String
            public var log: Bool
            public var connections: UInt64
            public init(rule: String, location: String, text: String, action: String, log: Bool, connections: UInt64) {
                self.rule = rule
                self.location = location
                self.text = text
                self.action = action
                self.log = log
                self.connections = connections
            }
        }

        public var ok = true
        public var `switch`: String
        public var firewall: Bool
        public var `default`: String?
        public var rules: [Row]
        public init(switch name: String, firewall: Bool, default action: String?, rules: [Row]) {
            self.switch = name
            self.firewall = firewall
            self.default = action
            self.rules = rules
        }
    }

    /// `fdb flush`, `conntrack flush`: how many entries went.
    public struct Flushed: Codable, Sendable, Equatable {
        public var ok = true
        public var `switch`: String
        public var flushed: Int
        public init(switch name: String, flushed: Int) {
            self.switch = name
            self.flushed = flushed
        }
    }

    /// `reload`: what happened, in a sentence.
    public struct Message: Codable, Sendable, Equatable {
        public var ok = true
        public var `switch`: String
        public var message: String
        public init(switch name: String, message: String) {
            self.switch = name
            self.message = message
        }
    }

    public struct Trace: Codable, Sendable, Equatable {
        public var ok = true
        public var `switch`: String
        public var frames: Int
        public var trace: [String]
        public init(switch name: String, frames: Int, trace: [String]) {
            self.switch = name
            self.frames = frames
            self.trace = trace
        }
    }

    /// One JSON line: sorted keys, so answers are stable to compare.
    public static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(value) else { return #"{"ok":false,"error":"the switch could not encode its answer"}"# + "\n" }
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
