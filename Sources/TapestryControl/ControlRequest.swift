import TapestryDatapath
import TapestryWire

/// A request to a running switch, as `tapestry ctl` sends it and the switch's control thread
/// reads it: one line of words (`conntrack flush proto=tcp port=80`), parsed in one place for
/// both ends, so the client refuses what the switch would refuse before it connects.
public enum ControlRequest: Equatable, Sendable, Codable {
    case show
    case stats
    case rules
    case fdb
    /// Forget learned MACs, of one network (by name) or all.
    case fdbFlush(network: String?)
    case conntrack(ConnectionFilter)
    /// Remove the tracked connections the filter matches (all without filters).
    case conntrackFlush(ConnectionFilter)
    case lb
    case drain(balancer: String, backend: String, drain: Bool)
    case reload
    case trace(port: String, count: Int, seconds: Int)

    public static let commands = ["show", "fdb", "conntrack", "lb", "stats", "rules", "reload", "trace"]

    public static let usage = """
        usage: tapestry ctl [--control PATH | --topology FILE] [--json] COMMAND
          show                        ports with state and counters
          stats                       counters and drops by reason
          rules                       firewall rules with FILE:LINE and the new
                                      connections each decided
          fdb [flush [network=NAME]]  the MAC table, or forget learned MACs
          conntrack [flush] [FILTER]  tracked connections, or remove them;
                                      FILTER: proto=tcp|udp|icmp|icmpv6 host=IP
                                      port=N state=STATE network=NAME
          lb [drain|undrain NAME IP:PORT]
                                      load balancers, or take a backend out/in
          reload                      re-read the topology file
          trace PORT [COUNT] [SECONDS]
                                      explain the next COUNT frames (1-1000,
                                      default 10) on PORT within SECONDS (1-60,
                                      default 10)
        """

    /// The request in one line as it arrives on the control socket: words split at spaces,
    /// tabs and carriage returns.
    public static func parse(line: String) throws(ControlUsageError) -> ControlRequest {
        let words = line.split(whereSeparator: { (character: Character) in character == " " || character == "\r" || character == "\t" })
        return try parse(words.map(String.init))
    }

    /// The request in `words` (the command first). Throws on an unknown command, a missing,
    /// extra or malformed argument, or a filter value no connection can have.
    public static func parse(_ words: [String]) throws(ControlUsageError) -> ControlRequest {
        guard let command = words.first else { throw ControlUsageError("no command") }
        let arguments = Array(words.dropFirst())
        func none(_ request: ControlRequest) throws(ControlUsageError) -> ControlRequest {
            guard arguments.isEmpty else { throw ControlUsageError("'\(command)' takes no arguments, got '\(arguments[0])'") }
            return request
        }
        switch command {
        case "show": return try none(.show)
        case "stats": return try none(.stats)
        case "rules": return try none(.rules)
        case "reload": return try none(.reload)
        case "fdb":
            guard let first = arguments.first else { return .fdb }
            guard first == "flush" else { throw ControlUsageError("unknown fdb argument '\(first)'; fdb [flush [network=NAME]]") }
            var network: String?
            for argument in arguments.dropFirst() {
                guard argument.hasPrefix("network="), network == nil, argument.count > "network=".count else {
                    throw ControlUsageError("unknown fdb flush argument '\(argument)'; fdb flush [network=NAME]")
                }
                network = String(argument.dropFirst("network=".count))
            }
            return .fdbFlush(network: network)
        case "conntrack":
            let flush = arguments.first == "flush"
            let filter = try ConnectionFilter(parsing: Array(arguments.dropFirst(flush ? 1 : 0)))
            return flush ? .conntrackFlush(filter) : .conntrack(filter)
        case "lb":
            guard let action = arguments.first else { return .lb }
            guard action == "drain" || action == "undrain" else {
                throw ControlUsageError("unknown lb argument '\(action)'; lb [drain|undrain NAME IP:PORT]")
            }
            guard arguments.count == 3 else { throw ControlUsageError("usage: lb \(action) NAME IP:PORT") }
            return .drain(balancer: arguments[1], backend: arguments[2], drain: action == "drain")
        case "trace":
            guard let port = arguments.first, arguments.count <= 3 else {
                throw ControlUsageError("usage: trace PORT [COUNT] [SECONDS]")
            }
            func number(_ index: Int, _ what: String, _ range: ClosedRange<Int>, _ otherwise: Int) throws(ControlUsageError) -> Int {
                guard index < arguments.count else { return otherwise }
                guard let value = Int(arguments[index]), range.contains(value) else {
                    throw ControlUsageError("trace \(what) '\(arguments[index])' is not a number in \(range.lowerBound)...\(range.upperBound)")
                }
                return value
            }
            return .trace(port: port, count: try number(1, "COUNT", 1...1000, 10), seconds: try number(2, "SECONDS", 1...60, 10))
        default:
            throw ControlUsageError("unknown command '\(command)'; commands: \(commands.joined(separator: ", "))")
        }
    }

    /// The words of the request line (what `parse` reads back).
    public var words: [String] {
        switch self {
        case .show: return ["show"]
        case .stats: return ["stats"]
        case .rules: return ["rules"]
        case .reload: return ["reload"]
        case .fdb: return ["fdb"]
        case .fdbFlush(let network): return ["fdb", "flush"] + (network.map { ["network=\($0)"] } ?? [])
        case .conntrack(let filter): return ["conntrack"] + filter.words
        case .conntrackFlush(let filter): return ["conntrack", "flush"] + filter.words
        case .lb: return ["lb"]
        case .drain(let balancer, let backend, let drain): return ["lb", drain ? "drain" : "undrain", balancer, backend]
        case .trace(let port, let count, let seconds): return ["trace", port, "\(count)", "\(seconds)"]
        }
    }

    /// The command word, for rendering the answer.
    public var command: String { words[0] }
}

/// Which tracked connections a `conntrack` listing or flush is about; every given field must
/// match (a host or port at either end).
public struct ConnectionFilter: Equatable, Sendable, Codable {
    public static let protocols = ["tcp", "udp", "icmp", "icmpv6"]
    /// The TCP states as the switch names them, and the two of other connections.
    public static let states = TCPConnectionState.allCases.map(\.description) + ["REPLIED", "UNREPLIED"]

    public var proto: String?
    /// An address in the form the switch prints (dotted IPv4, RFC 5952 IPv6).
    public var host: String?
    public var port: UInt16?
    /// Upper case, one of `states`.
    public var state: String?
    public var network: String?

    public init(proto: String? = nil, host: String? = nil, port: UInt16? = nil, state: String? = nil, network: String? = nil) {
        (self.proto, self.host, self.port, self.state, self.network) = (proto, host, port, state, network)
    }

    public var isEmpty: Bool { proto == nil && host == nil && port == nil && state == nil && network == nil }

    /// `KEY=VALUE` words; each key at most once.
    public init(parsing words: [String]) throws(ControlUsageError) {
        for word in words {
            let parts = word.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2, !parts[1].isEmpty else {
                throw ControlUsageError("'\(word)' is not a filter; filters: proto=, host=, port=, state=, network=")
            }
            let (key, value) = (parts[0], parts[1])
            func once(_ present: Bool) throws(ControlUsageError) {
                if present { throw ControlUsageError("filter '\(key)' given twice") }
            }
            switch key {
            case "proto":
                try once(proto != nil)
                guard Self.protocols.contains(value.lowercased()) else {
                    throw ControlUsageError("unknown proto '\(value)'; one of \(Self.protocols.joined(separator: ", "))")
                }
                proto = value.lowercased()
            case "host":
                try once(host != nil)
                guard let canonical = HostAddress.canonical(value) else {
                    throw ControlUsageError("host '\(value)' is not an IPv4 or IPv6 address")
                }
                host = canonical
            case "port":
                try once(port != nil)
                guard let number = UInt16(value) else { throw ControlUsageError("port '\(value)' is not a number in 0...65535") }
                port = number
            case "state":
                try once(state != nil)
                guard Self.states.contains(value.uppercased()) else {
                    throw ControlUsageError("unknown state '\(value)'; one of \(Self.states.joined(separator: ", "))")
                }
                state = value.uppercased()
            case "network":
                try once(network != nil)
                network = value
            default:
                throw ControlUsageError("unknown filter '\(key)'; filters: proto=, host=, port=, state=, network=")
            }
        }
    }

    public var words: [String] {
        var words: [String] = []
        if let proto { words.append("proto=\(proto)") }
        if let host { words.append("host=\(host)") }
        if let port { words.append("port=\(port)") }
        if let state { words.append("state=\(state)") }
        if let network { words.append("network=\(network)") }
        return words
    }

    /// Whether a connection with these fields matches.
    public func matches(_ connection: ConnectionFields) -> Bool {
        if let wanted = proto, wanted != connection.proto { return false }
        if let wanted = host, wanted != connection.source && wanted != connection.destination { return false }
        if let wanted = port, wanted != connection.sourcePort && wanted != connection.destinationPort { return false }
        if let wanted = state, wanted != connection.state { return false }
        if let wanted = network, wanted != connection.network { return false }
        return true
    }
}

/// A tracked connection as `conntrack` prints it and its filters see it.
public struct ConnectionFields: Equatable, Sendable {
    public var proto: String
    public var source: String
    public var sourcePort: UInt16
    public var destination: String
    public var destinationPort: UInt16
    /// A TCP state (`ConnectionFilter.states`) or REPLIED / UNREPLIED.
    public var state: String
    public var network: String

    public init(
        proto: String, source: String, sourcePort: UInt16, destination: String, destinationPort: UInt16, state: String,
        network: String
    ) {
        (self.proto, self.source, self.sourcePort, self.destination) = (proto, source, sourcePort, destination)
        (self.destinationPort, self.state, self.network) = (destinationPort, state, network)
    }
}

/// A request the switch would not understand: `ctl` exits 64 (EX_USAGE) with it.
public struct ControlUsageError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Addresses as the switch prints them (`conntrack`), so a `host=` filter compares as text.
public enum HostAddress {
    /// Dotted IPv4 for an IPv4-mapped address (how the switch keeps IPv4), else RFC 5952 IPv6.
    public static func text(_ address: IPv6Address) -> String {
        if address.high == 0 && address.low >> 32 == 0xFFFF {
            return "\(IPv4Address(rawValue: UInt32(truncatingIfNeeded: address.low)))"
        }
        return "\(address)"
    }

    /// `text` of an IPv4 or IPv6 address written any valid way; nil if it is neither.
    static func canonical(_ text: String) -> String? {
        if let v4 = IPv4Address(text) { return "\(v4)" }
        return IPv6Address(text).map { Self.text($0) }
    }
}
