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
    func transmit(_ queues: TransmitQueues, _ port: PortID, _ drops: PortDrops, plain: PlainFrames) -> String? {
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
        for index in 0..<queues.count(port) {
            let bytes = queues.frameWithVirtioHeader(port, index)
            var written = Glibc.write(fileDescriptor, bytes.baseAddress, bytes.count)
            while written < 0, errno == EINTR { written = Glibc.write(fileDescriptor, bytes.baseAddress, bytes.count) }
            if written < 0 {
                let length = bytes.count - VirtioNetHeader.length
                if errno == EAGAIN || errno == ENOBUFS {
                    drops.unsent(.txFull, bytes: length)
                } else {
                    let failure = "write failed: \(String(cString: strerror(errno)))"
                    drops.unsent(.portDown, bytes: length)
                    for rest in (index + 1)..<queues.count(port) {
                        drops.unsent(.portDown, bytes: queues.frame(port, rest).count)
                    }
                    return failure
                }
            }
        }
        return nil
    }
}
