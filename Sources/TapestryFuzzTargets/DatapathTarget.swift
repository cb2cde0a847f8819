import TapestryDatapath
import TapestryPcap
import TapestrySwitchCore
import TapestryTopology
import TapestryWire

/// Random frames into a whole datapath, built from a topology through the same
/// topology -> DatapathConfiguration mapping `replay` uses, and fed as replay feeds it: batches of
/// one port and one timestamp, any timestamp a capture can hold (backwards, before 1970, both
/// ends of PcapReader's range).
///
/// The topology has access and trunk ports (with a native VLAN), a firewall with rules (lists
/// among them, two rules and the default logged) and a small connection table, and two load balancers (TCP and UDP); a second variant tracks
/// connections for the load balancer only, a third is plain L2. Small MAC and connection tables
/// so that eviction and "table full" are reached.
///
/// Input: byte 0 picks the variant (bits 0-1) and whether every frame's IPv4, TCP, UDP and ICMP
/// checksums are made valid before it goes in (bit 2), and whether batches run with tracing on
/// (bit 3: every frame then has trace lines, and a dropped frame's name its drop reason). Then records:
/// `port, time step, flags, length (2 bytes), frame`; a time step of 255 is followed by an
/// absolute 8-byte timestamp; flags bit 0 puts a virtio-net header (10 more bytes) on the frame.
///
/// Invariants per batch, from the datapath's counters: frames in grow by the batch; drops by
/// the frames whose verdict is a drop; frames out by the frames queued; every frame that passed
/// (forward or flood) leaves at least once, at most once per port. Every output frame parses
/// without a malformation; when inputs had valid checksums, every output's IPv4 header and
/// TCP/UDP/ICMP checksums are valid (the load balancer's rewrites update them). The MAC and
/// connection tables stay within their sizes. The firewall log's lines name rules the topology
/// has and render. Outputs with offloads go through the software
/// segmentation checks too (what a socket port would do with them). After each batch, frames a
/// load balancer held for an unknown backend are released as `SwitchCore` releases them
/// (`releaseHeld`), and held to the same output checks; then the health checks due run as a live
/// switch runs them (every balancer has them, the IPv6 one probing by neighbor solicitation; probes
/// are checked to parse with valid checksums),
/// so answers to probes (and forgeries) in the input meet the matching code.
///
/// Port `v` is a VXLAN tunnel (two remotes, both networks by VNI, MTU 1500). What arrives there
/// is decapsulated as replay does it (`VXLANEndpoint.admitUnderlay`): flags bit 1 wraps the
/// frame in valid outer headers first (from remote bit 2, VNI of lan or dmz by bit 3, or bit 4
/// an unknown VNI), otherwise the bytes are the outer packet as they are; what the tunnel
/// refuses is a `tunnel` drop. With bit 2 of byte 0, the inner frame's checksums are made valid
/// (before wrapping, or after decapsulating the bytes as they came). Every frame queued on `v` is encapsulated for each remote it goes
/// to: the outer packet decodes, carries the frame unchanged and fits the MTU, or the frame is
/// longer than the MTU allows and none is made.
enum DatapathTarget {
    static let yaml = """
        name: fuzz
        mac_aging: 5
        mac_table_size: 8
        networks: { lan: { vlan: 10 }, dmz: { vlan: 20 } }
        ports:
          a: { tap: fa, network: lan }
          b: { tap: fb, network: lan }
          t: { tap: ft, trunk: [lan, dmz], native: lan }
          d: { tap: fd, network: dmz }
          v: { vxlan: { local: 10.0.99.1, remotes: [10.0.99.2, 10.0.99.3], mtu: 1500 }, trunk: [lan, dmz] }
        firewall:
          default: drop
          max_connections: 8
          timeouts: { tcp_established: 30, udp: 5, tcp_syn_sent: 3 }
          rules:
            - { action: allow, proto: tcp, dst: 10.0.10.100, dport: 80 }
            - { action: allow, proto: udp, dport: 53 }
            - { action: allow, proto: udp, dport: 5000 }
            - { action: allow, proto: icmp }
            - { action: allow, proto: icmpv6 }
            - { action: drop, proto: tcp, src: 10.0.20.0/24 }
            - { action: allow, proto: tcp, dport: "1000-2000", network: dmz }
            - { action: allow, proto: udp, src: "fd00::/8", sport: 5000 }
            - { action: allow, proto: tcp, dst: [10.0.10.11, 10.0.10.12, "fd00::/16"], dport: [22, 80, "8000-8099"], log: true }
            - { action: drop, proto: udp, src: [10.0.20.0/24, "fd00:20::/32"], sport: [1, "100-200"], log: true }
          log_default: true
        load_balancers:
          web:
            network: lan
            vip: 10.0.10.100/24
            port: 80
            proto: tcp
            mac: "02:00:00:00:01:00"
            backends: [10.0.10.11:8080, { address: "10.0.10.12:8080", weight: 2 }]
            health: { probe: tcp, interval: 1, timeout: 1, rise: 1, fall: 1 }
          dns:
            network: dmz
            vip: 10.0.20.53
            port: 53
            proto: udp
            mac: "02:00:00:00:02:00"
            backends: [10.0.20.11:53]
            health: { probe: icmp, interval: 1, timeout: 1, rise: 1, fall: 1 }
          web6:
            network: lan
            vip: fd00:10::100/64
            port: 80
            mac: "02:00:00:00:03:00"
            backends: ["[fd00:10::11]:8080", "[fd00:10::12]:8080"]
            health: { probe: arp, interval: 1, timeout: 1, rise: 1, fall: 1 }
            affinity: 60
        """

    /// The three variants' topologies, loaded once (loading is not what this target fuzzes).
    static let topologies: [Topology] = {
        let full = yaml
        let trackingOnly = yaml.replacingFirewall(with: "")
        let plain = trackingOnly.replacingLoadBalancers()
        return [full, trackingOnly, plain].map { text in
            switch TopologyLoader.parse(yaml: text, file: "fuzz.yaml") {
            case .success(let topology): return topology
            case .failure(let errors): fatalError("the fuzz topology does not load:\n\(errors)")
            }
        }
    }()

    /// Their datapath configurations, mapped once too; the tracking-only variant's connection
    /// table is as small as the firewall's (its default, 262,144, made a datapath 0.4 ms to build),
    /// and the fragment table has 16 slots, not 4,096 (whose allocation per input was a tenth of
    /// this target's time, and a small table reaches its collisions).
    static let configurations: [DatapathConfiguration] = topologies.map { topology in
        var configuration = DatapathConfiguration(topology: topology)
        configuration.trackingOnlyConnections = 8
        configuration.fragmentSlots = 16
        return configuration
    }

    static let batchCapacity = 8
    static let maxFrameLength = 2048

    /// The firewall log after a batch: at most its ring's worth of lines, each naming a rule the
    /// topology has (or `default`), a "not logged" line counting at least one connection, and
    /// every line renders.
    static func checkLog(_ datapath: Datapath, topology: Topology, now: Int64) throws(InvariantViolation) {
        var lines = 0
        var violation: InvariantViolation?
        let rules = topology.firewall?.rules.count ?? 0
        datapath.drainFirewallLog(now: Timestamp(nanoseconds: now)) { entry in
            lines += 1
            if entry.rule < -1 || entry.rule >= rules { violation = InvariantViolation("log line for rule \(entry.rule) of \(rules)") }
            if case .notLogged(let count) = entry.kind, count == 0 { violation = InvariantViolation("a 'not logged' line of 0") }
            if FirewallLogText.line(entry, topology: topology).isEmpty { violation = InvariantViolation("an empty log line") }
        }
        if let violation { throw violation }
        try require(lines <= 256 + rules + 1, "\(lines) log lines after one batch")
    }

    /// Every frame of a traced batch has events, and each one the pipeline dropped renders a
    /// line naming its drop reason (the stage that dropped it recorded why).
    static func checkTrace(
        _ datapath: Datapath, _ batch: FrameBatch, _ originals: [[UInt8]], topology: Topology
    ) throws(InvariantViolation) {
        let events = datapath.traceEvents
        for event in events { try require(Int(event.frame) < batch.count, "an event for frame \(event.frame) of \(batch.count)") }
        guard datapath.traceEventsLost == 0 else { return }
        for index in 0..<batch.count {
            let lines = TraceText.describe(
                frame: index, events: events, original: originals[index], ingress: batch.ingressPort,
                configuration: datapath.configuration, topology: topology)
            try require(!lines.isEmpty, "frame \(index) of a traced batch has no trace lines")
            if case .drop(let reason) = batch.verdicts[index] {
                try require(
                    lines.contains { $0.contains("dropped (\(reason.name))") },
                    "frame \(index) dropped (\(reason.name)) but its trace says:\n\(lines.joined(separator: "\n"))")
            }
        }
    }

    static func run(_ data: UnsafeRawBufferPointer) throws(InvariantViolation) {
        var input = ByteReader(data)
        let mode = input.u8()
        let configuration = configurations[Int(mode & 3) % configurations.count]
        let fixChecksums = mode & 4 != 0
        let datapath = Datapath(configuration: configuration, batchCapacity: batchCapacity, maxFrameLength: maxFrameLength)
        let batch = datapath.makeBatch()
        let portCount = configuration.ports.count
        var now: Int64 = 1_700_000_000_000_000_000
        var batchTime = now
        var scratch = [UInt8](repeating: 0, count: maxFrameLength + 64)
        var expectedDrops: UInt64 = 0
        var consumed: UInt64 = 0
        var fed: UInt64 = 0
        let tunnels = (0..<portCount).map { VXLANEndpoint(configuration: configuration, port: PortID($0)) }
        var wrapped = [UInt8](repeating: 0, count: maxFrameLength + VXLAN.underlayHeaderLength)

        let tracing = mode & 8 != 0
        let ownFrames = datapath.makeBatch()
        func flush() throws(InvariantViolation) {
            guard !batch.isEmpty else { return }
            let before = datapath.counters
            let originals = tracing ? (0..<batch.count).map { Array(batch.frame($0)) } : []
            datapath.process(batch, now: Timestamp(nanoseconds: batchTime), tracing: tracing)
            let after = datapath.counters
            if tracing { try checkTrace(datapath, batch, originals, topology: topologies[Int(mode & 3) % topologies.count]) }
            try checkBatch(datapath, batch, before, after, portCount: portCount, fixChecksums: fixChecksums)
            try checkTunnels(datapath, tunnels)
            try checkLog(datapath, topology: topologies[Int(mode & 3) % topologies.count], now: batchTime)
            for index in 0..<batch.count where batch.verdicts[index].isDrop { expectedDrops += 1 }
            for index in 0..<batch.count where batch.verdicts[index] == .consume { consumed += 1 }
            expectedDrops += after.refusedConnections &- before.refusedConnections
            expectedDrops += after.fragmentsHeldDropped &- before.fragmentsHeldDropped
            datapath.transmitQueues.removeAll()
            batch.removeAll()
            expectedDrops += try releaseHeld(datapath, ownFrames, tunnels, now: batchTime, fixChecksums: fixChecksums)
            expectedDrops += try releaseHeldFragments(datapath, ownFrames, tunnels, now: batchTime, consumed: consumed, fixChecksums: fixChecksums)
            try runHealthChecks(datapath, ownFrames, tunnels, now: batchTime)
        }

        while !input.isAtEnd {
            let port = PortID(Int(input.u8()) % portCount)
            let step = input.u8()
            let flags = input.u8()
            var offload = VirtioNetHeader()
            if flags & 1 != 0 {
                var header = [UInt8](repeating: 0, count: VirtioNetHeader.length)
                let bytes = input.bytes(10)
                for (index, byte) in bytes.enumerated() { header[index] = byte }
                offload = header.withUnsafeBytes { VirtioNetHeader(loading: $0.baseAddress!) }
            }
            let length = Int(input.u16())
            let frame = input.bytes(length)
            // Any time a capture can give replay: within PcapReader.timestampLimit of 1970, in
            // any order (the datapath must not trap on the ends of that range).
            if step == 255 {
                now = Int64(bitPattern: input.u64()) % PcapReader.timestampLimit
            } else {
                now = (now + Int64(step) * Int64(step) * 10_000_000) % PcapReader.timestampLimit
            }
            if !batch.isEmpty && (batch.ingressPort != port || batchTime != now || batch.isFull) { try flush() }
            fed += 1
            if frame.count > maxFrameLength {
                try flush()
                datapath.countDrop(on: port, .oversize, bytes: frame.count)
                expectedDrops += 1
                continue
            }
            if let tunnel = tunnels[Int(port)] {
                var packet = Array(frame)
                if fixChecksums && flags & 2 != 0 { packet.withUnsafeMutableBytes { Checksums.fix($0) } }
                if flags & 2 != 0 {
                    let vni: UInt32 = flags & 16 != 0 ? 7777 : flags & 8 != 0 ? 20 : 10
                    let remote = tunnel.tunnel.remotes[Int(flags >> 2) & 1]
                    wrapped.withUnsafeMutableBytes { buffer in
                        _ = VXLAN.writeUnderlay(
                            at: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<VXLAN.underlayHeaderLength]),
                            innerLength: packet.count, vni: vni, source: remote, destination: tunnel.tunnel.local,
                            sourcePort: 50000, destinationPort: tunnel.tunnel.udpPort)
                    }
                    packet = Array(wrapped[0..<VXLAN.underlayHeaderLength]) + packet
                }
                let admission = packet.withUnsafeBytes { tunnel.admitUnderlay($0) }
                if !batch.isEmpty && (batch.ingressPort != port || batchTime != now || batch.isFull) { try flush() }
                guard case .success(let admitted) = admission else {
                    try flush()
                    datapath.countDrop(on: port, .tunnel, bytes: packet.count)
                    expectedDrops += 1
                    continue
                }
                try require(
                    admitted.inner.lowerBound >= VXLAN.underlayHeaderLength && admitted.inner.upperBound == packet.count
                        || flags & 2 == 0, "a wrapped frame admitted as \(admitted.inner) of \(packet.count) bytes")
                // Unwrapped input is an outer packet, so the fix above did not reach the inner
                // frame; the checksum invariant needs it valid too.
                if fixChecksums && flags & 2 == 0 {
                    packet.withUnsafeMutableBytes { Checksums.fix(UnsafeMutableRawBufferPointer(rebasing: $0[admitted.inner])) }
                }
                batch.ingressPort = port
                batchTime = now
                packet.withUnsafeBytes {
                    _ = batch.appendTunnelFrame(
                        UnsafeRawBufferPointer(rebasing: $0[admitted.inner]), network: admitted.network, remote: admitted.remote)
                }
                continue
            }
            scratch.withUnsafeMutableBytes { buffer in
                let copy = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<frame.count])
                if let base = frame.baseAddress { copy.copyMemory(from: UnsafeRawBufferPointer(start: base, count: frame.count)) }
                if fixChecksums { Checksums.fix(copy) }
                batch.ingressPort = port
                batchTime = now
                batch.append(UnsafeRawBufferPointer(copy))
            }
            batch.setOffload(batch.count - 1, offload)
        }
        try flush()
        // The input is over: what is held for a first fragment is dropped, as replay drops it.
        let beforeEnd = datapath.counters
        datapath.dropHeldFragments()
        expectedDrops += datapath.counters.fragmentsHeldDropped &- beforeEnd.fragmentsHeldDropped
        try require(datapath.counters.fragmentsHeld == 0, "\(datapath.counters.fragmentsHeld) fragments still held after the end")

        let counters = datapath.counters
        let framesIn = counters.ports.reduce(0) { $0 + $1.framesIn }
        try require(framesIn == fed, "frames in \(framesIn), fed \(fed)")
        try require(counters.totalDrops == expectedDrops, "drops \(counters.totalDrops), verdicts said \(expectedDrops)")
        try require(datapath.macTable.count <= configuration.macTableSize, "MAC table holds \(datapath.macTable.count) of \(configuration.macTableSize)")
        if let table = datapath.connectionTable {
            try require(table.count <= table.maxEntries, "connection table holds \(table.count) of \(table.maxEntries)")
        }
    }

    static func checkBatch(
        _ datapath: Datapath, _ batch: FrameBatch, _ before: DatapathCounters, _ after: DatapathCounters,
        portCount: Int, fixChecksums: Bool
    ) throws(InvariantViolation) {
        let ingress = Int(batch.ingressPort)
        try require(after.ports[ingress].framesIn &- before.ports[ingress].framesIn == UInt64(batch.count), "frames in did not grow by the batch")
        var drops = 0
        var passed = 0
        for index in 0..<batch.count {
            switch batch.verdicts[index] {
            case .drop: drops += 1
            case .forward, .flood, .floodAll: passed += 1
            case .consume: break
            case .pass: throw InvariantViolation("frame \(index) left the pipeline undecided")
            }
        }
        let refused = after.refusedConnections &- before.refusedConnections
        // Fragments held in earlier batches and dropped in this one (their first fragment
        // refused, their datagram broken, replaced or timed out) count on their own ports.
        let heldDropped = after.fragmentsHeldDropped &- before.fragmentsHeldDropped
        try require(
            after.totalDrops &- before.totalDrops == UInt64(drops) &+ refused &+ heldDropped,
            "drops grew by \(after.totalDrops &- before.totalDrops), \(drops) verdicts, \(refused) refused connections and \(heldDropped) held fragments")
        // The parser treats a frame with three or more tags as opaque L2: under a firewall it is
        // dropped (HostileFrameTests.threeTagsAreDroppedByTheFirewall), without one it is
        // switched like any L2 payload and leaves an access port with its outer tag removed,
        // where it may parse as tagged IP or, truncated, as malformed. The outputs of batches
        // holding such frames are therefore not held to parsing cleanly.
        var thirdTag = false
        for index in 0..<batch.count {
            let parsed = batch.metadata[index].parsed
            if parsed.tagCount == 2 && parsed.etherType == 0 && parsed.layer3 == .none { thirdTag = true }
        }
        let queues = datapath.transmitQueues
        var queued = 0
        for active in 0..<queues.activeCount {
            let port = queues.activePort(active)
            try require(Int(port) < portCount, "output on port \(port)")
            let count = queues.count(port)
            queued += count
            try require(after.ports[Int(port)].framesOut &- before.ports[Int(port)].framesOut == UInt64(count), "frames out of \(port) != queued")
            for index in 0..<count {
                let frame = queues.frame(port, index)
                let offload = queues.offload(port, index)
                let parsed = FrameParser.parse(frame)
                if thirdTag && !parsed.isValid { continue }
                try require(parsed.isValid, "output on port \(port) does not parse: \(parsed.malformation!): \(hex(frame))")
                try FrameParserTarget.check(frame, parsed)
                if fixChecksums && offload.isPlain {
                    try require(ChecksumVerifier.ipv4HeaderIsValid(frame, parsed) ?? true, "output IPv4 header checksum invalid on port \(port): \(hex(frame))")
                    try require(ChecksumVerifier.l4IsValid(frame, parsed) ?? true, "output L4 checksum invalid on port \(port), protocol \(parsed.ipProtocol): \(hex(frame))")
                }
                if !offload.isPlain { try SegmentationTarget.check(frame, offload) }
            }
        }
        try require(queued >= passed, "\(passed) frames passed but only \(queued) queued")
        try require(queued <= passed * portCount, "\(queued) queued for \(passed) passing frames")
    }
}

extension DatapathTarget {
    /// Held frames leave as `SwitchCore.run` lets them after each batch. Each released batch's
    /// frames count as released and leave parsing (and with valid checksums, when the inputs had
    /// them); every frame that found its backend unresolved is released, dropped, or still
    /// waiting. Returns the drops counted meanwhile (held frames that waited too long, and
    /// released ones L2 drops).
    static func releaseHeld(
        _ datapath: Datapath, _ ownFrames: FrameBatch, _ tunnels: [VXLANEndpoint?], now: Int64, fixChecksums: Bool
    ) throws(InvariantViolation) -> UInt64 {
        let start = datapath.counters
        let released = try releaseRounds(
            datapath, ownFrames, tunnels, "released frame", checksums: fixChecksums,
            release: { datapath.releaseHeld(into: ownFrames, now: Timestamp(nanoseconds: now)) },
            expected: { parsed, _ in parsed.layer3 == .ipv4 || parsed.layer3 == .ipv6 })
        let end = datapath.counters
        try require(end.heldReleased &- start.heldReleased == released, "released \(released), counted \(end.heldReleased &- start.heldReleased)")
        try require(
            end.heldReleased + end.heldExpired + UInt64(end.heldWaiting) <= end.backendUnresolved,
            "held: \(end.heldReleased) released + \(end.heldExpired) expired + \(end.heldWaiting) waiting > \(end.backendUnresolved) unresolved")
        try require(end.heldWaiting <= 16 * 5, "\(end.heldWaiting) frames waiting for 5 backends")
        return end.totalDrops &- start.totalDrops
    }

    /// Calls `release` (a datapath step that puts frames the switch held into `ownFrames` and
    /// runs them on, as `SwitchCore.run` does after a batch) until it says there are no more,
    /// holding what each round queues to `checkOwnFrames`. Returns how many frames it released.
    static func releaseRounds(
        _ datapath: Datapath, _ ownFrames: FrameBatch, _ tunnels: [VXLANEndpoint?], _ what: String, checksums: Bool,
        release: () -> Bool, expected: (ParsedFrame, UnsafeRawBufferPointer) -> Bool
    ) throws(InvariantViolation) -> UInt64 {
        var released: UInt64 = 0
        var rounds = 0
        while release() {
            rounds += 1
            try require(rounds <= 1_000, "the release of a \(what) keeps returning true")
            try require(!ownFrames.isEmpty, "a release with no frames")
            released += UInt64(ownFrames.count)
            try checkOwnFrames(datapath, tunnels, what, checksums: checksums, expected: expected)
        }
        return released
    }

    /// Later fragments held for their first fragment leave as `SwitchCore.run` lets them after
    /// each batch: they parse as IP fragments (with valid IPv4 header checksums when the inputs
    /// had them; a released frame that is no later fragment is an unexpected output). Held
    /// fragments stay within their bounds, and every one held was a frame the
    /// pipeline consumed: released, dropped or still held is at most what was consumed. Returns
    /// the drops counted meanwhile (released fragments L2 drops).
    static func releaseHeldFragments(
        _ datapath: Datapath, _ ownFrames: FrameBatch, _ tunnels: [VXLANEndpoint?], now: Int64, consumed: UInt64,
        fixChecksums: Bool
    ) throws(InvariantViolation) -> UInt64 {
        let start = datapath.counters
        let released = try releaseRounds(
            datapath, ownFrames, tunnels, "released fragment", checksums: fixChecksums,
            release: { datapath.releaseHeldFragments(into: ownFrames, now: Timestamp(nanoseconds: now)) },
            expected: { parsed, _ in parsed.fragment == .later })
        let end = datapath.counters
        try require(
            end.fragmentsReleased &- start.fragmentsReleased == released,
            "released \(released) fragments, counted \(end.fragmentsReleased &- start.fragmentsReleased)")
        try require(
            end.fragmentsReleased + end.fragmentsHeldDropped + UInt64(end.fragmentsHeld) <= consumed,
            "fragments: \(end.fragmentsReleased) released + \(end.fragmentsHeldDropped) dropped + \(end.fragmentsHeld) held > \(consumed) consumed")
        try require(end.fragmentsHeld <= FragmentTable.heldSlots, "\(end.fragmentsHeld) fragments held")
        return end.totalDrops &- start.totalDrops
    }

    /// Health-check probes as a live switch sends them after a batch: each probe parses, with
    /// valid checksums, and comes from a VIP; probes count no drops (they come from no port).
    static func runHealthChecks(
        _ datapath: Datapath, _ ownFrames: FrameBatch, _ tunnels: [VXLANEndpoint?], now: Int64
    ) throws(InvariantViolation) {
        let dropsBefore = datapath.counters.totalDrops
        var cursor = 0
        var rounds = 0
        let vips = Set(datapath.configuration.loadBalancers.map(\.vip))
        while datapath.runHealthChecks(into: ownFrames, cursor: &cursor, now: Timestamp(nanoseconds: now)) {
            rounds += 1
            try require(rounds <= 100, "runHealthChecks keeps returning true")
            try checkOwnFrames(datapath, tunnels, "probe", checksums: true) { parsed, frame in
                let l3 = Int(parsed.l3Offset)
                return switch parsed.layer3 {
                case .arp: true
                case .ipv4: vips.contains(.v4(IPv4Address(rawValue: frame.u32(l3 + 12))))
                // An IPv6 balancer's probes are TCP or echo from the VIP, or NDP solicitations
                // from the VIP (the probe a `probe: arp` check sends to an IPv6 backend).
                case .ipv6: vips.contains(.v6(IPv6Address(high: frame.u64(l3 + 8), low: frame.u64(l3 + 16))))
                default: false
                }
            }
        }
        try require(datapath.counters.totalDrops == dropsBefore, "health checks counted drops")
    }

    /// The frames the switch queued by itself this round (`what`): each parses and is `expected`
    /// (given its parse), with valid IPv4 and L4 checksums when `checksums` (and no offload);
    /// its tunnel copies are checked too, then the queues emptied.
    static func checkOwnFrames(
        _ datapath: Datapath, _ tunnels: [VXLANEndpoint?], _ what: String, checksums: Bool,
        expected: (ParsedFrame, UnsafeRawBufferPointer) -> Bool
    ) throws(InvariantViolation) {
        let queues = datapath.transmitQueues
        for active in 0..<queues.activeCount {
            let port = queues.activePort(active)
            for index in 0..<queues.count(port) {
                let frame = queues.frame(port, index)
                let parsed = FrameParser.parse(frame)
                try require(parsed.isValid && expected(parsed, frame), "an unexpected \(what) on port \(port): \(hex(frame))")
                if checksums && queues.offload(port, index).isPlain {
                    try require(ChecksumVerifier.ipv4HeaderIsValid(frame, parsed) ?? true, "\(what): IPv4 header checksum invalid: \(hex(frame))")
                    try require(ChecksumVerifier.l4IsValid(frame, parsed) ?? true, "\(what): L4 checksum invalid: \(hex(frame))")
                }
            }
        }
        try checkTunnels(datapath, tunnels)
        queues.removeAll()
    }

    /// Every frame queued on a VXLAN port, encapsulated for each remote it goes to.
    static func checkTunnels(_ datapath: Datapath, _ tunnels: [VXLANEndpoint?]) throws(InvariantViolation) {
        let queues = datapath.transmitQueues
        for active in 0..<queues.activeCount {
            let port = queues.activePort(active)
            guard let tunnel = tunnels[Int(port)] else { continue }
            for index in 0..<queues.count(port) {
                let frame = Array(queues.frame(port, index))
                let destinations = tunnel.destinations(queues, index)
                try require(!destinations.isEmpty, "a frame queued on tunnel \(port) goes to no remote")
                for remote in destinations {
                    guard let packet = tunnel.underlayPacket(queues, index, remote: remote) else {
                        try require(frame.count > tunnel.maxInnerFrame, "no outer packet for a \(frame.count)-byte frame")
                        continue
                    }
                    try require(packet.count <= tunnel.tunnel.mtu, "an outer packet of \(packet.count) bytes")
                    guard case .success(let underlay) = VXLAN.decodeUnderlay(packet, port: tunnel.tunnel.udpPort) else {
                        throw InvariantViolation("an encapsulated frame does not decode: \(hex(packet))")
                    }
                    try require(
                        underlay.destination == tunnel.tunnel.remotes[remote] && underlay.source == tunnel.tunnel.local,
                        "addressed \(underlay.source) -> \(underlay.destination)")
                    let payload = UnsafeRawBufferPointer(rebasing: packet[underlay.payload])
                    guard case .success(let vni) = VXLAN.decode(payload) else {
                        throw InvariantViolation("an encapsulated frame's VXLAN header does not decode: \(hex(packet))")
                    }
                    try require(vni == queues.vni(port, index) && (vni == 10 || vni == 20), "VNI \(vni)")
                    try require(Array(payload[VXLAN.headerLength...]) == frame, "the inner frame changed on the way in")
                }
            }
        }
    }
}

extension String {
    /// The text without its `firewall:` section (up to the next top-level key).
    fileprivate func replacingFirewall(with replacement: String) -> String { removingSection("firewall:") }
    fileprivate func replacingLoadBalancers() -> String { removingSection("load_balancers:") }

    private func removingSection(_ key: String) -> String {
        var kept: [Substring] = []
        var skipping = false
        for line in split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix(key) { skipping = true; continue }
            if skipping, let first = line.first, first != " " { skipping = false }
            if !skipping { kept.append(line) }
        }
        return kept.joined(separator: "\n")
    }
}

/// Makes a frame's checksums valid, so the datapath's rewrites can be held to keeping them so.
enum Checksums {
    static func fix(_ frame: UnsafeMutableRawBufferPointer) {
        let bytes = UnsafeRawBufferPointer(frame)
        // The parser sees through two tags; behind more it sees nothing, yet egress may pop the
        // outer one and the output parse then reaches the packet. Fix the packet behind any
        // number of tags (found by the datapath run of a48988e: a triple-tagged fragment whose
        // checksum could not be made valid came out with two tags and a "bad" header).
        var tagsEnd = 12
        while tagsEnd + 4 <= frame.count, EtherType.isTag(bytes.u16(tagsEnd)) { tagsEnd += 4 }
        if tagsEnd > 12 + 2 * 4 {
            var untagged = Array(bytes[0..<12]) + Array(bytes[tagsEnd...])
            untagged.withUnsafeMutableBytes { fix($0) }
            untagged.withUnsafeBytes { (frame.baseAddress! + tagsEnd).copyMemory(from: $0.baseAddress! + 12, byteCount: $0.count - 12) }
            return
        }
        let parsed = FrameParser.parse(bytes)
        guard parsed.isValid, parsed.layer3 == .ipv4 || parsed.layer3 == .ipv6 else { return }
        let l3 = Int(parsed.l3Offset)
        var end = frame.count
        var pseudo: UInt64 = 0
        if parsed.layer3 == .ipv4 {
            guard let ip = IPv4View(validating: UnsafeRawBufferPointer(rebasing: bytes[l3...])) else { return }
            frame.setU16(l3 + 10, 0)
            frame.setU16(l3 + 10, InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: bytes[l3..<(l3 + ip.headerLength)]))))
            end = l3 + ip.totalLength
            guard parsed.hasL4, parsed.fragment == .none else { return }
            if parsed.ipProtocol != IPProtocol.icmp {
                pseudo = InternetChecksum.ipv4PseudoHeaderSum(
                    source: ip.source, destination: ip.destination, proto: parsed.ipProtocol, length: end - Int(parsed.l4Offset))
            }
        } else {
            guard parsed.hasL4, parsed.fragment == .none,
                let ip = IPv6View(validating: UnsafeRawBufferPointer(rebasing: bytes[l3...]))
            else { return }
            end = l3 + IPv6View.length + ip.payloadLength
            pseudo = InternetChecksum.ipv6PseudoHeaderSum(
                source: ip.source, destination: ip.destination, proto: parsed.ipProtocol, length: end - Int(parsed.l4Offset))
        }
        let l4 = Int(parsed.l4Offset)
        let field: Int
        switch parsed.ipProtocol {
        case IPProtocol.tcp: field = l4 + 16
        case IPProtocol.udp: field = l4 + 6
        case IPProtocol.icmp, IPProtocol.icmpv6: field = l4 + 2
        default: return
        }
        guard field + 2 <= end else { return }
        frame.setU16(field, 0)
        var value = InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: bytes[l4..<end]), initial: pseudo))
        if value == 0 && parsed.ipProtocol == IPProtocol.udp { value = 0xFFFF }
        frame.setU16(field, value)
    }
}

/// The first 96 bytes of a frame in hex, for a violation's message.
func hex(_ bytes: UnsafeRawBufferPointer) -> String {
    bytes.prefix(96).map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}
