import TapestryDatapath
import TapestryWire

#if canImport(Glibc)
import Glibc
#endif

/// A TAP device as a port of the live switch: frames read straight into the batch's slots and
/// sent from the transmit queue, with a virtio-net header when the device takes offloads.
extension TAPDevice {
    /// Reads up to `limit` frames into `batch`. A frame whose virtio-net header does not fit it
    /// is reported as `invalid`. Nil, or why the device failed (the port goes down).
    func receive(into batch: FrameBatch, limit: Int, _ drops: PortDrops) -> String? {
        var taken = 0
        while taken < limit {
            let area = offloads ? batch.nextFreeAreaWithVirtioHeader() : batch.nextFreeFrameArea()
            guard let area else { break }
            let count = Glibc.read(fileDescriptor, area.baseAddress, area.count)
            if count < 0 {
                if errno == EINTR { continue }
                if errno != EAGAIN { return "read failed: \(String(cString: strerror(errno)))" }
                break
            }
            taken += 1
            if offloads {
                if !batch.commitWithVirtioHeader(readLength: count) { drops.received(.invalid, bytes: count) }
            } else {
                batch.commit(length: count)
            }
        }
        return nil
    }

    /// Sends what the batch queued for `port`: a full device queue costs the frame (`tx-full`).
    /// Without offloads (`--no-offloads`), checksums are completed and TSO segments (from
    /// interface ports) cut in `plain` first. Nil, or why the device failed (the port goes down;
    /// the frames not sent are reported as `port-down`).
    /// With `merge`, consecutive TCP segments of one flow leave as one TSO frame
    /// (`TCPCoalescing`): the host behind the device then takes, and acknowledges, them at once.
    func transmit(
        _ queues: TransmitQueues, _ port: PortID, _ drops: PortDrops, plain: PlainFrames, merge: MergeBuffer? = nil
    ) -> String? {
        guard offloads else {
            var failure: String?
            plain.gather(queues, port, drops) {
                var last = -1
                for piece in 0..<plain.count where plain.sources[piece] != last {
                    var written = Glibc.write(fileDescriptor, plain.starts[piece], plain.lengths[piece])
                    while written < 0, errno == EINTR {
                        written = Glibc.write(fileDescriptor, plain.starts[piece], plain.lengths[piece])
                    }
                    guard written < 0 else { continue }
                    let failed = errno
                    last = plain.sources[piece]
                    if failed == EAGAIN || failed == ENOBUFS {
                        drops.unsent(.txFull, bytes: queues.frame(port, last).count)
                        continue
                    }
                    // The device is gone: this and every other gathered frame are lost with it.
                    plain.countDropped(from: piece, .portDown, queues, port, drops)
                    failure = "write failed: \(String(cString: strerror(failed)))"
                    return false
                }
                return true
            }
            return failure
        }
        let queued = queues.count(port)
        var index = 0
        while index < queued {
            var span = 1
            var bytes = queues.frameWithVirtioHeader(port, index)
            if let merge, let (length, header) = merge.run(queues, port, from: index, span: &span) {
                header.store(to: merge.area.baseAddress!)
                bytes = UnsafeRawBufferPointer(rebasing: merge.area[0..<(VirtioNetHeader.length + length)])
            }
            defer { index += span }
            var written = Glibc.write(fileDescriptor, bytes.baseAddress, bytes.count)
            while written < 0, errno == EINTR { written = Glibc.write(fileDescriptor, bytes.baseAddress, bytes.count) }
            if written < 0 {
                if errno == EAGAIN || errno == ENOBUFS {
                    for frame in index..<(index + span) { drops.unsent(.txFull, bytes: queues.frame(port, frame).count) }
                } else {
                    let failure = "write failed: \(String(cString: strerror(errno)))"
                    for rest in index..<queued { drops.unsent(.portDown, bytes: queues.frame(port, rest).count) }
                    return failure
                }
            }
        }
        return nil
    }
}

/// Room for one merged TSO frame and its virtio-net header, allocated once (`TCPCoalescing`).
final class MergeBuffer {
    let area: UnsafeMutableRawBufferPointer

    init() { area = .allocate(byteCount: VirtioNetHeader.length + 65_535 + 14, alignment: 64) }
    deinit { area.deallocate() }

    /// Merges the run of segments starting at queued frame `index` into `area` (after the
    /// header's room) when it has at least two; `span` is how many queued frames it took (1 when
    /// nil: send frame `index` as it is).
    func run(_ queues: TransmitQueues, _ port: PortID, from index: Int, span: inout Int) -> (Int, VirtioNetHeader)? {
        span = 1
        // Frames with offloads of their own (a guest's TSO) are sent as they are.
        var plain = 0
        while index + plain < queues.count(port), plain < TCPCoalescing.maxSegments, queues.offload(port, index + plain).isPlain {
            plain += 1
        }
        guard let (count, first) = TCPCoalescing.run(count: plain, frame: { queues.frame(port, index + $0) }) else { return nil }
        let output = UnsafeMutableRawBufferPointer(rebasing: area[VirtioNetHeader.length...])
        guard let (length, header) = TCPCoalescing.merge(count: count, frame: { queues.frame(port, index + $0) }, first, into: output)
        else { return nil }
        span = count
        return (length, header)
    }
}
