import CTapestryLinux
import TapestryDatapath
import TapestryReplay
import TapestryTopology
import TapestryWire

#if canImport(Glibc)
import Glibc
#endif

/// The live switch: every TAP port of a topology attached, one epoll loop reading batches from
/// ready ports, the same `Datapath` that replay drives, and the results written back out.
///
/// One thread. The wall clock is read once per batch. A port whose device goes away is marked
/// down (logged, its MAC entries flushed) and the others keep running; a port whose transmit queue
/// is full drops the frame (`tx-full`) instead of blocking the loop.
public final class LiveSwitch {
    public internal(set) var topology: Topology
    public internal(set) var datapath: Datapath
    /// Where `reload` reads the topology again (nil: reload refused).
    public var topologyPath: String?
    let offloads: Bool
    var devices: [TAPDevice]
    var up: [Bool]
    let epoll: Int32
    private let stopSignals: Int32
    private let reloadSignals: Int32
    var batch: FrameBatch
    let log: (String) -> Void
    /// A `ctl trace` waiting for frames on one port (its client stays connected until it ends).
    var pendingTrace: PendingTrace?
    /// Incremented by every successful reload.
    var reloads = 0
    private var control: SocketListener?
    private var metrics: SocketListener?
    private static let controlTag = UInt32.max - 1
    private static let metricsTag = UInt32.max - 2

    /// Largest frame read from a TAP: a 64 KB GSO segment plus Ethernet and one tag.
    public static let maxFrameLength = 65_535 + 18

    /// Attaches every port in topology order. On failure every device attached so far is closed
    /// (and so removed, unless it was persistent) before the error is thrown.
    public init(topology: Topology, offloads: Bool = true, log: @escaping (String) -> Void) throws(PortError) {
        // The control socket first: it also tells whether this switch is already running, before
        // any device is touched.
        do {
            control = try SocketListener(unixPath: topology.controlPath, switchName: topology.name)
            if let address = topology.metrics {
                metrics = try SocketListener(tcpHost: address.host, port: address.port)
            }
        } catch {
            throw PortError(port: "", operation: "", detail: error.description)
        }
        self.topology = topology
        self.offloads = offloads
        self.log = log
        // A peer that hangs up (a ctl client, a metrics scraper) must never kill the switch.
        signal(SIGPIPE, SIG_IGN)
        datapath = Datapath(
            configuration: DatapathConfiguration(topology: topology), batchCapacity: 32,
            maxFrameLength: Self.maxFrameLength)
        batch = datapath.makeBatch()
        reloadSignals = tapestry_reload_signal_fd()
        stopSignals = tapestry_stop_signal_fd()
        guard stopSignals >= 0 else { throw PortError(port: "", operation: "signalfd", errno: errno) }
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else {
            Glibc.close(stopSignals)
            throw PortError(port: "", operation: "epoll_create1", errno: errno)
        }
        devices = []
        up = []
        do throws(PortError) {
            for port in topology.ports {
                guard case .tap(let name) = port.attachment else {
                    throw PortError(port: port.name, operation: "attach", detail: "only tap ports are supported by run so far")
                }
                let device = try TAPDevice(port: port.name, name: name, netns: port.netns, offloads: offloads)
                devices.append(device)
                up.append(true)
                try watch(device.fileDescriptor, tag: UInt32(devices.count - 1), port: port.name)
            }
            try watch(stopSignals, tag: UInt32.max, port: "")
            try watch(reloadSignals, tag: UInt32.max - 3, port: "")
            if let control { try watch(control.descriptor, tag: Self.controlTag, port: "") }
            if let metrics { try watch(metrics.descriptor, tag: Self.metricsTag, port: "") }
        } catch {
            for device in devices { device.closeDevice() }
            Glibc.close(epoll)
            Glibc.close(stopSignals)
            throw error
        }
    }

    deinit {
        for device in devices { device.closeDevice() }
        Glibc.close(epoll)
        Glibc.close(stopSignals)
        Glibc.close(reloadSignals)
    }

    func watch(_ fd: Int32, tag: UInt32, port: String) throws(PortError) {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u32 = tag
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else {
            throw PortError(port: port, operation: "epoll_ctl", errno: errno)
        }
    }

    /// Runs until SIGINT or SIGTERM; returns the signal's name. Devices stay open until `detach()`
    /// or deinit.
    public func run() -> String {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            // While a live trace waits for frames, wake up to end it on time.
            let timeout: Int32 = pendingTrace == nil ? -1 : 100
            let ready = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, 64, timeout) }
            if pendingTrace != nil { finishTraceIfDue() }
            if ready < 0 {
                if errno == EINTR { continue }
                log("epoll_wait failed: \(String(cString: strerror(errno))); stopping")
                return "error"
            }
            for index in 0..<Int(ready) where Int(events[index].data.u32) < devices.count || events[index].data.u32 >= UInt32.max - 3 {
                let tag = events[index].data.u32
                if tag == Self.controlTag {
                    let generation = reloads
                    control?.serveOne { request, client in answerControl(request, client: client) }
                    // After a reload the other events of this wait name old port indices: wait again
                    // (epoll is level-triggered, so nothing is lost).
                    if reloads != generation { break }
                    continue
                }
                if tag == Self.metricsTag {
                    metrics?.serveOne { _, _ in prometheusResponse() }
                    continue
                }
                if tag == UInt32.max {
                    var info = signalfd_siginfo()
                    _ = read(stopSignals, &info, MemoryLayout<signalfd_siginfo>.size)
                    return info.ssi_signo == UInt32(SIGINT) ? "SIGINT" : "SIGTERM"
                }
                if tag == UInt32.max - 3 {
                    var info = signalfd_siginfo()
                    _ = read(reloadSignals, &info, MemoryLayout<signalfd_siginfo>.size)
                    log(reload().message)
                    break
                }
                service(port: PortID(tag))
            }
        }
    }

    /// Closes every device (removing the ones this process created) and the control socket.
    public func detach() {
        for device in devices { device.closeDevice() }
        control = nil
        metrics = nil
    }

    func isUp(_ port: PortID) -> Bool { up[Int(port)] }

    /// Reads one batch from a ready port, runs it, and writes the results.
    private func service(port: PortID) {
        if let trace = pendingTrace, trace.port == port {
            serviceTraced(port: port)
            return
        }
        let device = devices[Int(port)]
        batch.removeAll()
        batch.ingressPort = port
        while true {
            let area = device.offloads ? batch.nextFreeAreaWithVirtioHeader() : batch.nextFreeFrameArea()
            guard let area else { break }
            let count = Glibc.read(device.fileDescriptor, area.baseAddress, area.count)
            if count < 0 {
                if errno == EINTR { continue }
                if errno != EAGAIN { portDown(port, "read failed: \(String(cString: strerror(errno)))") }
                break
            }
            if device.offloads {
                if !batch.commitWithVirtioHeader(readLength: count) {
                    datapath.countDrop(on: port, .invalid, bytes: count)
                }
            } else {
                batch.commit(length: count)
            }
        }
        guard !batch.isEmpty else { return }
        datapath.process(batch, now: Self.wallClock())
        transmit()
    }

    func transmit() {
        let queues = datapath.transmitQueues
        for active in 0..<queues.activeCount {
            let port = queues.activePort(active)
            let device = devices[Int(port)]
            for index in 0..<queues.count(port) {
                let length = queues.frame(port, index).count
                guard up[Int(port)] else {
                    datapath.countTransmitDrop(on: port, .portDown, bytes: length)
                    continue
                }
                let bytes: UnsafeRawBufferPointer
                if device.offloads {
                    bytes = queues.frameWithVirtioHeader(port, index)
                } else {
                    let offload = queues.offload(port, index)
                    if offload.isGSO {
                        datapath.countTransmitDrop(on: port, .offloadUnsupported, bytes: length)
                        continue
                    }
                    if offload.needsChecksum {
                        _ = VirtioNetHeader.completeChecksum(queues.mutableFrame(port, index), offload)
                    }
                    bytes = queues.frame(port, index)
                }
                let written = Glibc.write(device.fileDescriptor, bytes.baseAddress, bytes.count)
                if written < 0 {
                    if errno == EAGAIN || errno == ENOBUFS {
                        datapath.countTransmitDrop(on: port, .txFull, bytes: length)
                    } else if errno != EINTR {
                        datapath.countTransmitDrop(on: port, .portDown, bytes: length)
                        portDown(port, "write failed: \(String(cString: strerror(errno)))")
                    }
                }
            }
        }
        queues.removeAll()
    }

    private func portDown(_ port: PortID, _ reason: String) {
        guard up[Int(port)] else { return }
        up[Int(port)] = false
        let device = devices[Int(port)]
        epoll_ctl(epoll, EPOLL_CTL_DEL, device.fileDescriptor, nil)
        datapath.macTable.flush(port: port)
        log("port '\(device.port)' (tap '\(device.name)') is down: \(reason); the other ports keep running")
    }

    static func wallClock() -> Timestamp {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Timestamp(seconds: Int64(now.tv_sec), nanoseconds: Int64(now.tv_nsec))
    }
}
