import CPcap

/// Reads a pcap or pcapng file through libpcap, frame by frame, with nanosecond timestamps:
/// Ethernet frames, or (for a VXLAN port's underlay) raw IPv4 packets.
public final class PcapReader {
    public enum LinkType: Sendable, Equatable {
        case ethernet
        /// Raw IPv4 packets: link type IPV4 (228), or RAW (101) holding IPv4. A reader asked for
        /// them also takes an Ethernet capture (one taken on the underlay's interface) and hands
        /// out its IPv4 packets without their Ethernet header (and one 802.1Q tag).
        case rawIPv4
    }

    public let path: String
    /// What the reader hands out.
    public let linkType: LinkType
    /// What the file holds (Ethernet for an underlay capture taken on an Ethernet interface).
    public let fileLinkType: LinkType
    private let handle: OpaquePointer
    /// Timestamps must lie strictly within this many nanoseconds of 1970 (2^62: from 1824 to
    /// 2116). The datapath adds timeouts of up to 2^31 seconds to the clock and subtracts clock
    /// values, which a capture's time becomes in replay: with this margin neither can overflow
    /// (a first fragment stamped in 2262 trapped at `now + fragmentTimeout`). No capture a
    /// switch ever made lies outside it.
    public static let timestampLimit: Int64 = 1 << 62

    /// Frames read so far, to name the one an error is about.
    public private(set) var framesRead = 0

    /// Opens `path`; throws when it cannot be read or its link type is not `linkType`.
    public init(path: String, linkType: LinkType = .ethernet) throws(PcapError) {
        self.path = path
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard
            let handle = pcap_open_offline_with_tstamp_precision(
                path, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errorBuffer)
        else {
            throw PcapError(.cannotOpen, path: path, detail: String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        let found = pcap_datalink(handle)
        let matches = found == DLT_EN10MB || (linkType == .rawIPv4 && (found == DLT_IPV4 || found == DLT_RAW))
        guard matches else {
            let name = pcap_datalink_val_to_name(found).map { String(cString: $0) } ?? "unknown"
            pcap_close(handle)
            let code: PcapError.Code = linkType == .ethernet
                ? .notEthernet(linkType: found, name: name) : .notRawIPv4(linkType: found, name: name)
            throw PcapError(code, path: path, detail: "")
        }
        self.linkType = linkType
        fileLinkType = found == DLT_EN10MB ? .ethernet : .rawIPv4
        self.handle = handle
    }

    deinit { pcap_close(handle) }

    /// A captured frame: nanoseconds since the epoch and the bytes, valid until the next call.
    public struct Record {
        public var timestampNanoseconds: Int64
        public var bytes: UnsafeRawBufferPointer
        /// The frame's length on the wire; larger than `bytes.count` when the capture cut it short.
        public var originalLength: Int
    }

    /// The next frame, or nil at the end of the file. Throws on a damaged or truncated file.
    public func next() throws(PcapError) -> Record? {
        var header: UnsafeMutablePointer<pcap_pkthdr>? = nil
        var data: UnsafePointer<UInt8>? = nil
        let status = pcap_next_ex(handle, &header, &data)
        switch status {
        case 1:
            guard let header, let data else { return nil }
            framesRead += 1
            let captured = Int(header.pointee.caplen)
            // The file decides both fields (pcapng's if_tsoffset and 64-bit timestamps reach any
            // second count; a classic pcap's fraction field is not checked by libpcap): a value
            // past Int64 nanoseconds, or outside `timestampLimit`, is an error naming the frame,
            // not a trap. Times before 1970 within the limit are kept as they are.
            let seconds = Int64(header.pointee.ts.tv_sec)
            let fraction = Int64(header.pointee.ts.tv_usec)
            let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
            let (nanoseconds, overflowAdding) = scaled.addingReportingOverflow(fraction)
            guard !overflow, !overflowAdding, nanoseconds > -Self.timestampLimit, nanoseconds < Self.timestampLimit else {
                throw PcapError(.timestampOutOfRange(frame: framesRead), path: path, detail: "\(seconds) s + \(fraction) ns")
            }
            var bytes = UnsafeRawBufferPointer(start: data, count: captured)
            var originalLength = Int(header.pointee.len)
            if linkType == .rawIPv4 && fileLinkType == .ethernet {
                // The IPv4 packet inside the frame; anything else stays as it is (and is then
                // refused as not IPv4).
                func type(at offset: Int) -> UInt16 { UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1]) }
                var skip = 0
                if captured >= 14 && type(at: 12) == 0x0800 { skip = 14 }
                if captured >= 18 && type(at: 12) == 0x8100 && type(at: 16) == 0x0800 { skip = 18 }
                bytes = UnsafeRawBufferPointer(rebasing: bytes[skip...])
                originalLength = max(0, originalLength - skip)
            }
            return Record(timestampNanoseconds: nanoseconds, bytes: bytes, originalLength: originalLength)
        case PCAP_ERROR_BREAK:
            return nil
        default:
            throw PcapError(.truncated, path: path, detail: String(cString: pcap_geterr(handle)))
        }
    }

    /// Reads every frame (allocates; for tests and small files).
    public func readAll() throws(PcapError) -> [(timestampNanoseconds: Int64, bytes: [UInt8])] {
        var frames: [(Int64, [UInt8])] = []
        while let record = try next() { frames.append((record.timestampNanoseconds, Array(record.bytes))) }
        return frames
    }
}
