import CTapestryLinux
import Synchronization
import TapestryControl
import TapestryDatapath
import TapestryTopology
import TapestryWire

#if canImport(Glibc)
import Glibc
#endif

/// What the control thread asks of the datapath thread. A client has at most one job in flight,
/// so the queue never holds more than the clients allowed (32) plus their trace cancellations.
enum ControlJob: Sendable {
    /// A copy of the switch's state for `show`, `stats`, `lb`, metrics, and the head of a listing.
    case snapshot
    /// `lb drain|undrain NAME ADDRESS:PORT`, then a snapshot.
    case drain(balancer: String, backend: String, drain: Bool)
    case reload
    /// The MAC table's entries from id `from` on, one chunk.
    case macEntries(from: Int)
    /// The connection table's entries from id `from` on, one chunk.
    case connections(from: Int)
    /// `trace PORT [COUNT] [SECONDS]`: answered when the trace ends (or at once with an error).
    case trace(port: String, count: Int, seconds: Int)
    /// The client of a trace went away: disarm it.
    case cancelTrace
    /// `fdb flush [network=NAME]`: forget the MAC entries with slab ids from `from` on, one chunk.
    case flushMACs(network: String?, from: Int)
    /// `conntrack flush [FILTER...]`: remove the matching connections with ids from `from` on,
    /// one chunk.
    case flushConnections(ConnectionFilter, from: Int)
}

/// The datapath thread's answer to one job: plain values copied out of the datapath, rendered
/// (JSON, Prometheus text) on the control thread.
enum ControlResult: Sendable {
    case snapshot(SwitchSnapshot)
    case failed(String)
    case reloaded(ok: Bool, message: String)
    case macEntries(MACChunk)
    case connections(ConnectionChunk)
    case traced(frames: Int, lines: [String])
    /// The request cannot be served as asked (an unknown network or port): `ctl` exits 64.
    case refused(String)
    /// One chunk of a flush: how many entries it removed, and where the next chunk starts.
    case flushed(count: Int, next: Int?)
}

/// Everything `show`, `stats`, `lb` and the metrics render, copied between two batches.
struct SwitchSnapshot: Sendable {
    /// Counts reloads: a listing whose chunks span a reload is cut short (indices changed).
    var generation: Int
    var now: Timestamp
    var topology: Topology
    var configuration: DatapathConfiguration
    var counters: DatapathCounters
    var up: [Bool]
    var peers: [String]
    /// Per port: connections a socket port refused (a second VM, a source outside `peers`).
    var refused: [UInt64]
    /// Per port: a VXLAN port's per-remote counters and source ports (empty for other kinds).
    var tunnels: [(remotes: [VXLANPort.RemoteCounters], sourcePorts: [UInt16])]
    var macEntries: Int
    var drained: [[Bool]]
    var backendMACs: [[MACAddress?]]
    var health: [[BackendHealth]]
    /// nil without connection tracking.
    var connectionCapacity: Int?
    var connectionCount: Int
    /// The longest (wall clock) the datapath thread spent on control jobs in one go (reloads
    /// excepted), ns: what forwarding waited, preemption by other processes included.
    var longestControlPause: Int64
    /// The most CPU time the datapath thread spent on control jobs in one go (reloads excepted), ns.
    var longestControlWork: Int64
}

struct MACChunk: Sendable {
    var entries: [MACTable.Entry]
    /// Where the next chunk starts; nil when this was the last.
    var next: Int?
    var generation: Int
}

struct ConnectionChunk: Sendable {
    var entries: [(id: Int, entry: ConnectionEntry)]
    var next: Int?
    var now: Timestamp
    var generation: Int
}

/// The hand-off between the control thread and the datapath thread: two queues behind one
/// mutex, and an eventfd each way. The datapath's eventfd sits in its epoll set, so a request
/// is taken between two batches, never in the middle of one; the mutex is held only to move one
/// job or result in or out (never while working), so neither thread waits on the other.
final class ControlChannel: Sendable {
    private struct Queues: Sendable {
        var jobs: [(client: UInt64, job: ControlJob)] = []
        var results: [(client: UInt64, result: ControlResult)] = []
        var stopping = false
    }

    private let queues = Mutex(Queues())
    /// Readable when jobs wait (watched by the datapath's epoll).
    let datapathWake: Int32
    /// Readable when results wait or the server must stop (watched by the control thread).
    let serverWake: Int32

    init() throws(PortError) {
        datapathWake = tapestry_eventfd()
        guard datapathWake >= 0 else { throw PortError(port: "", operation: "eventfd", errno: errno) }
        serverWake = tapestry_eventfd()
        guard serverWake >= 0 else {
            let code = errno
            Glibc.close(datapathWake)
            throw PortError(port: "", operation: "eventfd", errno: code)
        }
    }

    deinit {
        Glibc.close(datapathWake)
        Glibc.close(serverWake)
    }

    // MARK: control thread

    func post(_ job: ControlJob, for client: UInt64) {
        queues.withLock { $0.jobs.append((client, job)) }
        Self.signal(datapathWake)
    }

    func takeResults() -> [(client: UInt64, result: ControlResult)] {
        Self.drain(serverWake)
        return queues.withLock { queues in
            let results = queues.results
            queues.results = []
            return results
        }
    }

    var isStopping: Bool { queues.withLock { $0.stopping } }

    // MARK: datapath thread

    /// The oldest waiting job, if any.
    func takeJob() -> (client: UInt64, job: ControlJob)? {
        queues.withLock { $0.jobs.isEmpty ? nil : $0.jobs.removeFirst() }
    }

    var hasJobs: Bool { queues.withLock { !$0.jobs.isEmpty } }

    /// Queues a result; `wakeServer()` tells the control thread (once per round of jobs).
    func answer(_ result: ControlResult, for client: UInt64) {
        queues.withLock { $0.results.append((client, result)) }
    }

    func wakeServer() { Self.signal(serverWake) }

    /// Resets the datapath's eventfd before jobs are taken (a job posted after this wakes it again).
    func acknowledgeJobs() { Self.drain(datapathWake) }

    /// Asks the control thread to stop (it closes its clients and returns).
    func stop() {
        queues.withLock { $0.stopping = true }
        Self.signal(serverWake)
    }

    private static func signal(_ fd: Int32) {
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, 8)
    }

    private static func drain(_ fd: Int32) {
        var value: UInt64 = 0
        _ = Glibc.read(fd, &value, 8)
    }
}

extension Topology.SocketEndpoint {
    /// Unix or TCP stream (one connected VM at a time), not datagrams.
    var isStream: Bool {
        if case .unixDatagram = self { return false }
        return true
    }
}
