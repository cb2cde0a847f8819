import TapestryWire

/// A load-balancer backend's state change from its health checks.
public struct HealthChange: Sendable, Equatable {
    public var balancer: Int
    public var backend: Int
    public var up: Bool
    public var at: Timestamp
}

/// A load-balancer backend's health as `ctl lb` shows it.
public struct BackendHealth: Sendable, Equatable {
    public var up: Bool
    public var lastChange: Timestamp?
    public var probes: UInt64
}

/// The packet pipeline: every batch of frames from one port runs through the stages in the
/// contract's fixed order, then leaves through per-port transmit queues.
///
/// ```
///   FrameBatch (one ingress port, preallocated slots, one verdict per frame)
///        │
///        ▼
///   VLANIngressStage   parse once; access/trunk/native → network        drop: invalid, vlan
///        │
///        ▼
///   FirewallStage      connection tracking, rules on NEW connections       drop: firewall, invalid, table-full
///        │
///        ▼
///   LoadBalancerStage  VIP ARP/ping answers, round robin, NAT both ways  drop: no-service, invalid
///        │
///        ▼
///   L2ForwardingStage  learn source, look up destination → forward/flood  drop: multicast-source, hairpin
///        │
///        ▼
///   VLANEgressStage    copy into each output port's queue, tag/untag      drop: no-destination
///        │
///        ▼
///   TransmitQueues     drained by the driver (TAP, pcap, memory port)
/// ```
///
/// The datapath makes no system calls and reads no clock: `now` comes with each batch. Stages are
/// concrete values called in sequence, one call per batch, so there is no dynamic dispatch per
/// frame. Not thread-safe: one datapath belongs to one thread.
public final class Datapath {
    public let configuration: DatapathConfiguration
    public let macTable: MACTable
    public let transmitQueues: TransmitQueues
    public let batchCapacity: Int
    public let maxFrameLength: Int

    private let vlanIngress: VLANIngressStage
    let firewall: FirewallStage?
    private let loadBalancer: LoadBalancerStage?
    private let firewallEvents: UnsafeMutablePointer<FirewallStage.Events>
    private let l2: L2ForwardingStage
    private let vlanEgress: VLANEgressStage
    private let accessPorts: UnsafeMutablePointer<Bool>
    /// The events of the last batch run with `tracing` (`traceEvents`): at most `traceCapacity`,
    /// then counted in `traceEventsLost`.
    private let traceStorage: UnsafeMutablePointer<TraceEvent>
    private let traceCounts: UnsafeMutablePointer<(count: Int, lost: Int)>
    public let traceCapacity: Int

    // Counters as flat arrays so the per-frame path does plain stores.
    private let framesIn: UnsafeMutablePointer<UInt64>
    private let bytesIn: UnsafeMutablePointer<UInt64>
    private let framesOut: UnsafeMutablePointer<UInt64>
    private let bytesOut: UnsafeMutablePointer<UInt64>
    private let drops: UnsafeMutablePointer<UInt64>  // [port * DropReason.count + reason]
    private let events: UnsafeMutablePointer<L2ForwardingStage.Events>  // not a stored var: no exclusivity check

    /// Slots the incremental MAC sweep visits per batch.
    private static let sweepBudget = 16

    /// The secret of the MAC, connection and fragment tables' hashes.
    public let hashKey: HashKey

    /// - Parameter hashKey: `.random()` for a live switch (attackers cannot predict collisions);
    ///   replay, trace and tests pass `.fixed`, which gives the same results.
    public init(
        configuration: DatapathConfiguration, batchCapacity: Int = 32, maxFrameLength: Int = 9216 + 18,
        hashKey: HashKey = .fixed
    ) {
        self.configuration = configuration
        self.batchCapacity = batchCapacity
        self.maxFrameLength = maxFrameLength
        self.hashKey = hashKey
        macTable = MACTable(
            maxEntries: configuration.macTableSize, agingSeconds: configuration.macAgingSeconds,
            portCount: max(1, configuration.ports.count), portLimits: configuration.ports.map(\.macLimit),
            hashKey: hashKey.derived(1))
        transmitQueues = TransmitQueues(
            portCount: configuration.ports.count, batchCapacity: batchCapacity, maxFrameLength: maxFrameLength)
        vlanIngress = VLANIngressStage(configuration: configuration)
        // Connection tracking runs for the firewall, and for load balancers (whose connections must
        // keep their backend) in a tracking-only mode when there is no firewall.
        if configuration.firewall != nil || !configuration.loadBalancers.isEmpty {
            let services = configuration.loadBalancers.map {
                (network: $0.network, isIPv6: $0.vip.isIPv6, vipHigh: $0.vip.high, vipLow: $0.vip.low, proto: $0.proto, port: $0.port)
            }
            firewall = FirewallStage(
                configuration: configuration.firewall
                    ?? FirewallConfiguration(defaultAction: .allow, maxConnections: configuration.trackingOnlyConnections),
                enforce: configuration.firewall != nil, services: services,
                fragmentSlots: configuration.fragmentSlots, portCount: configuration.ports.count, hashKey: hashKey)
        } else {
            firewall = nil
        }
        loadBalancer = configuration.loadBalancers.isEmpty || firewall == nil
            ? nil
            : LoadBalancerStage(
                balancers: configuration.loadBalancers, table: firewall!.table,
                macAgingSeconds: configuration.macAgingSeconds, hashKey: hashKey)
        firewallEvents = .allocate(capacity: 1)
        firewallEvents.initialize(to: .init())
        l2 = L2ForwardingStage(table: macTable)
        vlanEgress = VLANEgressStage(configuration: configuration)
        events = .allocate(capacity: 1)
        events.initialize(to: .init())
        let portCount = max(1, configuration.ports.count)
        accessPorts = .allocate(capacity: portCount)
        accessPorts.initialize(repeating: false, count: portCount)
        for (index, port) in configuration.ports.enumerated() {
            if case .access = port.mode { accessPorts[index] = true }
        }
        framesIn = .allocate(capacity: portCount)
        bytesIn = .allocate(capacity: portCount)
        framesOut = .allocate(capacity: portCount)
        bytesOut = .allocate(capacity: portCount)
        drops = .allocate(capacity: portCount * DropReason.count)
        for counter in [framesIn, bytesIn, framesOut, bytesOut] { counter.initialize(repeating: 0, count: portCount) }
        drops.initialize(repeating: 0, count: portCount * DropReason.count)
        // A frame records at most seven events in the stages before egress, and one per port
        // egress queues it on: this never fills (`traceEventsLost` stays a safeguard).
        traceCapacity = batchCapacity * (8 + configuration.ports.count)
        // Not initialized: only events a traced batch wrote are read (a trivial type), so a new
        // datapath (a reload, each packet test) does not write the buffer.
        traceStorage = .allocate(capacity: traceCapacity)
        traceCounts = .allocate(capacity: 1)
        traceCounts.initialize(to: (0, 0))
    }

    deinit {
        vlanIngress.deallocate()
        vlanEgress.deallocate()
        for counter in [framesIn, bytesIn, framesOut, bytesOut, drops] { counter.deallocate() }
        accessPorts.deallocate()
        events.deallocate()
        firewallEvents.deallocate()
        traceStorage.deallocate()
        traceCounts.deallocate()
    }

    /// A batch sized for this datapath.
    public func makeBatch() -> FrameBatch {
        FrameBatch(capacity: batchCapacity, maxFrameLength: maxFrameLength)
    }

    /// The stages, as trace events name them.
    public enum Step: String, Sendable, CaseIterable {
        case vlan, firewall, loadBalancer = "load-balancer", l2, egress
    }

    /// Runs one batch through the pipeline. Output lands in `transmitQueues`, which the caller
    /// drains and clears before the next batch.
    /// - Parameter tracing: the stages record what they decide about each frame (`traceEvents`).
    ///   Off, the stages run specialized without recording: one check per batch, nothing per frame.
    public func process(_ batch: FrameBatch, now: Timestamp, tracing: Bool = false) {
        if tracing {
            var recorder = TraceRecorder(events: traceStorage, capacity: traceCapacity)
            run(batch, now: now, trace: &recorder)
            traceCounts.pointee = (recorder.count, recorder.lost)
        } else {
            var none = NoTrace()
            run(batch, now: now, trace: &none)
        }
    }

    /// What the stages recorded about the last batch run with `tracing`, in the order they
    /// recorded it (stage by stage; `TraceEvent.frame` says which frame).
    public var traceEvents: UnsafeBufferPointer<TraceEvent> {
        UnsafeBufferPointer(start: traceStorage, count: traceCounts.pointee.count)
    }

    /// Events of that batch that did not fit in `traceCapacity`.
    public var traceEventsLost: Int { traceCounts.pointee.lost }

    @inline(__always)
    private func run<Trace: TraceSink>(_ batch: FrameBatch, now: Timestamp, trace: inout Trace) {
        precondition(batch.count <= batchCapacity, "batch larger than the transmit queues")
        let port = Int(batch.ingressPort)
        var bytes: UInt64 = 0
        for index in 0..<batch.count { bytes &+= UInt64(batch.length(index)) }
        framesIn[port] &+= UInt64(batch.count)
        bytesIn[port] &+= bytes

        vlanIngress.process(batch, accessPort: accessPorts[port], trace: &trace)
        firewall?.process(batch, now: now, events: &firewallEvents.pointee, trace: &trace)
        loadBalancer?.process(batch, now: now, trace: &trace)
        l2.process(batch, now: now, events: &events.pointee, trace: &trace)
        vlanEgress.process(batch, into: transmitQueues, trace: &trace)

        let dropRow = drops + port * DropReason.count
        for index in 0..<batch.count {
            if case .drop(let reason) = batch.verdicts[index] { dropRow[reason.index] &+= 1 }
        }
        countDroppedHeldFragments()
        // Connections a balancer refused leave as answers, so no verdict counts them.
        if let loadBalancer { dropRow[DropReason.noService.index] &+= loadBalancer.takeRefusedInBatch() }
        let queues = transmitQueues
        for active in 0..<queues.activeCount {
            let out = queues.activePort(active)
            framesOut[Int(out)] &+= UInt64(queues.count(out))
            bytesOut[Int(out)] &+= UInt64(queues.byteCount(out))
        }
        macTable.sweep(now: now, budget: Self.sweepBudget)
    }

    /// Frames a load balancer held for a backend whose MAC is unknown (`HeldFrames`) leave here
    /// once it answered: call after every batch, with a batch of this datapath's size that the
    /// caller owns, until it returns false, draining `transmitQueues` after each true. Each call
    /// moves held frames of one ingress port into `batch` and runs them through L2 forwarding and
    /// egress; frames that waited too long are dropped (`no-service`, on their ingress port).
    public func releaseHeld(into batch: FrameBatch, now: Timestamp) -> Bool {
        guard let loadBalancer, loadBalancer.held.counts.pointee.waiting > 0 else { return false }
        loadBalancer.held.expire(now: now.nanoseconds) { port in
            drops[Int(port) * DropReason.count + DropReason.noService.index] &+= 1
        }
        batch.removeAll()
        guard loadBalancer.releaseHeld(into: batch) else { return false }
        runAfterLoadBalancer(batch, now: now)
        return true
    }

    /// Later fragments the firewall held until their first fragment came (`FragmentTable`) leave
    /// here once it passed, in arrival order, with the batch's time: call after every batch like
    /// `releaseHeld`, until it returns false, draining `transmitQueues` after each true. They go
    /// through the stages after the firewall (their ingress was counted when they arrived).
    public func releaseHeldFragments(into batch: FrameBatch, now: Timestamp) -> Bool {
        guard let fragments = firewall?.fragments, fragments.hasReleases else { return false }
        batch.removeAll()
        guard fragments.release(into: batch) else { return false }
        var none = NoTrace()
        loadBalancer?.process(batch, now: now, trace: &none)
        runAfterLoadBalancer(batch, now: now)
        return true
    }

    /// The input is over (the end of a capture or a test): fragments still held for a first
    /// fragment are dropped (`invalid`, on their ingress port), since it will not come now.
    public func dropHeldFragments() {
        firewall?.fragments.dropAllHeld()
        countDroppedHeldFragments()
    }

    /// Held fragments the firewall dropped (their first fragment refused, their datagram broken,
    /// replaced or timed out) count `invalid` on the port they came in on.
    @inline(__always)
    private func countDroppedHeldFragments() {
        guard let fragments = firewall?.fragments, fragments.droppedPending else { return }
        fragments.takeDropped { port, count in
            drops[Int(port) * DropReason.count + DropReason.invalid.index] &+= count
        }
    }

    /// ARP requests from the VIPs for every backend whose MAC is unknown, flooded in their
    /// networks (a live switch at start and after a reload, so no first connection waits for
    /// one). Like `releaseHeld`: call until it returns false, draining `transmitQueues` after
    /// each true; `cursor` starts at 0 and says where the next call goes on.
    public func askForBackendMACs(into batch: FrameBatch, cursor: inout Int, now: Timestamp) -> Bool {
        guard let loadBalancer, cursor >= 0 else { return false }
        batch.removeAll()
        batch.ingressPort = 0
        cursor = loadBalancer.askForUnknownBackends(into: batch, from: cursor) ?? -1
        guard !batch.isEmpty else { return false }
        runAfterLoadBalancer(batch, now: now)
        return true
    }

    /// Health checks: sends the probes due at `now` (and times out the ones not answered). Like
    /// `releaseHeld`: call until it returns false, draining `transmitQueues` after each true;
    /// `cursor` starts at 0. Only a live switch calls it (when `nextHealthCheck` comes).
    public func runHealthChecks(into batch: FrameBatch, cursor: inout Int, now: Timestamp) -> Bool {
        guard let loadBalancer, cursor >= 0 else { return false }
        batch.removeAll()
        // The probes come from no port: flooding one (its backend's MAC aged out of the MAC
        // table) reaches every port of the network.
        batch.ingressPort = PortID(configuration.ports.count)
        let table = macTable
        cursor = loadBalancer.writeProbes(into: batch, from: cursor, now: now.nanoseconds) { network, mac in
            table.lookup(network, mac, now: now) != nil
        } ?? -1
        guard !batch.isEmpty else { return false }
        runAfterLoadBalancer(batch, now: now)
        return true
    }

    /// When the next probe is due or times out; nil without health checks.
    public var nextHealthCheck: Timestamp? {
        loadBalancer?.health.nextDue().map { Timestamp(nanoseconds: $0) }
    }

    /// Backends that went down or came up since the last call (for the log).
    public func takeHealthChanges() -> [HealthChange] {
        (loadBalancer?.health.takeChanges() ?? []).map {
            HealthChange(balancer: $0.balancer, backend: $0.backend, up: $0.up, at: Timestamp(nanoseconds: $0.at))
        }
    }

    /// Takes a backend down (or up) as a health check would: a test file's `down:`.
    public func setBackendUp(balancer: Int, backend: Int, _ up: Bool, now: Timestamp) {
        loadBalancer?.setBackendUp(balancer: balancer, backend: backend, up, now: now.nanoseconds)
    }

    /// A backend's health: up or down, when that last changed (nil: never), probes sent.
    public func backendHealth(balancer: Int, backend: Int) -> BackendHealth {
        guard let state = loadBalancer?.backendState(balancer: balancer, backend: backend) else {
            return BackendHealth(up: true, lastChange: nil, probes: 0)
        }
        return BackendHealth(
            up: state.up, lastChange: state.changed ? Timestamp(nanoseconds: state.lastChange) : nil, probes: state.probes)
    }

    /// The stages after the load balancer, for frames the switch itself puts in a batch (their
    /// ingress already counted, or originated here).
    private func runAfterLoadBalancer(_ batch: FrameBatch, now: Timestamp) {
        var none = NoTrace()
        l2.process(batch, now: now, events: &events.pointee, trace: &none)
        vlanEgress.process(batch, into: transmitQueues, trace: &none)
        // Probes come from no port (`ingressPort` past the last): their drops count nowhere.
        if Int(batch.ingressPort) < configuration.ports.count {
            let dropRow = drops + Int(batch.ingressPort) * DropReason.count
            for index in 0..<batch.count {
                if case .drop(let reason) = batch.verdicts[index] { dropRow[reason.index] &+= 1 }
            }
        }
        let queues = transmitQueues
        for active in 0..<queues.activeCount {
            let out = queues.activePort(active)
            framesOut[Int(out)] &+= UInt64(queues.count(out))
            bytesOut[Int(out)] &+= UInt64(queues.byteCount(out))
        }
    }

    /// Counts a frame the driver dropped before it reached the pipeline (too large for a slot, say).
    public func countDrop(on port: PortID, _ reason: DropReason, bytes: Int) {
        countDrops(on: port, reason, frames: 1, bytes: UInt64(max(0, bytes)))
    }

    /// Counts `frames` frames (`bytes` in all) the driver dropped before they reached the pipeline.
    public func countDrops(on port: PortID, _ reason: DropReason, frames: UInt64, bytes: UInt64) {
        framesIn[Int(port)] &+= frames
        bytesIn[Int(port)] &+= bytes
        drops[Int(port) * DropReason.count + reason.index] &+= frames
    }

    /// Counts a frame the pipeline queued on `port` that the driver could not send (queue full,
    /// port down): it moves from the port's "out" counters to its drops.
    public func countTransmitDrop(on port: PortID, _ reason: DropReason, bytes: Int) {
        countTransmitDrops(on: port, reason, frames: 1, bytes: UInt64(max(0, bytes)))
    }

    /// `countTransmitDrop` for `frames` frames, `bytes` in all.
    public func countTransmitDrops(on port: PortID, _ reason: DropReason, frames: UInt64, bytes: UInt64) {
        framesOut[Int(port)] &-= frames
        bytesOut[Int(port)] &-= bytes
        drops[Int(port) * DropReason.count + reason.index] &+= frames
    }

    /// A copy of all counters (allocates; for summaries and control, not the datapath).
    public var counters: DatapathCounters {
        var result = DatapathCounters(ports: [])
        result.ports.reserveCapacity(configuration.ports.count)
        for port in 0..<configuration.ports.count {
            var counters = DatapathCounters.PortCounters()
            counters.framesIn = framesIn[port]
            counters.bytesIn = bytesIn[port]
            counters.framesOut = framesOut[port]
            counters.bytesOut = bytesOut[port]
            for index in 0..<DropReason.count { counters.drops[index] = drops[port * DropReason.count + index] }
            result.ports.append(counters)
        }
        result.macLearned = events.pointee.learned
        result.macMoved = events.pointee.moved
        result.macEvicted = events.pointee.evicted
        result.connectionsCreated = firewallEvents.pointee.created
        result.connectionsEvicted = firewallEvents.pointee.evicted
        result.relatedPassed = firewallEvents.pointee.related
        result.connections = firewall?.table.count ?? 0
        if let fragments = firewall?.fragments {
            result.fragmentsHeld = fragments.counts.pointee.waiting
            result.fragmentsReleased = fragments.counts.pointee.released
            result.fragmentsHeldDropped = fragments.counts.pointee.dropped
        }
        if let firewall, firewall.enforce { result.ruleDecisions = Array(firewall.rules.decided) }
        if let loadBalancer {
            result.backendSelections = loadBalancer.selections
            result.backendUnresolved = loadBalancer.unresolved
            result.heldReleased = loadBalancer.held.counts.pointee.released
            result.heldExpired = loadBalancer.held.counts.pointee.expired
            result.heldWaiting = loadBalancer.held.counts.pointee.waiting
            result.loadBalancerAnswers = loadBalancer.answered
            result.refusedConnections = loadBalancer.refused
        }
        return result
    }

    /// Hands the firewall log's waiting lines to `body` (the driver calls this between batches;
    /// nothing waits unless a rule or `log_default` logs).
    public func drainFirewallLog(now: Timestamp, _ body: (FirewallLogEntry) -> Void) {
        guard let firewall, firewall.enforce, firewall.rules.log.isEnabled else { return }
        let rules = firewall.rules
        rules.log.drain(now: now.nanoseconds, rules: rules.rows.count, allowed: { slot in
            (slot < rules.rows.count ? rules.rows[slot].action : rules.defaultAction) == .allow
        }, body)
    }

    /// The firewall log has lines to hand out now or when the current second ends (a driver
    /// that sleeps wakes up within a second to drain it).
    public var firewallLogPending: Bool { firewall.map { $0.enforce && $0.rules.log.hasPending } ?? false }

    /// Takes a backend out of rotation (or back): new connections skip it, existing ones keep it.
    public func setDrained(balancer: Int, backend: Int, _ drained: Bool) {
        loadBalancer?.setDrained(balancer: balancer, backend: backend, drained)
    }

    public func isDrained(balancer: Int, backend: Int) -> Bool {
        loadBalancer?.isDrained(balancer: balancer, backend: backend) ?? false
    }

    func learnBackendMAC(network: NetworkID, address: IPAddress, mac: MACAddress, now: Timestamp) {
        loadBalancer?.learnMAC(network: network, address: address, mac: mac, now: now)
    }

    /// Carries the switch-wide event counters over a reload (counters never go backwards):
    /// learning, connections, and each load-balancer backend that still exists (`backendMap`:
    /// old (balancer, backend) -> new).
    func adoptEventCounters(from old: Datapath, backendMap: [(old: (Int, Int), new: (Int, Int))]) {
        events.pointee = old.events.pointee
        firewallEvents.pointee = old.firewallEvents.pointee
        if let firewall, let oldFirewall = old.firewall, firewall.enforce, oldFirewall.enforce {
            adoptRuleCounters(from: oldFirewall, networks: old.configuration.networks, into: firewall)
        }
        if let loadBalancer, let oldBalancer = old.loadBalancer {
            loadBalancer.adoptCounters(from: oldBalancer, backendMap: backendMap)
        }
    }

    /// A rule keeps its count when the new rules hold the same rule (same match, action and
    /// logging; its position may change); a new or changed rule starts at 0; `default` keeps its count.
    private func adoptRuleCounters(
        from old: FirewallStage, networks oldNetworks: [DatapathConfiguration.Network], into new: FirewallStage
    ) {
        // A rule's network by name: network indices change when networks are added or removed.
        struct Key: Hashable {
            var rule: FirewallConfiguration.Rule
            var network: String?
        }
        func key(_ rule: FirewallConfiguration.Rule, _ networks: [DatapathConfiguration.Network]) -> Key {
            var bare = rule
            bare.network = nil
            let name = rule.network.flatMap { Int($0) < networks.count ? networks[Int($0)].name : nil }
            return Key(rule: bare, network: name)
        }
        // Old positions of each rule, first first: equal rules pair up in order.
        var positions: [Key: [Int]] = [:]
        for (index, rule) in old.configuration.rules.enumerated().reversed() {
            positions[key(rule, oldNetworks), default: []].append(index)
        }
        for (index, rule) in new.configuration.rules.enumerated() {
            guard let match = positions[key(rule, configuration.networks)]?.popLast() else { continue }
            new.rules.decided[index] = old.rules.decided[match]
        }
        new.rules.decided[new.rules.rows.count] = old.rules.decided[old.rules.rows.count]
    }

    /// Carries a port's counters over a reload.
    func adoptCounters(_ counters: DatapathCounters.PortCounters, port: PortID) {
        let index = Int(port)
        framesIn[index] = counters.framesIn
        bytesIn[index] = counters.bytesIn
        framesOut[index] = counters.framesOut
        bytesOut[index] = counters.bytesOut
        for reason in DropReason.allCases { drops[index * DropReason.count + reason.index] = counters.drops[reason.index] }
    }

    /// The MAC learned for a backend, nil while unknown.
    public func backendMAC(balancer: Int, backend: Int) -> MACAddress? {
        loadBalancer?.backendMAC(balancer: balancer, backend: backend)
    }

    /// The connection table, when the firewall or a load balancer is on.
    public var connectionTable: ConnectionTable? { firewall?.table }
}
