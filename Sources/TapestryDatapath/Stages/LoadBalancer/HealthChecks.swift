import TapestryWire

/// Active health checks of load-balancer backends: probe state per backend, the probes due now,
/// and the matching of answers. Probes run only live (the driver calls `Datapath.runHealthChecks`
/// on a timer); in replay and tests every backend stays up unless set down.
///
/// Each probe carries a nonce from a keyed hash (the TCP probe's source port and initial sequence
/// number, the ICMP probe's identifier and sequence number), and only an answer that quotes the
/// outstanding probe's nonce from the backend's address counts, so an answer cannot be forged by
/// a host that did not see the probe. (An ARP probe has no nonce: any ARP reply from the
/// backend's address to the VIP counts; docs/load-balancer.md says so.)
final class HealthChecks {
    struct Backend {
        var balancer = 0
        var backend = 0
        var up = true
        var successes = 0
        var failures = 0
        var outstanding = false
        var sentAt: Int64 = 0
        var nextProbe: Int64 = 0
        var scheduled = false
        var lastChange: Int64 = 0
        var changed = false
        /// The outstanding probe's nonce (see `probeNonce`).
        var nonce: UInt64 = 0
        var probes: UInt64 = 0
    }

    /// A backend's state changed (for the log).
    public struct Change: Sendable, Equatable {
        public var balancer: Int
        public var backend: Int
        public var up: Bool
        public var at: Int64
    }

    /// Flat by backend index (as `LoadBalancerStage`'s backends); `nil` health: not checked.
    private(set) var states: [Backend]
    let health: [LoadBalancerConfiguration.Health?]
    let key: HashKey
    private(set) var changes: [Change] = []
    static let maxChanges = 256

    init(balancers: [LoadBalancerConfiguration], key: HashKey) {
        var states: [Backend] = []
        var health: [LoadBalancerConfiguration.Health?] = []
        for (index, balancer) in balancers.enumerated() {
            for backend in balancer.backends.indices {
                states.append(Backend(balancer: index, backend: backend))
                health.append(balancer.health)
            }
        }
        self.states = states
        self.health = health
        self.key = key
    }

    var isEnabled: Bool { health.contains { $0 != nil } }

    /// The earliest time a probe is due or times out, nil when nothing is checked.
    func nextDue() -> Int64? {
        var due: Int64? = nil
        for index in states.indices {
            guard let health = health[index] else { continue }
            let state = states[index]
            var next = state.scheduled ? state.nextProbe : Int64.min
            if state.outstanding { next = min(next, state.sentAt &+ health.timeout) }
            due = min(due ?? next, next)
        }
        return due
    }

    /// The nonce of a backend's `probes`-th probe.
    func probeNonce(_ index: Int, _ probes: UInt64) -> UInt64 {
        key.hash(UInt64(index), probes, 0x7072_6f62_65, 0, 0)
    }

    /// Marks outstanding probes that waited `timeout` as failed. Returns the backends whose
    /// up/down state changed (the caller updates its scheduler).
    func expire(now: Int64, _ changed: (Int, Bool) -> Void) {
        for index in states.indices {
            guard let health = health[index], states[index].outstanding else { continue }
            if now &- states[index].sentAt >= health.timeout || now < states[index].sentAt {
                result(index, success: false, now: now, changed)
            }
        }
    }

    /// Backends whose probe is due at `now`, from `cursor` on: `send` writes each probe (false: no
    /// room, stop there). Returns where to go on, nil when every backend was visited.
    func due(now: Int64, from cursor: Int, _ send: (Int, UInt64) -> Bool) -> Int? {
        var index = cursor
        while index < states.count {
            defer { index += 1 }
            guard let health = health[index], !states[index].outstanding else { continue }
            if states[index].scheduled && now < states[index].nextProbe && now >= states[index].nextProbe &- health.interval {
                continue
            }
            let nonce = probeNonce(index, states[index].probes)
            guard send(index, nonce) else { return index }
            states[index].probes &+= 1
            states[index].nonce = nonce
            states[index].outstanding = true
            states[index].sentAt = now
            states[index].nextProbe = now &+ health.interval
            states[index].scheduled = true
        }
        return nil
    }

    /// An answer to backend `index`'s outstanding probe with `nonce` (the caller matched the
    /// addresses): true when it was the outstanding probe's.
    func answer(_ index: Int, nonce: UInt64, success: Bool, now: Int64, _ changed: (Int, Bool) -> Void) -> Bool {
        guard health[index] != nil, states[index].outstanding, states[index].nonce == nonce else { return false }
        result(index, success: success, now: now, changed)
        return true
    }

    func outstandingNonce(_ index: Int) -> UInt64? {
        guard health[index] != nil, states[index].outstanding else { return nil }
        return states[index].nonce
    }

    private func result(_ index: Int, success: Bool, now: Int64, _ changed: (Int, Bool) -> Void) {
        guard let health = health[index] else { return }
        states[index].outstanding = false
        if success {
            states[index].successes += 1
            states[index].failures = 0
            if !states[index].up && states[index].successes >= health.rise { setUp(index, true, now: now, changed) }
        } else {
            states[index].failures += 1
            states[index].successes = 0
            if states[index].up && states[index].failures >= health.fall { setUp(index, false, now: now, changed) }
        }
    }

    /// Sets a backend up or down (a result, or a test's `down:`), recording the change.
    func setUp(_ index: Int, _ up: Bool, now: Int64, _ changed: (Int, Bool) -> Void) {
        guard states[index].up != up else { return }
        states[index].up = up
        states[index].lastChange = now
        states[index].changed = true
        if changes.count < Self.maxChanges {
            changes.append(Change(balancer: states[index].balancer, backend: states[index].backend, up: up, at: now))
        }
        changed(index, up)
    }

    func takeChanges() -> [Change] {
        defer { changes.removeAll(keepingCapacity: true) }
        return changes
    }

    func state(_ index: Int) -> Backend { states[index] }

    /// A reload: backend `index` takes over `old`'s state (up or down, counts, schedule), keeping
    /// its own place; an outstanding probe is forgotten (its nonce is the old datapath's).
    func adopt(_ old: Backend, into index: Int) {
        guard health[index] != nil else { return }
        var state = old
        state.balancer = states[index].balancer
        state.backend = states[index].backend
        state.outstanding = false
        states[index] = state
    }
}
