import TapestryWire

/// The firewall's rules as the stage evaluates them, with what they decided.
///
/// Each rule is a fixed-size row whose lists are spans of flat arrays (one of prefixes, one of
/// port ranges), so matching a new connection walks plain memory: no array inside a row, no
/// reference counting per rule. `decided` counts the new connections each rule (and `default`,
/// the last slot) decided; the log keeps those of rules with `log: true`.
final class FirewallRules {
    struct Row {
        var action: FirewallConfiguration.Action
        var proto: UInt8
        var anyProto: Bool
        var network: NetworkID
        var anyNetwork: Bool
        var sources: Range<Int>
        var destinations: Range<Int>
        var sourcePorts: Range<Int>
        var destinationPorts: Range<Int>
        var log: Bool
    }

    let rows: UnsafeMutableBufferPointer<Row>
    let prefixes: UnsafeMutableBufferPointer<FirewallConfiguration.Prefix>
    let portLows: UnsafeMutableBufferPointer<UInt16>
    let portHighs: UnsafeMutableBufferPointer<UInt16>
    let defaultAction: FirewallConfiguration.Action
    /// New connections decided per rule; `decided[rows.count]` is `default`'s.
    let decided: UnsafeMutableBufferPointer<UInt64>
    let log: FirewallLog

    init(_ configuration: FirewallConfiguration) {
        let rules = configuration.rules
        let prefixes = UnsafeMutableBufferPointer<FirewallConfiguration.Prefix>.allocate(
            capacity: rules.reduce(0) { $0 + $1.sources.count + $1.destinations.count })
        let portCount = rules.reduce(0) { $0 + $1.sourcePorts.count + $1.destinationPorts.count }
        let portLows = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: portCount)
        let portHighs = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: portCount)
        let rows = UnsafeMutableBufferPointer<Row>.allocate(capacity: rules.count)
        var prefixEnd = 0
        var portEnd = 0
        func addPrefixes(_ list: [FirewallConfiguration.Prefix]) -> Range<Int> {
            let start = prefixEnd
            for prefix in list {
                prefixes.initializeElement(at: prefixEnd, to: prefix)
                prefixEnd += 1
            }
            return start..<prefixEnd
        }
        func addPorts(_ list: [ClosedRange<UInt16>]) -> Range<Int> {
            let start = portEnd
            for range in list {
                portLows.initializeElement(at: portEnd, to: range.lowerBound)
                portHighs.initializeElement(at: portEnd, to: range.upperBound)
                portEnd += 1
            }
            return start..<portEnd
        }
        for (index, rule) in rules.enumerated() {
            rows.initializeElement(
                at: index,
                to: Row(
                    action: rule.action, proto: rule.proto ?? 0, anyProto: rule.proto == nil, network: rule.network ?? 0,
                    anyNetwork: rule.network == nil, sources: addPrefixes(rule.sources),
                    destinations: addPrefixes(rule.destinations), sourcePorts: addPorts(rule.sourcePorts),
                    destinationPorts: addPorts(rule.destinationPorts), log: rule.log))
        }
        self.rows = rows
        self.prefixes = prefixes
        self.portLows = portLows
        self.portHighs = portHighs
        defaultAction = configuration.defaultAction
        decided = .allocate(capacity: rules.count + 1)
        decided.initialize(repeating: 0)
        log = FirewallLog(ruleCount: rules.count, logs: rules.map(\.log) + [configuration.logDefault])
    }

    deinit {
        rows.deallocate()
        prefixes.deallocate()
        portLows.deallocate()
        portHighs.deallocate()
        decided.deallocate()
    }

    /// The slot of `rule` (-1: `default`) in `decided` and the log.
    @inline(__always)
    func slot(_ rule: Int) -> Int { rule < 0 ? rows.count : rule }

    /// First match wins; `default` when nothing matches. Returns the action and the rule's index
    /// (-1 for the default).
    @inline(__always)
    func evaluate(
        proto: UInt8, network: NetworkID, isIPv6: Bool, sourceHigh: UInt64, sourceLow: UInt64,
        destinationHigh: UInt64, destinationLow: UInt64, sourcePort: UInt16, destinationPort: UInt16
    ) -> (FirewallConfiguration.Action, Int) {
        let hasPorts = proto == IPProtocol.tcp || proto == IPProtocol.udp
        for index in 0..<rows.count {
            let row = rows[index]
            if !row.anyNetwork && row.network != network { continue }
            if !row.anyProto && row.proto != proto { continue }
            if !row.sources.isEmpty && !anyPrefix(row.sources, high: sourceHigh, low: sourceLow, isIPv6: isIPv6) { continue }
            if !row.destinations.isEmpty
                && !anyPrefix(row.destinations, high: destinationHigh, low: destinationLow, isIPv6: isIPv6)
            {
                continue
            }
            if !row.sourcePorts.isEmpty && (!hasPorts || !anyPort(row.sourcePorts, sourcePort)) { continue }
            if !row.destinationPorts.isEmpty && (!hasPorts || !anyPort(row.destinationPorts, destinationPort)) { continue }
            return (row.action, index)
        }
        return (defaultAction, -1)
    }

    @inline(__always)
    private func anyPrefix(_ span: Range<Int>, high: UInt64, low: UInt64, isIPv6: Bool) -> Bool {
        for index in span where prefixes[index].contains(high: high, low: low, isIPv6: isIPv6) { return true }
        return false
    }

    @inline(__always)
    private func anyPort(_ span: Range<Int>, _ port: UInt16) -> Bool {
        for index in span where portLows[index] <= port && port <= portHighs[index] { return true }
        return false
    }
}

/// One line of the firewall log: a new connection a logged rule decided, or how many such
/// connections a rule did not log because it was over its rate.
public struct FirewallLogEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case connection
        /// This many connections of the rule were not logged in its last second (over the rate).
        case notLogged(UInt64)
    }

    public var kind: Kind
    /// The rule's index, -1 for `default`.
    public var rule: Int
    public var allowed: Bool
    /// Nanoseconds, the batch's time.
    public var time: Int64
    public var port: PortID = 0
    public var network: NetworkID = 0
    public var proto: UInt8 = 0
    public var isIPv6 = false
    public var sourceHigh: UInt64 = 0
    public var sourceLow: UInt64 = 0
    public var destinationHigh: UInt64 = 0
    public var destinationLow: UInt64 = 0
    public var sourcePort: UInt16 = 0
    public var destinationPort: UInt16 = 0
}

/// The rate-limited firewall log: at most `perSecond` lines a second per rule, then one line
/// saying how many were not logged. Entries wait in a preallocated ring until the driver takes
/// them between batches, so logging never writes (or allocates) on the datapath.
final class FirewallLog {
    static let perSecond = 10
    static let capacity = 256

    private struct RuleState {
        var logs: Bool
        var second: Int64 = .min
        var logged = 0
        var notLogged: UInt64 = 0
        /// In `owing` (it has a "not logged" line to write).
        var owes = false
    }

    private let states: UnsafeMutableBufferPointer<RuleState>
    private let ring: UnsafeMutableBufferPointer<FirewallLogEntry>
    private var head = 0
    private(set) var count = 0
    /// The slots of the rules with connections they did not log whose line is not written yet
    /// (the drain visits these, not every rule).
    private let owing: UnsafeMutableBufferPointer<Int>
    private var owingCount = 0
    /// Whether any rule logs at all (the stage skips the log otherwise).
    let isEnabled: Bool
    /// A line waits, or a rule over its rate still owes its "not logged" line.
    var hasPending: Bool { count > 0 || owingCount > 0 }

    init(ruleCount: Int, logs: [Bool]) {
        states = .allocate(capacity: ruleCount + 1)
        for (index, flag) in logs.enumerated() { states.initializeElement(at: index, to: RuleState(logs: flag)) }
        ring = .allocate(capacity: Self.capacity)
        ring.initialize(repeating: FirewallLogEntry(kind: .connection, rule: 0, allowed: false, time: 0))
        owing = .allocate(capacity: ruleCount + 1)
        owing.initialize(repeating: 0)
        isEnabled = logs.contains(true)
    }

    deinit {
        states.deallocate()
        ring.deallocate()
        owing.deallocate()
    }

    /// Records `entry` (a connection decided by the rule in `slot`) if that rule logs and is
    /// under its rate. A rule's second only moves forward: a time that goes back (a capture out
    /// of order, a clock stepped back) counts against the second already open.
    @inline(__always)
    func record(slot: Int, _ entry: FirewallLogEntry) {
        guard states[slot].logs else { return }
        let second = Self.second(entry.time)
        if second > states[slot].second {
            settle(slot: slot, entry: entry)
            states[slot].second = second
            states[slot].logged = 0
        }
        guard states[slot].logged < Self.perSecond, push(entry) else {
            states[slot].notLogged &+= 1
            if !states[slot].owes {
                states[slot].owes = true
                owing[owingCount] = slot
                owingCount += 1
            }
            return
        }
        states[slot].logged += 1
    }

    /// The whole second `time` (nanoseconds) falls in, rounding down for times before 1970.
    static func second(_ time: Int64) -> Int64 {
        time >= 0 ? time / 1_000_000_000 : (time + 1) / 1_000_000_000 - 1
    }

    /// Writes the "not logged" line a rule owes for its last second (it stays owed while the
    /// ring is full).
    private func settle(slot: Int, entry: FirewallLogEntry) {
        let missed = states[slot].notLogged
        guard missed > 0 else { return }
        var line = entry
        line.kind = .notLogged(missed)
        if push(line) { states[slot].notLogged = 0 }
    }

    private func push(_ entry: FirewallLogEntry) -> Bool {
        guard count < Self.capacity else { return false }
        ring[(head + count) % Self.capacity] = entry
        count += 1
        return true
    }

    /// Hands every waiting line to `body`, oldest first; first settles the rules whose second
    /// ended before `now` with connections they did not log.
    func drain(now: Int64, rules: Int, allowed: (Int) -> Bool, _ body: (FirewallLogEntry) -> Void) {
        let second = Self.second(now)
        var kept = 0
        for index in 0..<owingCount {
            let slot = owing[index]
            if states[slot].second < second {
                let rule = slot == rules ? -1 : slot
                settle(slot: slot, entry: FirewallLogEntry(kind: .connection, rule: rule, allowed: allowed(slot), time: now))
                states[slot].second = second
                states[slot].logged = 0
            }
            if states[slot].notLogged > 0 {
                owing[kept] = slot
                kept += 1
            } else {
                states[slot].owes = false
            }
        }
        owingCount = kept
        while count > 0 {
            body(ring[head])
            head = (head + 1) % Self.capacity
            count -= 1
        }
    }
}
