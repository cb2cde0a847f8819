/// Whether a socket port has its VM, as a value: each thing the socket saw is an event, and the
/// answer says what the loop must do (bring the port up or down, flush the port's MAC entries,
/// log). No descriptors, clocks or processes, so every transition is tested on its own; the
/// stream and datagram ports feed it, `LiveSwitch.apply` carries out the changes.
///
/// Stream port: `waiting` -> (a VM connects) `up` -> (its input ends) `closing` -> (the frames
/// already read have run) `waiting`. A send that breaks the connection goes straight to `waiting`.
/// Datagram port: `waiting` -> (a datagram) `up(path)` -> (a datagram from another path: the VM
/// restarted) `up(new path)`; (its socket is gone) `gone` -> (it sends again) `up`.
struct SocketPortLifecycle: Equatable, Sendable {
    enum State: Equatable, Sendable {
        case waiting
        case up(peer: String)
        /// A stream VM's input ended; the frames read before the end still go through the pipeline.
        case closing(peer: String, reason: String)
        /// A datagram VM's socket is gone; the port comes back when a datagram arrives.
        case gone(peer: String, reason: String)
    }

    enum Change: Equatable, Sendable {
        case none
        /// The port is up (log it). `replacing`: the VM it had before, when a restarted VM took
        /// over (its MAC entries are stale: flush them).
        case up(peer: String, replacing: String?)
        /// The port is down (log the reason, flush its MAC entries). `until` says what brings it back.
        case down(reason: String, until: String)
    }

    private(set) var state = State.waiting

    var isUp: Bool {
        if case .up = state { return true }
        return false
    }

    /// The VM, while the port has one (up or closing).
    var peer: String? {
        switch state {
        case .up(let peer), .closing(let peer, _): return peer
        case .waiting, .gone: return nil
        }
    }

    // MARK: stream ports

    /// Whether a connection from `who` may become the port's VM: one VM per port, and a TCP
    /// source must be in `peers` (`allowedSource`). Nil to accept, else why it is refused.
    func refusal(of who: String, allowedSource: Bool, peers: String) -> String? {
        if !allowedSource { return "\(who) is not in the port's peers (\(peers))" }
        if let peer { return "\(who) connected while \(peer) is: one VM per port" }
        return nil
    }

    /// A VM's connection was accepted.
    mutating func connected(_ who: String) -> Change {
        guard case .waiting = state else { return .none }
        state = .up(peer: who)
        return .up(peer: who, replacing: nil)
    }

    /// The VM's input ended (it closed, broke the framing, or a read failed): the port goes down
    /// once the batch holding its last frames has run (`batchRan`).
    mutating func inputEnded(_ reason: String) {
        guard case .up(let peer) = state else { return }
        state = .closing(peer: peer, reason: reason)
    }

    /// The batch read from the port has run: a closing port goes down now.
    mutating func batchRan() -> Change {
        guard case .closing(_, let reason) = state else { return .none }
        state = .waiting
        return .down(reason: reason, until: "waiting for a VM to connect")
    }

    /// Sending broke the connection (or the loop could not watch it): down at once.
    mutating func connectionBroke(_ reason: String) -> Change {
        switch state {
        case .up, .closing:
            state = .waiting
            return .down(reason: reason, until: "waiting for a VM to connect")
        case .waiting, .gone:
            return .none
        }
    }

    // MARK: datagram ports

    /// A datagram arrived from the VM's socket at `path`, and the switch can send back to it.
    mutating func datagram(from path: String) -> Change {
        switch state {
        case .up(let peer) where peer == path:
            return .none
        case .up(let peer):
            state = .up(peer: path)
            return .up(peer: path, replacing: peer)
        case .waiting, .gone, .closing:  // a gone VM's entries went when it went
            state = .up(peer: path)
            return .up(peer: path, replacing: nil)
        }
    }

    /// The VM's socket is gone (a send found it refused or missing, or a datagram came from a
    /// path the switch cannot send to).
    mutating func peerGone(_ reason: String) -> Change {
        guard case .up(let peer) = state else { return .none }
        state = .gone(peer: peer, reason: reason)
        return .down(reason: reason, until: "it comes back when the VM sends again")
    }
}
