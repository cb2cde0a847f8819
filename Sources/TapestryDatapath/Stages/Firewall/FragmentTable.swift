import TapestryWire

/// What the firewall knows of fragmented datagrams, so fragments without ports follow their first
/// fragment's verdict in whatever order they arrive.
///
/// - A datagram's record says its fate (its first fragment passed, was refused, has not come yet,
///   or the datagram broke on an overlap) and the byte ranges of the fragments seen, so an
///   overlap drops the datagram (RFC 5722) and an exact duplicate is dropped alone. A record
///   lasts `timeout` from when it was made; once its datagram is complete, a later fragment can
///   only repeat or overlap (dropped) and a first fragment with its identification starts anew.
/// - Later fragments that arrive before their first fragment are held (copied into preallocated
///   slots) and leave in arrival order right after the first fragment passes (`release`), or are
///   dropped when it is refused, when the datagram breaks or when `timeout` passes.
///
/// Bounds: `capacity` records in two-way buckets chosen by a keyed hash (a third datagram in a
/// bucket replaces the one that would expire first: its held fragments are dropped, its
/// remaining fragments held anew or dropped; a later fragment never replaces a datagram that
/// passed, and makes no record it could not hold), at most `maxFragments` fragments a datagram,
/// `heldSlots` held fragments in all and `heldPerPort` from one port (so one port cannot take
/// every slot), each at most `slotBytes`. The held frames' memory (2.4 MB) is allocated the first
/// time a fragment is held and kept.
public final class FragmentTable {
    enum Fate: UInt8 {
        case free
        /// The first fragment passed: later fragments pass.
        case passing
        /// The first fragment was refused: later fragments are dropped.
        case refused
        /// Later fragments came first: they are held until it comes.
        case waiting
        /// Fragments overlapped: the rest of the datagram is dropped.
        case broken
        /// Every byte passed: a later fragment can only repeat or overlap one (dropped); a new
        /// first fragment with the identification starts a new datagram.
        case complete
    }

    /// Where a fragment's payload lies in its datagram, in bytes: `[start, end)` (a datagram
    /// ends by 65,535).
    struct Piece: Equatable {
        var start: UInt16
        var end: UInt16
        var isLast: Bool
    }

    struct Datagram {
        var key = FlowKey()
        var identification: UInt32 = 0
        var expires: Int64 = 0
        var fate = Fate.free
        var pieces: UInt8 = 0
        var held: UInt8 = 0
        var sawLast = false
        /// The datagram's end (with `sawLast`), and the bytes its pieces cover (they never
        /// overlap, so it is complete when the two are equal).
        var end: UInt16 = 0
        var covered: UInt32 = 0
        /// Its held fragments, in arrival order (indexes into the held slots).
        var firstHeld: Int32 = -1
        var lastHeld: Int32 = -1
    }

    struct Held {
        var length: Int32 = 0
        var ingress: PortID = 0
        var next: Int32 = -1
        var metadata = FrameMetadata()
    }

    struct Counts {
        /// Fragments held now (checked once per batch, not per frame).
        var waiting = 0
        var released: UInt64 = 0
        /// Held fragments dropped: first refused, overlap, replaced, or timed out.
        var dropped: UInt64 = 0
    }

    /// What the table says about an arriving fragment.
    enum Verdict: Equatable {
        case pass
        /// A later fragment whose first has not come: hold it (`hold`).
        case hold(Int)
        /// A first fragment: the rules decide, then `firstPassed` or `firstRefused` with this record.
        case decide(Int)
        case drop(DropCause)
    }

    public static let maxFragments = 128
    public static let heldSlots = 256
    public static let heldPerPort = 64
    /// A jumbo frame with one tag.
    public static let slotBytes = 9216 + 22

    let timeout: Int64
    private let records: UnsafeMutablePointer<Datagram>
    private let pieces: UnsafeMutablePointer<Piece>
    private let mask: Int
    private let hashKey: HashKey
    private let portCount: Int
    private var heldMemory: UnsafeMutableRawPointer?
    private var heldEntries: UnsafeMutablePointer<Held>?
    private var freeHeld: Int32 = -1
    private let heldByPort: UnsafeMutablePointer<Int>
    /// Held fragments dropped and not yet counted as the ingress port's `invalid` (`takeDropped`).
    private let droppedByPort: UnsafeMutablePointer<UInt64>
    private(set) var droppedPending = false
    /// Fragments to send, in order: whole datagrams' held lists, linked through `Held.next`.
    private var releaseHead: Int32 = -1
    private var releaseTail: Int32 = -1
    private var sweepCursor = 0
    let counts: UnsafeMutablePointer<Counts>

    init(capacity: Int = 4096, portCount: Int = 1, timeout: Int64 = 30_000_000_000, hashKey: HashKey = .fixed) {
        self.hashKey = hashKey
        self.timeout = timeout
        self.portCount = max(1, portCount)
        var size = 16
        while size < capacity { size <<= 1 }
        mask = size - 1
        records = .allocate(capacity: size)
        records.initialize(repeating: Datagram(), count: size)
        // Read only below a record's `pieces`: no need to touch the memory until used.
        pieces = .allocate(capacity: size * Self.maxFragments)
        heldByPort = .allocate(capacity: self.portCount)
        heldByPort.initialize(repeating: 0, count: self.portCount)
        droppedByPort = .allocate(capacity: self.portCount)
        droppedByPort.initialize(repeating: 0, count: self.portCount)
        counts = .allocate(capacity: 1)
        counts.initialize(to: Counts())
    }

    deinit {
        records.deallocate()
        pieces.deallocate()
        heldMemory?.deallocate()
        heldEntries?.deallocate()
        heldByPort.deallocate()
        droppedByPort.deallocate()
        counts.deallocate()
    }

    /// `key` holds the addresses and protocol with both ports zero.
    @inline(__always)
    private func slot(_ key: FlowKey, _ identification: UInt32) -> Int {
        // The identification is mixed into the keyed hash, not xored after it, so which datagrams
        // share a slot stays unpredictable without the key.
        var keyed = key
        keyed.meta ^= UInt64(identification)
        return Int(truncatingIfNeeded: keyed.hash(hashKey) >> 32) & mask
    }

    /// The record of this datagram, or (`make`) a new one in the bucket slot that is free or would
    /// expire first; nil when there is none and none may be made. A later fragment (`protect`)
    /// never replaces a live record of a datagram that passed: a flood of first-less fragments
    /// cannot make other datagrams forget their verdict.
    private func record(
        _ key: FlowKey, _ identification: UInt32, now: Int64, fresh: Fate, make: Bool = true, protect: Bool = false
    ) -> (Int, isNew: Bool)? {
        // Two-way buckets: a datagram may sit in either slot of its pair, so two datagrams that
        // share a slot both stay (a third replaces the one that would expire first).
        let pair = slot(key, identification) & ~1
        var index = pair
        for candidate in pair...(pair + 1) {
            let record = records + candidate
            let live = record.pointee.fate != .free && now < record.pointee.expires
            if live && record.pointee.key == key && record.pointee.identification == identification {
                return (candidate, false)
            }
            let chosen = records + index
            let chosenLive = chosen.pointee.fate != .free && now < chosen.pointee.expires
            if chosenLive && (!live || record.pointee.expires < chosen.pointee.expires) { index = candidate }
        }
        let record = records + index
        guard make else { return nil }
        if protect && now < record.pointee.expires && (record.pointee.fate == .passing || record.pointee.fate == .complete) {
            return nil
        }
        dropHeld(index)
        record.pointee = Datagram(
            key: key, identification: identification,
            // Saturating: `now` is a capture's timestamp in replay, anything up to the reader's limit.
            expires: now.addingReportingOverflow(timeout).overflow ? .max : now &+ timeout, fate: fresh)
        return (index, true)
    }

    /// A later fragment (offset above zero) arrives; `canHold` says whether it could be held
    /// (`canHold(length:ingress:)`): if not, a datagram not seen yet is not even recorded.
    func later(_ key: FlowKey, identification: UInt32, _ piece: Piece, now: Int64, canHold: Bool) -> Verdict {
        guard let (index, isNew) = record(key, identification, now: now, fresh: .waiting, make: canHold, protect: true)
        else { return .drop(.fragmentNotHeld) }
        let record = records + index
        switch record.pointee.fate {
        case .free: return .drop(.strayFragment)  // not reached: `record` never returns a free one
        case .refused: return .drop(.strayFragment)
        case .broken: return .drop(.overlappingFragment)
        case .complete:
            let seen = pieces + index * Self.maxFragments
            for position in 0..<Int(record.pointee.pieces) where seen[position] == piece { return .drop(.duplicateFragment) }
            return .drop(.overlappingFragment)
        case .passing, .waiting:
            if !isNew, let refusal = add(piece, to: index) { return .drop(refusal) }
            if isNew { _ = add(piece, to: index) }
            if record.pointee.fate == .passing {
                finishIfComplete(index)
                return .pass
            }
            return .hold(index)
        }
    }

    /// A first fragment arrives: it is checked against the fragments seen (an overlap or a
    /// duplicate drops it) before the rules decide.
    func first(_ key: FlowKey, identification: UInt32, _ piece: Piece, now: Int64) -> Verdict {
        guard let (index, isNew) = record(key, identification, now: now, fresh: .waiting) else {
            return .drop(.fragmentNotHeld)  // not reached: a first fragment may always make a record
        }
        let record = records + index
        switch record.pointee.fate {
        case .broken:
            return .drop(.overlappingFragment)
        case .refused, .complete:
            // The same first fragment again (or a new datagram reusing the identification): the
            // rules decide afresh.
            record.pointee = Datagram(
                key: key, identification: identification,
                expires: now.addingReportingOverflow(timeout).overflow ? .max : now &+ timeout, fate: .waiting)
            _ = add(piece, to: index)
            return .decide(index)
        case .free, .passing, .waiting:
            if isNew {
                _ = add(piece, to: index)
            } else if let refusal = add(piece, to: index) {
                return .drop(refusal)
            }
            return .decide(index)
        }
    }

    /// The rules let the first fragment through: held fragments leave (`release`), later ones pass.
    /// Returns how many were held.
    func firstPassed(_ index: Int) -> Int {
        let record = records + index
        let held = Int(record.pointee.held)
        record.pointee.fate = .passing
        if record.pointee.firstHeld >= 0, let entries = heldEntries {
            if releaseTail >= 0 { entries[Int(releaseTail)].next = record.pointee.firstHeld } else {
                releaseHead = record.pointee.firstHeld
            }
            releaseTail = record.pointee.lastHeld
        }
        record.pointee.firstHeld = -1
        record.pointee.lastHeld = -1
        record.pointee.held = 0
        finishIfComplete(index)
        return held
    }

    /// The first fragment was dropped: held fragments are dropped, later ones will be. Returns
    /// how many were held.
    func firstRefused(_ index: Int) -> Int {
        let held = Int(records[index].held)
        dropHeld(index)
        records[index].fate = .refused
        return held
    }

    /// Fragments record `index` holds now.
    func heldCount(_ index: Int) -> Int { Int(records[index].held) }

    /// Adds a piece to a record that has some: nil when it fits, else why the fragment is dropped
    /// (an overlap also breaks the datagram and drops what it held).
    private func add(_ piece: Piece, to index: Int) -> DropCause? {
        let record = records + index
        let seen = pieces + index * Self.maxFragments
        for position in 0..<Int(record.pointee.pieces) {
            let other = seen[position]
            if other.start == piece.start && other.end == piece.end && other.isLast == piece.isLast {
                return .duplicateFragment
            }
            if piece.start < other.end && other.start < piece.end { return breakDatagram(index) }
        }
        if record.pointee.sawLast {
            // Past the end, or a second last fragment with another end.
            if piece.end > record.pointee.end || (piece.isLast && piece.end != record.pointee.end) {
                return breakDatagram(index)
            }
        } else if piece.isLast {
            for position in 0..<Int(record.pointee.pieces) where seen[position].end > piece.end {
                return breakDatagram(index)
            }
            record.pointee.sawLast = true
            record.pointee.end = piece.end
        }
        guard Int(record.pointee.pieces) < Self.maxFragments else { return breakDatagram(index, .tooManyFragments) }
        seen[Int(record.pointee.pieces)] = piece
        record.pointee.pieces += 1
        record.pointee.covered &+= UInt32(piece.end &- piece.start)
        return nil
    }

    private func breakDatagram(_ index: Int, _ cause: DropCause = .overlappingFragment) -> DropCause {
        dropHeld(index)
        records[index].fate = .broken
        return cause
    }

    /// A passing datagram whose every byte went through is complete: later fragments can only
    /// repeat or overlap one of it, and a first fragment reusing the identification soon after (a
    /// fast sender's 16-bit IPv4 counter) starts a new datagram.
    @inline(__always)
    private func finishIfComplete(_ index: Int) {
        let record = records + index
        if record.pointee.sawLast && record.pointee.covered == UInt32(record.pointee.end) && record.pointee.fate == .passing {
            record.pointee.fate = .complete
        }
    }

    /// Whether a later fragment of `length` bytes from `ingress` could be held now.
    func canHold(length: Int, ingress: PortID) -> Bool {
        length <= Self.slotBytes && heldByPort[min(Int(ingress), portCount - 1)] < Self.heldPerPort
            && (heldMemory == nil || freeHeld >= 0)
    }

    /// Keeps a copy of a later fragment for record `index` (from `hold`). False when no slot is
    /// free, its port holds `heldPerPort` already or the frame is larger than a slot: the
    /// datagram cannot be completed, so it breaks (what it held is dropped).
    func hold(_ frame: UnsafeRawBufferPointer, metadata: FrameMetadata, ingress: PortID, record index: Int) -> Bool {
        let port = min(Int(ingress), portCount - 1)
        guard frame.count <= Self.slotBytes, heldByPort[port] < Self.heldPerPort, let slot = takeHeldSlot() else {
            _ = breakDatagram(index, .fragmentNotHeld)
            return false
        }
        if let source = frame.baseAddress {
            (heldMemory! + Int(slot) * Self.slotBytes).copyMemory(from: source, byteCount: frame.count)
        }
        heldEntries![Int(slot)] = Held(length: Int32(frame.count), ingress: ingress, next: -1, metadata: metadata)
        let record = records + index
        if record.pointee.lastHeld >= 0 { heldEntries![Int(record.pointee.lastHeld)].next = slot } else {
            record.pointee.firstHeld = slot
        }
        record.pointee.lastHeld = slot
        record.pointee.held &+= 1
        heldByPort[port] += 1
        counts.pointee.waiting += 1
        return true
    }

    private func takeHeldSlot() -> Int32? {
        if heldMemory == nil {
            heldMemory = .allocate(byteCount: Self.heldSlots * Self.slotBytes, alignment: 64)
            let entries = UnsafeMutablePointer<Held>.allocate(capacity: Self.heldSlots)
            entries.initialize(repeating: Held(), count: Self.heldSlots)
            for index in 0..<Self.heldSlots { entries[index].next = index + 1 < Self.heldSlots ? Int32(index + 1) : -1 }
            heldEntries = entries
            freeHeld = 0
        }
        guard freeHeld >= 0 else { return nil }
        let slot = freeHeld
        freeHeld = heldEntries![Int(slot)].next
        return slot
    }

    private func giveBack(_ slot: Int32) {
        let entry = heldEntries! + Int(slot)
        heldByPort[min(Int(entry.pointee.ingress), portCount - 1)] -= 1
        counts.pointee.waiting -= 1
        entry.pointee.next = freeHeld
        freeHeld = slot
    }

    /// Drops what record `index` holds (counted on each fragment's ingress port).
    private func dropHeld(_ index: Int) {
        let record = records + index
        var slot = record.pointee.firstHeld
        while slot >= 0, let entries = heldEntries {
            let next = entries[Int(slot)].next
            let port = min(Int(entries[Int(slot)].ingress), portCount - 1)
            droppedByPort[port] &+= 1
            droppedPending = true
            counts.pointee.dropped &+= 1
            giveBack(slot)
            slot = next
        }
        record.pointee.firstHeld = -1
        record.pointee.lastHeld = -1
        record.pointee.held = 0
    }

    /// Held fragments of datagrams whose first fragment never came are dropped once their record
    /// times out: visits `budget` records from where the last call stopped (only while something
    /// is held).
    func sweep(now: Int64, budget: Int) {
        guard counts.pointee.waiting > 0 else { return }
        for _ in 0..<min(budget, mask + 1) {
            let record = records + sweepCursor
            if record.pointee.fate == .waiting && record.pointee.held > 0 && now >= record.pointee.expires {
                dropHeld(sweepCursor)
                record.pointee.fate = .free
            }
            sweepCursor = (sweepCursor + 1) & mask
        }
    }

    /// Drops everything held (the end of a capture: no first fragment will come now).
    func dropAllHeld() {
        guard counts.pointee.waiting > 0 else { return }
        for index in 0...mask where records[index].held > 0 {
            dropHeld(index)
            records[index].fate = .free
        }
    }

    /// Calls `count` with each port and the number of its held fragments dropped since the last
    /// call.
    func takeDropped(_ count: (PortID, UInt64) -> Void) {
        guard droppedPending else { return }
        droppedPending = false
        for port in 0..<portCount where droppedByPort[port] > 0 {
            count(PortID(truncatingIfNeeded: port), droppedByPort[port])
            droppedByPort[port] = 0
        }
    }

    var hasReleases: Bool { releaseHead >= 0 }

    /// Moves released fragments into `batch` (empty), front first: as many as fit and came in on
    /// the same port as the first. False when there were none.
    func release(into batch: FrameBatch) -> Bool {
        guard releaseHead >= 0, let entries = heldEntries, let memory = heldMemory else { return false }
        var moved = false
        while releaseHead >= 0, !batch.isFull {
            let slot = releaseHead
            let held = entries[Int(slot)]
            if batch.isEmpty {
                batch.ingressPort = held.ingress
            } else if batch.ingressPort != held.ingress {
                break
            }
            guard batch.append(UnsafeRawBufferPointer(start: memory + Int(slot) * Self.slotBytes, count: Int(held.length)))
            else { break }
            let index = batch.count - 1
            batch.metadata[index] = held.metadata
            batch.metadata[index].skipLearning = true  // learned when it arrived
            releaseHead = held.next
            if releaseHead < 0 { releaseTail = -1 }
            giveBack(slot)
            counts.pointee.released &+= 1
            moved = true
        }
        return moved
    }
}
