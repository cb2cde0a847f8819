import TapestryDatapath
import TapestryTopology
import TapestryWire

/// The switch itself, whoever drives it: a topology mapped to a `Datapath`, the one batch frames
/// are received into, and the drain of every port's transmit queue to the driver's ports after
/// the batch ran.
///
/// `tapestry run` (LiveSwitch), `replay`, `trace` and the tests' `EmbeddedSwitch` are drivers of
/// this class: they decide where frames come from, when a batch is full and what a port does with
/// what it is given, and nothing else. So the tests drive the code that runs live, with the same
/// frame size and batch size.
///
/// A batch holds frames of one ingress port that arrived at one time (`begin(port:)`, then
/// `append` or a port receiving straight into `batch`); `run(now:transmit:)` processes it and
/// hands each port that has frames to send to `transmit`, once, then empties the queues.
public final class SwitchCore {
    /// The largest frame a port takes or a capture replays: a 64 KB GSO segment plus Ethernet
    /// and one tag.
    public static let maxFrameLength = 65_535 + 18
    /// Frames per batch, live and offline.
    public static let batchCapacity = 32

    public private(set) var topology: Topology
    public private(set) var datapath: Datapath
    /// The batch ports receive into (replaced by a reload).
    public private(set) var batch: FrameBatch
    /// The batch frames the switch sends by itself go through: held frames a load balancer
    /// releases, its ARP requests for backends (kept apart so `batch` keeps its verdicts).
    private var ownFrames: FrameBatch

    public var configuration: DatapathConfiguration { datapath.configuration }

    /// - Parameters:
    ///   - batchCapacity: frames per batch (tests may choose another size).
    ///   - hashKey: the tables' secret; random live, fixed offline (no result depends on it).
    public init(topology: Topology, batchCapacity: Int = SwitchCore.batchCapacity, hashKey: HashKey = .fixed) {
        self.topology = topology
        datapath = Datapath(
            configuration: DatapathConfiguration(topology: topology), batchCapacity: batchCapacity,
            maxFrameLength: Self.maxFrameLength, hashKey: hashKey)
        batch = datapath.makeBatch()
        ownFrames = datapath.makeBatch()
    }

    /// The index of the port named `name`.
    public func port(named name: String) -> PortID? { configuration.portID(named: name) }

    public var portNames: [String] { configuration.ports.map(\.name) }

    /// Empties the batch for frames arriving on `port`.
    @inline(__always)
    public func begin(port: PortID) {
        batch.removeAll()
        batch.ingressPort = port
    }

    /// Copies a frame into the batch; false when it is full or the frame is longer than
    /// `maxFrameLength`.
    @inline(__always)
    @discardableResult
    public func append(_ frame: UnsafeRawBufferPointer) -> Bool { batch.append(frame) }

    /// Runs the batch at `now`, then calls `transmit` once for every port with frames queued
    /// (the frames are `queues.frame(port, 0..<queues.count(port))`), then empties the queues.
    /// The batch keeps its frames and verdicts until the next `begin`.
    /// - Parameter tracing: the stages record their decisions (`datapath.traceEvents`, read them
    ///   before the next traced batch).
    @inline(__always)
    public func run(now: Timestamp, tracing: Bool = false, transmit: (PortID, TransmitQueues) -> Void) {
        guard !batch.isEmpty else { return }
        datapath.process(batch, now: now, tracing: tracing)
        let queues = datapath.transmitQueues
        for active in 0..<queues.activeCount { transmit(queues.activePort(active), queues) }
        queues.removeAll()
        // Frames a load balancer held for a backend this batch may have taught it (one check
        // when nothing waits).
        while datapath.releaseHeld(into: ownFrames, now: now) {
            for active in 0..<queues.activeCount { transmit(queues.activePort(active), queues) }
            queues.removeAll()
        }
        // Later fragments held for a first fragment this batch let through.
        while datapath.releaseHeldFragments(into: ownFrames, now: now) {
            for active in 0..<queues.activeCount { transmit(queues.activePort(active), queues) }
            queues.removeAll()
        }
    }

    /// The input is over (a capture or a test ran out): what the switch still holds for a frame
    /// that will not come now is dropped and counted (later fragments waiting for their first).
    public func finishInput() {
        datapath.dropHeldFragments()
    }

    /// Sends an ARP request from each VIP for every backend whose MAC is unknown (a live switch
    /// does this when it starts and after a reload; replay and tests do not, so their outputs
    /// hold only what the traffic caused).
    public func askForBackendMACs(now: Timestamp, transmit: (PortID, TransmitQueues) -> Void) {
        sendOwnFrames(transmit) { datapath.askForBackendMACs(into: ownFrames, cursor: &$0, now: now) }
    }

    /// Sends the health-check probes due at `now` (a live switch, when
    /// `datapath.nextHealthCheck` comes).
    public func runHealthChecks(now: Timestamp, transmit: (PortID, TransmitQueues) -> Void) {
        sendOwnFrames(transmit) { datapath.runHealthChecks(into: ownFrames, cursor: &$0, now: now) }
    }

    /// Calls `fill` (a datapath step that puts frames of the switch's own in `ownFrames` and
    /// queues them, going on from a cursor) until it has nothing more, handing each round's
    /// queues to `transmit`.
    private func sendOwnFrames(_ transmit: (PortID, TransmitQueues) -> Void, _ fill: (inout Int) -> Bool) {
        let queues = datapath.transmitQueues
        var cursor = 0
        while fill(&cursor) {
            for active in 0..<queues.activeCount { transmit(queues.activePort(active), queues) }
            queues.removeAll()
        }
    }

    /// Counts a frame a port dropped before it reached the pipeline.
    public func countDrop(on port: PortID, _ reason: DropReason, bytes: Int) {
        datapath.countDrop(on: port, reason, bytes: bytes)
    }

    /// Replaces the topology: a new datapath with the same batch size, frame size and hash key
    /// adopts the old one's MAC entries, connections and counters (`Datapath.adoptState`), and a
    /// new batch replaces the old (drivers must not hold the old one).
    public func reload(to new: Topology, now: Timestamp) -> Datapath.Adoption {
        let next = Datapath(
            configuration: DatapathConfiguration(topology: new), batchCapacity: datapath.batchCapacity,
            maxFrameLength: datapath.maxFrameLength, hashKey: datapath.hashKey)
        let adoption = next.adoptState(from: datapath, now: now)
        topology = new
        datapath = next
        batch = next.makeBatch()
        ownFrames = next.makeBatch()
        return adoption
    }
}
