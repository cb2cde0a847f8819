import CPcap

#if canImport(Glibc)
import Glibc
#endif

/// Writes a pcap (nanosecond precision, which tcpdump and Wireshark read) through libpcap: of
/// Ethernet frames, or of raw IPv4 packets (link type IPV4, 228) for a VXLAN port's underlay.
///
/// Writes go to `PATH.tmp-PID`; `commit()` renames the file into place, so a reader never sees a
/// half-written capture. A writer dropped without `commit()` removes its temporary file.
public final class PcapWriter {
    public let path: String
    public let temporaryPath: String
    private let dead: OpaquePointer
    private var dumper: OpaquePointer?
    public private(set) var frameCount = 0

    public static let snapLength: Int32 = 262_144

    public init(path: String, linkType: PcapReader.LinkType = .ethernet) throws(PcapError) {
        self.path = path
        temporaryPath = "\(path).tmp-\(getpid())"
        guard
            let dead = pcap_open_dead_with_tstamp_precision(
                linkType == .ethernet ? DLT_EN10MB : DLT_IPV4, Self.snapLength, UInt32(PCAP_TSTAMP_PRECISION_NANO))
        else {
            throw PcapError(.cannotWrite, path: path, detail: "libpcap could not create a handle")
        }
        self.dead = dead
        guard let dumper = pcap_dump_open(dead, temporaryPath) else {
            let detail = String(cString: pcap_geterr(dead))
            pcap_close(dead)
            throw PcapError(.cannotWrite, path: path, detail: detail)
        }
        self.dumper = dumper
    }

    deinit {
        if let dumper {
            pcap_dump_close(dumper)
            unlink(temporaryPath)
        }
        pcap_close(dead)
    }

    public func write(_ bytes: UnsafeRawBufferPointer, timestampNanoseconds: Int64) {
        guard let dumper else { return }
        var header = pcap_pkthdr()
        // Floor division, so a timestamp before 1970 (replay keeps what its input said) is a
        // negative second and a fraction in 0..<10^9, as a reader expects; truncating division
        // would give a negative fraction. With nanosecond precision libpcap stores nanoseconds in
        // the tv_usec field. (A classic pcap keeps 32 bits of seconds: libpcap truncates.)
        let (quotient, remainder) = timestampNanoseconds.quotientAndRemainder(dividingBy: 1_000_000_000)
        header.ts.tv_sec = Int(remainder < 0 ? quotient - 1 : quotient)
        header.ts.tv_usec = Int(remainder < 0 ? remainder + 1_000_000_000 : remainder)
        header.caplen = UInt32(bytes.count)
        header.len = UInt32(bytes.count)
        let user = UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self)
        pcap_dump(user, &header, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
        frameCount += 1
    }

    public func write(_ bytes: [UInt8], timestampNanoseconds: Int64) {
        bytes.withUnsafeBytes { write($0, timestampNanoseconds: timestampNanoseconds) }
    }

    /// Flushes, closes and renames the capture into place.
    public func commit() throws(PcapError) {
        guard let dumper else { return }
        let flushed = pcap_dump_flush(dumper)
        pcap_dump_close(dumper)
        self.dumper = nil
        if flushed != 0 {
            unlink(temporaryPath)
            throw PcapError(.cannotWrite, path: path, detail: "flush failed")
        }
        if rename(temporaryPath, path) != 0 {
            let detail = String(cString: strerror(errno))
            unlink(temporaryPath)
            throw PcapError(.cannotWrite, path: path, detail: detail)
        }
    }

    /// Closes and removes the temporary file without publishing it.
    public func discard() {
        guard let dumper else { return }
        pcap_dump_close(dumper)
        self.dumper = nil
        unlink(temporaryPath)
    }
}
