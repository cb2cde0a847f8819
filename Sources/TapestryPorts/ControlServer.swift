import CTapestryLinux
import TapestryControl
import Foundation
import TapestryDatapath

#if canImport(Glibc)
import Glibc
#endif

/// Bounds of the control socket and the metrics endpoint, each.
public enum ControlLimits {
    /// Clients served at once; one more is accepted and closed at once.
    public static let clients = 16
    /// A request (a control line, an HTTP request head) longer than this is dropped.
    public static let requestBytes = 65_536
    /// A request not complete this long after its connection is dropped.
    public static let requestSeconds: Int64 = 5
    /// A client that takes none of its waiting answer for this long is dropped.
    public static let answerIdleSeconds: Int64 = 5
    /// A connection listing asks the datapath for its next chunk only while less than this waits
    /// to be sent, so a client that reads slowly holds at most this much of its answer.
    static let listingBuffer = 256 * 1024
}

/// The control thread: started by `LiveSwitch.run()`, stopped and joined before it returns.
/// It owns every control and metrics client; the datapath thread never touches a client socket.
final class ControlThread {
    private let thread: pthread_t
    private let channel: ControlChannel

    private final class Body: Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    init(
        channel: ControlChannel, control: Int32?, metrics: Int32?, switchName: String,
        log: @escaping @Sendable (String) -> Void
    ) throws(PortError) {
        self.channel = channel
        // The server is made on its own thread and never leaves it: only the descriptors, the
        // name, the log and the channel (all Sendable) cross.
        let body = Body {
            // Rendering a large answer takes CPU: never the datapath thread's when they compete.
            _ = tapestry_set_thread_nice(10)
            let server = ControlServer(channel: channel, listeners: [control, metrics], switchName: switchName, log: log)
            server.run()
        }
        let context = Unmanaged.passRetained(body).toOpaque()
        var handle = pthread_t()
        let status = pthread_create(
            &handle, nil,
            { context in
                guard let context else { return nil }
                Unmanaged<Body>.fromOpaque(context).takeRetainedValue().run()
                return nil
            }, context)
        guard status == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            throw PortError(port: "", operation: "start the control thread", errno: status)
        }
        thread = handle
    }

    /// Stops the server (its clients are closed) and waits for the thread to end.
    func stop() {
        channel.stop()
        pthread_join(thread, nil)
    }
}

/// Serves control and metrics clients with non-blocking sockets in an epoll loop of its own:
/// requests are read with a size and time bound, handed to the datapath thread as jobs, and the
/// answers (plain values the datapath copied) are rendered and written here, with a bound on how
/// long a client may leave its answer unread. Nothing a client does can make the datapath
/// thread wait: it only ever takes a job from a queue and puts a result back.
final class ControlServer {
    enum Endpoint: Int {
        case control = 0, metrics = 1
        var name: String { self == .control ? "control socket" : "metrics endpoint" }
    }

    private final class Client {
        enum Phase { case reading, waiting, writing }
        let token: UInt64
        let fd: Int32
        let endpoint: Endpoint
        var phase = Phase.reading
        var input: [UInt8] = []
        /// Monotonic ns: the end of the request's time (reading), or of the answer's idle time.
        var deadline: Int64
        var output: [UInt8] = []
        var sent = 0
        /// The whole answer is in `output`: close once it is sent.
        var done = false
        var jobInFlight = false
        var interest: UInt32 = EPOLLIN.rawValue
        var words: [String] = []
        var tracing = false
        // A listing in progress (fdb, conntrack).
        var snapshot: SwitchSnapshot?
        var macs: [MACTable.Entry] = []
        var request: ControlRequest?
        var filter = ConnectionFilter()
        var nextChunk: Int?
        var rows = 0

        init(token: UInt64, fd: Int32, endpoint: Endpoint, deadline: Int64) {
            self.token = token
            self.fd = fd
            self.endpoint = endpoint
            self.deadline = deadline
        }
        var command: String { words.first ?? "" }
        var waitingBytes: Int { output.count - sent }
    }

    private let channel: ControlChannel
    private let listeners: [Int32?]
    private let switchName: String
    private let log: @Sendable (String) -> Void
    private let epoll: Int32
    private var clients: [UInt64: Client] = [:]
    private var connected = [0, 0]
    /// Tags below 16 name the listeners and the wake-up; clients count from 16, never reused.
    private var nextToken: UInt64 = 16
    private static let wakeTag: UInt64 = 2
    private var counters = ControlCounters()
    /// Events not yet logged (a flood of refused clients is one line per 10 s, not one each).
    private var unlogged: [String: Int] = [:]
    private var lastLog: Int64 = .min

    init(channel: ControlChannel, listeners: [Int32?], switchName: String, log: @escaping @Sendable (String) -> Void) {
        self.channel = channel
        self.listeners = listeners
        self.switchName = switchName
        self.log = log
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        for (index, fd) in listeners.enumerated() {
            if let fd { add(fd, tag: UInt64(index), events: EPOLLIN.rawValue) }
        }
        add(channel.serverWake, tag: Self.wakeTag, events: EPOLLIN.rawValue)
    }

    private func add(_ fd: Int32, tag: UInt64, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.u64 = tag
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
    }

    func run() {
        guard epoll >= 0 else {
            log("control thread: epoll_create1 failed: \(String(cString: strerror(errno))); no control or metrics service")
            return
        }
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while !channel.isStopping {
            let timeout = nextTimeout()
            let ready = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, 64, timeout) }
            if ready < 0 && errno != EINTR { break }
            for index in 0..<max(0, Int(ready)) {
                let tag = events[index].data.u64
                let flags = events[index].events
                switch tag {
                case 0: accept(.control)
                case 1: accept(.metrics)
                case Self.wakeTag:
                    for (token, result) in channel.takeResults() {
                        if let client = clients[token] { handle(result, client) }
                    }
                default:
                    if let client = clients[tag] { event(flags, client) }
                }
            }
            expire()
            flushLog(force: false)
        }
        for client in Array(clients.values) { drop(client) }
        flushLog(force: true)
        Glibc.close(epoll)
    }

    // MARK: clients

    private func accept(_ endpoint: Endpoint) {
        guard let listener = listeners[endpoint.rawValue] else { return }
        while true {
            var address = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &address) { tapestry_accept(listener, $0, &length) }
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                // Out of descriptors: the listener stays readable; do not spin on it.
                if errno == EMFILE || errno == ENFILE { usleep(10_000) }
                return
            }
            guard connected[endpoint.rawValue] < ControlLimits.clients else {
                // Closed at once: the client reads end-of-file instead of waiting for a turn.
                Glibc.close(fd)
                counters.refused[endpoint.rawValue] &+= 1
                note("\(endpoint.name): clients refused (\(ControlLimits.clients) already connected, the limit)")
                continue
            }
            let client = Client(
                token: nextToken, fd: fd, endpoint: endpoint,
                deadline: Self.monotonic() + ControlLimits.requestSeconds * 1_000_000_000)
            nextToken += 1
            clients[client.token] = client
            connected[endpoint.rawValue] += 1
            add(fd, tag: client.token, events: EPOLLIN.rawValue)
        }
    }

    private func event(_ flags: UInt32, _ client: Client) {
        if client.phase == .reading {
            read(client)
            return
        }
        if flags & (EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
            drop(client)
            return
        }
        if flags & EPOLLOUT.rawValue != 0 { flush(client) }
    }

    private func read(_ client: Client) {
        var buffer = (0..<4096).map { _ in UInt8(0) }
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(client.fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { return }
                drop(client)
                return
            }
            if count == 0 {
                // The client finished writing: what it sent is its request (ctl shuts its side down
                // after the line; a line without newline is still a request).
                if client.input.isEmpty { drop(client) } else { received(client) }
                return
            }
            client.input += buffer[0..<count]
            if isComplete(client) {
                received(client)
                return
            }
            if client.input.count > ControlLimits.requestBytes {
                counters.dropped[client.endpoint.rawValue][0] &+= 1
                note("\(client.endpoint.name): requests dropped (over \(ControlLimits.requestBytes / 1024) KiB without an end)")
                drop(client)
                return
            }
        }
    }

    /// A control request is one line; an HTTP request ends with an empty line.
    private func isComplete(_ client: Client) -> Bool {
        let newline = UInt8(ascii: "\n")
        guard let first = client.input.firstIndex(of: newline) else { return false }
        if client.endpoint == .control { return first <= ControlLimits.requestBytes }
        let bytes = client.input
        for index in first..<bytes.count where bytes[index] == newline {
            if index >= 1, bytes[index - 1] == newline { return true }
            if index >= 2, bytes[index - 1] == UInt8(ascii: "\r"), bytes[index - 2] == newline { return true }
        }
        return false
    }

    private func received(_ client: Client) {
        client.phase = .waiting
        setInterest(client, 0)
        guard client.endpoint == .control else {
            post(.snapshot, client)
            return
        }
        let line = client.input.prefix { $0 != UInt8(ascii: "\n") }.prefix(ControlLimits.requestBytes)
        client.input = []
        let request: ControlRequest
        do {
            request = try ControlRequest.parse(line: String(decoding: line, as: UTF8.self))
        } catch {
            return finish(client, ControlAnswer.encode(ControlAnswer.Failure(error: error.message, usage: true)))
        }
        client.request = request
        client.words = request.words
        switch request {
        case .show, .stats, .rules, .lb, .fdb:
            post(.snapshot, client)
        case .conntrack(let filter):
            client.filter = filter
            post(.snapshot, client)
        case .drain(let balancer, let backend, let drain):
            post(.drain(balancer: balancer, backend: backend, drain: drain), client)
        case .reload:
            post(.reload, client)
        case .trace(let port, let count, let seconds):
            client.tracing = true
            post(.trace(port: port, count: count, seconds: seconds), client)
        case .fdbFlush(let network):
            post(.flushMACs(network: network, from: 0), client)
        case .conntrackFlush(let filter):
            post(.flushConnections(filter, from: 0), client)
        }
    }

    private func post(_ job: ControlJob, _ client: Client) {
        client.jobInFlight = true
        channel.post(job, for: client.token)
    }

    private func handle(_ result: ControlResult, _ client: Client) {
        client.jobInFlight = false
        switch result {
        case .failed(let message):
            finish(client, ControlAnswer.encode(ControlAnswer.Failure(error: message)))
        case .refused(let message):
            client.tracing = false
            finish(client, ControlAnswer.encode(ControlAnswer.Failure(error: message, usage: true)))
        case .flushed(let count, let next):
            client.rows += count
            if let next {
                switch client.request {
                case .fdbFlush(let network)?: return post(.flushMACs(network: network, from: next), client)
                case .conntrackFlush(let filter)?: return post(.flushConnections(filter, from: next), client)
                default: break
                }
            }
            finish(client, ControlAnswer.encode(ControlAnswer.Flushed(switch: switchName, flushed: client.rows)))
        case .reloaded(let ok, let message):
            finish(
                client,
                ok ? ControlAnswer.encode(ControlAnswer.Message(switch: switchName, message: message))
                    : ControlAnswer.encode(ControlAnswer.Failure(error: message)))
        case .traced(let frames, let lines):
            client.tracing = false
            finish(client, ControlAnswer.encode(ControlAnswer.Trace(switch: switchName, frames: frames, trace: lines)))
        case .snapshot(let snapshot):
            answer(snapshot, client)
        case .macEntries(let chunk):
            guard chunk.generation == client.snapshot?.generation, let snapshot = client.snapshot else {
                return finish(
                    client, ControlAnswer.encode(ControlAnswer.Failure(error: "the switch reloaded while the MAC table was listed; ask again")))
            }
            client.macs += chunk.entries
            if let next = chunk.next { return post(.macEntries(from: next), client) }
            let body = snapshot.fdb(client.macs)
            client.macs = []
            finish(client, ControlAnswer.encode(body))
        case .connections(let chunk):
            guard let snapshot = client.snapshot else { return drop(client) }
            guard chunk.generation == snapshot.generation else {
                // The header is out already: end the document, saying it is incomplete.
                client.output += Array(#"],"complete":false,"note":"the switch reloaded during the listing"}"#.utf8) + [10]
                client.done = true
                return flush(client)
            }
            let rows = chunk.entries.compactMap { snapshot.connectionRow($0.id, $0.entry, now: chunk.now, filter: client.filter) }
            if !rows.isEmpty {
                // The rows as a JSON array without its brackets, after the ones already out.
                let array = ControlAnswer.encode(rows).utf8.dropLast()
                if client.rows > 0 { client.output.append(UInt8(ascii: ",")) }
                client.output += array.dropFirst().dropLast()
                client.rows += rows.count
            }
            client.nextChunk = chunk.next
            if chunk.next == nil {
                client.output += Array(#"],"complete":true}"#.utf8) + [10]
                client.done = true
            }
            flush(client)
        }
    }

    private func answer(_ snapshot: SwitchSnapshot, _ client: Client) {
        if client.endpoint == .metrics {
            let body = snapshot.prometheusText() + counters.prometheusText()
            return finish(
                client,
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body)
        }
        let body: String
        switch client.command {
        case "show": body = ControlAnswer.encode(snapshot.show())
        case "stats": body = ControlAnswer.encode(snapshot.stats())
        case "rules": body = ControlAnswer.encode(snapshot.rules())
        case "lb": body = ControlAnswer.encode(snapshot.balancers())
        case "fdb":
            client.snapshot = snapshot
            client.macs.reserveCapacity(min(snapshot.macEntries, 1 << 20))
            return post(.macEntries(from: 0), client)
        case "conntrack":
            if let refusal = snapshot.configuration.refusal(network: client.filter.network) {
                return finish(client, ControlAnswer.encode(ControlAnswer.Failure(error: refusal, usage: true)))
            }
            guard let capacity = snapshot.connectionCapacity else {
                body = ControlAnswer.encode(
                    ControlAnswer.Conntrack(switch: switchName, tracking: false, capacity: nil, count: nil, connections: []))
                break
            }
            client.snapshot = snapshot
            // Streamed: the head now (its closing brace left open), rows chunk by chunk as the
            // datapath copies them, then `],"complete":...}`; ctl decodes a whole Conntrack.
            struct Head: Encodable {
                var ok = true
                var `switch`: String
                var tracking = true
                var capacity: Int
                var count: Int
            }
            let head = ControlAnswer.encode(Head(switch: switchName, capacity: capacity, count: snapshot.connectionCount))
            client.output += Array(head.utf8.dropLast(2)) + Array(#","connections":["#.utf8)
            client.phase = .writing
            client.deadline = Self.monotonic() + ControlLimits.answerIdleSeconds * 1_000_000_000
            client.nextChunk = 0
            return flush(client)
        default: body = ControlAnswer.encode(ControlAnswer.Failure(error: "unknown command"))
        }
        finish(client, body)
    }

    /// Queues the whole answer and starts sending it.
    private func finish(_ client: Client, _ text: String) {
        client.output += Array(text.utf8)
        client.done = true
        client.phase = .writing
        client.deadline = Self.monotonic() + ControlLimits.answerIdleSeconds * 1_000_000_000
        flush(client)
    }

    /// Sends what the socket takes; asks for a listing's next chunk when little is left waiting.
    private func flush(_ client: Client) {
        while client.sent < client.output.count {
            let written = client.output.withUnsafeBytes {
                send(client.fd, $0.baseAddress! + client.sent, $0.count - client.sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if written > 0 {
                client.sent += written
                client.deadline = Self.monotonic() + ControlLimits.answerIdleSeconds * 1_000_000_000
                continue
            }
            if written < 0 && errno == EINTR { continue }
            if written < 0 && errno == EAGAIN { break }
            return drop(client)
        }
        if client.sent == client.output.count {
            client.output.removeAll(keepingCapacity: client.output.count <= ControlLimits.listingBuffer)
            client.sent = 0
        } else if client.sent >= ControlLimits.listingBuffer {
            client.output.removeFirst(client.sent)
            client.sent = 0
        }
        if client.done && client.output.isEmpty { return drop(client) }
        if !client.done, !client.jobInFlight, let next = client.nextChunk, client.waitingBytes < ControlLimits.listingBuffer {
            post(.connections(from: next), client)
        }
        setInterest(client, client.output.isEmpty ? 0 : EPOLLOUT.rawValue)
    }

    private func setInterest(_ client: Client, _ events: UInt32) {
        guard client.interest != events else { return }
        client.interest = events
        var event = epoll_event()
        event.events = events
        event.data.u64 = client.token
        epoll_ctl(epoll, EPOLL_CTL_MOD, client.fd, &event)
    }

    private func drop(_ client: Client) {
        guard clients.removeValue(forKey: client.token) != nil else { return }
        // A trace armed (or about to be) for this client: disarm it; jobs run in order, so this
        // comes after the trace job even if that has not run yet.
        if client.tracing { channel.post(.cancelTrace, for: client.token) }
        epoll_ctl(epoll, EPOLL_CTL_DEL, client.fd, nil)
        Glibc.close(client.fd)
        connected[client.endpoint.rawValue] -= 1
    }

    /// Drops clients past their deadline: a request not complete in time, an answer left unread.
    private func expire() {
        let now = Self.monotonic()
        for client in Array(clients.values) where now >= client.deadline {
            if client.phase == .reading {
                counters.dropped[client.endpoint.rawValue][1] &+= 1
                note("\(client.endpoint.name): requests dropped (not complete within \(ControlLimits.requestSeconds) s)")
                drop(client)
            } else if client.waitingBytes > 0 {
                counters.dropped[client.endpoint.rawValue][2] &+= 1
                note("\(client.endpoint.name): clients dropped (took none of their answer for \(ControlLimits.answerIdleSeconds) s)")
                drop(client)
            }
        }
    }

    /// Milliseconds until the next deadline (rounded up), or -1.
    private func nextTimeout() -> Int32 {
        var next = Int64.max
        for client in clients.values where client.phase == .reading || client.waitingBytes > 0 {
            next = min(next, client.deadline)
        }
        if !unlogged.isEmpty { next = min(next, lastLog &+ 10_000_000_000) }
        guard next != .max else { return -1 }
        let wait = (next - Self.monotonic() + 999_999) / 1_000_000
        return Int32(clamping: max(0, wait))
    }

    // MARK: logging

    private func note(_ what: String) {
        unlogged[what, default: 0] += 1
        flushLog(force: false)
    }

    /// Logs what happened since the last line, at most one line every 10 s.
    private func flushLog(force: Bool) {
        guard !unlogged.isEmpty else { return }
        let now = Self.monotonic()
        guard force || lastLog == .min || now - lastLog >= 10_000_000_000 else { return }
        lastLog = now
        log(unlogged.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; "))
        unlogged = [:]
    }

    static func monotonic() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

}

/// What the server counts about its own clients (served with the metrics).
struct ControlCounters {
    /// Per endpoint (control, metrics).
    var refused: [UInt64] = [0, 0]
    /// Per endpoint: [oversize, request timeout, answer left unread].
    var dropped: [[UInt64]] = [[0, 0, 0], [0, 0, 0]]

    func prometheusText() -> String {
        var lines = [
            "# HELP tapestry_control_clients_refused_total Clients closed at once: the endpoint already served its limit.",
            "# TYPE tapestry_control_clients_refused_total counter",
        ]
        let endpoints = ["control", "metrics"]
        for (index, name) in endpoints.enumerated() {
            lines.append("tapestry_control_clients_refused_total{endpoint=\"\(name)\"} \(refused[index])")
        }
        lines += [
            "# HELP tapestry_control_clients_dropped_total Clients closed for a request too long or too slow, or an answer left unread.",
            "# TYPE tapestry_control_clients_dropped_total counter",
        ]
        for (index, name) in endpoints.enumerated() {
            for (reasonIndex, reason) in ["oversize", "request-timeout", "answer-timeout"].enumerated() {
                lines.append("tapestry_control_clients_dropped_total{endpoint=\"\(name)\",reason=\"\(reason)\"} \(dropped[index][reasonIndex])")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
