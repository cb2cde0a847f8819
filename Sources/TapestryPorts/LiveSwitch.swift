import CTapestryLinux
import TapestryDatapath
import TapestrySwitchCore
import TapestryTopology
import TapestryWire

#if canImport(Glibc)
import Glibc
#endif

/// The live switch: every port of a topology attached (TAP devices, QEMU socket peers, host
/// interfaces), one epoll loop reading batches from ready ports into the `SwitchCore` that replay
/// and the tests drive too, and the results written back out.
///
/// One datapath thread, and a control thread that serves the control socket and the metrics
/// endpoint (`ControlServer`): their clients never delay forwarding, because the datapath thread
/// only takes their jobs between batches, each a bounded copy. The wall clock is read once per batch. A port whose device goes away is marked
/// down (logged, its MAC entries flushed) and the others keep running; a socket port is down
/// while no VM is connected and comes up when one is; a port whose transmit queue is full drops
/// the frame (`tx-full`) instead of blocking the loop.
public final class LiveSwitch {
    /// The topology, the datapath and the batch; a reload replaces what it holds.
    let core: SwitchCore
    public var topology: Topology { core.topology }
    public var datapath: Datapath { core.datapath }
    var batch: FrameBatch { core.batch }
    /// Where `reload` reads the topology again (nil: reload refused).
    public var topologyPath: String?
    let offloads: Bool
    /// The ports in topology order, each with what the loop knows about it (one array of
    /// values, rebuilt as one by a reload).
    var slots: [PortSlot] = []
    /// Namespaces `run` created for TAP ports (`createMissingNamespaces`), removed at stop.
    var createdNamespaces: [String] = []
    let epoll: Int32
    private let stopSignals: Int32
    private let reloadSignals: Int32
    /// TAP ports without offloads (`--no-offloads`) take plain frames, like QEMU's sockets.
    let plainForTaps = PlainFrames(gap: 0)
    /// TCP segments that arrived through a tunnel, merged into TSO frames for TAP devices.
    let mergeForTaps = MergeBuffer()
    /// Per port: a VXLAN port (set at start and by a reload), read once per batch.
    var tunnelPorts: [Bool] = []
    /// What ports report dropping; settled into the datapath's counters after each receive and send.
    let drops = PortDrops()
    let log: @Sendable (String) -> Void
    /// A `ctl trace` waiting for frames on one port (its client stays connected until it ends).
    var pendingTrace: PendingTrace?
    /// Incremented by every successful reload.
    var reloads = 0
    private var control: SocketListener?
    private var metrics: SocketListener?
    /// Jobs from the control thread and answers back; its eventfd is watched under `EventTag.control`.
    let channel: ControlChannel
    /// Jobs were left for the next turn (the time budget ran out).
    var controlBacklog = false
    /// The longest one turn of control jobs held the datapath thread, in ns (metrics, stats).
    var longestControlPause: Int64 = 0
    /// The most CPU time one turn of control jobs took on the datapath thread, in ns.
    var longestControlWork: Int64 = 0

    /// Largest frame a port takes: a 64 KB GSO segment plus Ethernet and one tag.
    public static let maxFrameLength = SwitchCore.maxFrameLength

    /// Attaches every port in topology order. On failure every port attached so far is closed
    /// (a TAP device removed, unless it was persistent; a socket file removed) before the error
    /// is thrown.
    public init(topology: Topology, offloads: Bool = true, log: @escaping @Sendable (String) -> Void) throws(PortError) {
        // The control socket first: it also tells whether this switch is already running, before
        // any device is touched.
        do {
            control = try SocketListener(unixPath: topology.controlPath, switchName: topology.name, createDirectory: topology.control == nil)
            if let address = topology.metrics {
                metrics = try SocketListener(tcpHost: address.host, port: address.port)
            }
        } catch {
            throw PortError(port: "", operation: "", detail: error.description)
        }
        channel = try ControlChannel()
        self.offloads = offloads
        self.log = log
        // A peer that hangs up (a ctl client, a metrics scraper, a VM) must never kill the switch.
        signal(SIGPIPE, SIG_IGN)
        // Tables and frame buffers are large, allocated once and replaced whole by a reload. A
        // fixed mmap threshold keeps each of them in its own mapping, returned to the system when
        // a reload frees it; glibc's default raises the threshold after the first large free, so
        // later tables came from the heap and RSS grew with every reload.
        _ = tapestry_fix_mmap_threshold(256 * 1024)
        core = SwitchCore(topology: topology, hashKey: .random())
        tunnelPorts = core.configuration.ports.map { $0.tunnel != nil }
        reloadSignals = tapestry_reload_signal_fd()
        stopSignals = tapestry_stop_signal_fd()
        guard stopSignals >= 0 else { throw PortError(port: "", operation: "signalfd", errno: errno) }
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else {
            Glibc.close(stopSignals)
            throw PortError(port: "", operation: "epoll_create1", errno: errno)
        }
        do throws(PortError) {
            try createMissingNamespaces(for: topology.ports)
            for (index, port) in topology.ports.enumerated() {
                let live = try LivePort.open(
                    port, index: index, configuration: core.configuration, offloads: offloads,
                    maxFrameLength: Self.maxFrameLength)
                slots.append(PortSlot(port: live, isUp: live.startsUp))
                try watch(slots[slots.count - 1], index: slots.count - 1, name: port.name)
            }
            try watch(stopSignals, tag: .stop, port: "")
            try watch(reloadSignals, tag: .reload, port: "")
            try watch(channel.datapathWake, tag: .control, port: "")
        } catch {
            for slot in slots { slot.port.close() }
            removeCreatedNamespaces()
            Glibc.close(epoll)
            Glibc.close(stopSignals)
            throw error
        }
    }

    deinit {
        for slot in slots { slot.port.close() }
        removeCreatedNamespaces()
        Glibc.close(epoll)
        Glibc.close(stopSignals)
        Glibc.close(reloadSignals)
    }

    func watch(_ fd: Int32, tag: EventTag, port: String, events: UInt32 = EPOLLIN.rawValue) throws(PortError) {
        var event = epoll_event()
        event.events = events
        event.data.u32 = tag.raw
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else {
            throw PortError(port: port, operation: "epoll_ctl", errno: errno)
        }
    }

    /// Watches every descriptor of `slot`'s port under its index, for what `interest` says.
    func watch(_ slot: PortSlot, index: Int, name: String) throws(PortError) {
        for (fd, role) in slot.port.descriptors {
            try watch(fd, tag: .port(index, role), port: name, events: slot.interest(role))
        }
    }

    /// Changes what `fd`, registered under `tag`, is watched for.
    func rewatch(_ fd: Int32, tag: EventTag, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.u32 = tag.raw
        epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event)
    }

    func unwatch(_ port: LivePort) {
        for (fd, _) in port.descriptors { epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil) }
    }

    /// Runs until SIGINT or SIGTERM; returns the signal's name. Ports stay open until `detach()`
    /// or deinit.
    public func run() -> String {
        var server: ControlThread?
        do {
            server = try ControlThread(
                channel: channel, control: control?.descriptor, metrics: metrics?.descriptor, switchName: topology.name, log: log)
        } catch {
            log("\(error); the control socket and metrics are not served, forwarding goes on")
        }
        defer { server?.stop() }
        // Load balancers learn their backends' MACs now, so no first connection waits for one.
        core.askForBackendMACs(now: Self.wallClock()) { port, queues in transmit(port, queues) }
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            // Whole frames already read from a stream socket are not reported by epoll again.
            let buffered = hasBufferedInput()
            // A datagram VM's full queue without a drain notification: retry every millisecond.
            let retrying = datagramsWaiting()
            // While a live trace waits for frames, wake up to end it on time.
            // A firewall log line waiting for its second to end: wake up to write it.
            let logging = core.datapath.firewallLogPending
            var timeout: Int32 = buffered || controlBacklog ? 0 : retrying ? 1 : pendingTrace != nil ? 100 : logging ? 1000 : -1
            if let due = core.datapath.nextHealthCheck {
                let now = Self.wallClock().nanoseconds
                // A backend never probed is due at Int64.min: compare before subtracting.
                let wait = due.nanoseconds <= now ? 0 : (due.nanoseconds &- now) / 1_000_000 + 1
                let milliseconds = Int32(clamping: wait)
                timeout = timeout < 0 ? milliseconds : min(timeout, milliseconds)
            }
            let ready = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, 64, timeout) }
            if pendingTrace != nil { finishTraceIfDue() }
            if ready < 0 {
                if errno == EINTR { continue }
                log("epoll_wait failed: \(String(cString: strerror(errno))); stopping")
                return "error"
            }
            let generation = reloads
            // Control jobs run after this wait's batches, so a request never comes before frames.
            var controlDue = controlBacklog
            for index in 0..<Int(ready) {
                switch EventTag(raw: events[index].data.u32) {
                case .control:
                    controlDue = true
                case .stop:
                    var info = signalfd_siginfo()
                    _ = read(stopSignals, &info, MemoryLayout<signalfd_siginfo>.size)
                    return info.ssi_signo == UInt32(SIGINT) ? "SIGINT" : "SIGTERM"
                case .reload:
                    var info = signalfd_siginfo()
                    _ = read(reloadSignals, &info, MemoryLayout<signalfd_siginfo>.size)
                    log(reload().message)
                case .port(let port, let role):
                    guard port < slots.count else { continue }
                    switch role {
                    case .listening: acceptVM(port: port)
                    case .sending: datagramWritable(PortID(port))
                    case .frames: service(port: PortID(port), events: events[index].events)
                    }
                }
                // After a reload the other events of this wait name old port indices: wait again
                // (epoll is level-triggered, so nothing is lost).
                if reloads != generation { break }
            }
            if buffered, reloads == generation { serviceBufferedInput() }
            if retrying, reloads == generation {
                for index in slots.indices {
                    if case .datagram(let socket) = slots[index].port, socket.needsRetry { datagramWritable(PortID(index)) }
                }
            }
            if reloads == generation, let due = core.datapath.nextHealthCheck, due <= Self.wallClock() {
                checkBackends()
            }
            if controlDue { serveControl() }
            if logging || core.datapath.firewallLogPending { core.drainFirewallLog(now: Self.wallClock()) { log($0) } }
        }
    }

    /// Closes every port (removing the TAP devices and socket files this process created) and
    /// the control socket.
    public func detach() {
        for slot in slots { slot.port.close() }
        removeCreatedNamespaces()
        control = nil
        metrics = nil
    }

    func isUp(_ port: PortID) -> Bool { slots[Int(port)].isUp }

    /// Reads one batch from a ready port, runs it, and writes the results.
    func service(port: PortID, events: UInt32) {
        if events & EPOLLOUT.rawValue != 0, case .stream(let socket) = slots[Int(port)].port {
            if let broken = socket.flushBacklog() { apply(socket.broke(broken, drops), to: port) }
            drops.settle(on: port, into: datapath)
            updateWritableInterest(port)
            if events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) == 0 { return }
        }
        if let trace = pendingTrace, trace.port == port {
            serviceTraced(port: port)
            return
        }
        receive(port, limit: batch.capacity)
        if !batch.isEmpty { core.run(now: Self.wallClock()) { port, queues in transmit(port, queues) } }
        finishClosing(port)
    }

    /// Fills the batch with up to `limit` frames from `port`. A port that fails is taken down.
    func receive(_ port: PortID, limit: Int) {
        defer { drops.settle(on: port, into: datapath) }
        core.begin(port: port)
        handle(slots[Int(port)].port.receive(into: core.batch, limit: limit, drops), on: port)
    }

    /// Sends what the batch queued for `port` (the core calls this once per port with frames).
    func transmit(_ port: PortID, _ queues: TransmitQueues) {
        defer { drops.settle(on: port, into: datapath) }
        guard slots[Int(port)].isUp else {
            for index in 0..<queues.count(port) {
                drops.unsent(.portDown, bytes: queues.frame(port, index).count)
            }
            return
        }
        // Frames from a VXLAN port arrive cut to the underlay's MTU: the host behind a TAP device
        // takes them merged back into TSO frames (other ports' frames go as they came).
        let ingress = Int(core.batch.ingressPort)
        let merge = ingress < tunnelPorts.count && tunnelPorts[ingress] ? mergeForTaps : nil
        handle(slots[Int(port)].port.transmit(queues, port, drops, plain: plainForTaps, merge: merge), on: port)
        updateWritableInterest(port)
    }

    /// Does what a port's receive or send asked of the loop.
    private func handle(_ outcome: PortOutcome, on port: PortID) {
        switch outcome {
        case .ok:
            break
        case .failed(let reason):
            portDown(port, reason)
        case .lifecycle(let change):
            apply(change, to: port)
        case .newSender(let change):
            slots[Int(port)].watchingWritable = false
            if case .datagram(let socket) = slots[Int(port)].port { watchSender(port, socket) }
            apply(change, to: port)
        }
    }

    /// Takes a port down for good (until a reload): its descriptors are no longer watched.
    private func portDown(_ port: PortID, _ reason: String) {
        guard slots[Int(port)].isUp else { return }
        slots[Int(port)].isUp = false
        unwatch(slots[Int(port)].port)
        // A failed tunnel socket is closed now, so that a reload can bind its address again.
        if case .vxlan(let tunnel) = slots[Int(port)].port { tunnel.close() }
        datapath.macTable.flush(port: port)
        log("port '\(topology.ports[Int(port)].name)' (\(slots[Int(port)].port.label)) is down: \(reason); the other ports keep running")
    }

    /// Sends the health-check probes due and logs the backends that went down or came up.
    func checkBackends() {
        core.runHealthChecks(now: Self.wallClock()) { port, queues in transmit(port, queues) }
        logHealthChanges()
    }

    func logHealthChanges() {
        for change in core.datapath.takeHealthChanges() {
            let balancer = core.configuration.loadBalancers[change.balancer]
            let backend = balancer.backends[change.backend]
            let check = balancer.health
            let why = change.up
                ? "\(check?.rise ?? 0) probes in a row answered"
                : "\(check?.fall ?? 0) probes in a row failed"
            log("load balancer \(balancer.name): backend \(backend.address.withPort(backend.port)) \(change.up ? "up" : "down") (\(why))")
        }
    }

    static func wallClock() -> Timestamp {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Timestamp(seconds: Int64(now.tv_sec), nanoseconds: Int64(now.tv_nsec))
    }
}
