#if canImport(Glibc)
import Glibc
#endif

/// Writes a pcapng file (the pcapng draft, draft-ietf-opsawg-pcapng) with a comment on each
/// frame, which libpcap's writer cannot do: a section header, one interface per named port
/// (`if_name`, nanosecond timestamps; Ethernet, or raw IPv4 for a VXLAN port's underlay), and an
/// enhanced packet block per frame with `opt_comment`.
/// Wireshark shows the comment; `tshark -T fields -e frame.comment` prints it.
///
/// Writes go to `PATH.tmp-PID`; `commit()` renames the file into place; a writer dropped without
/// `commit()` removes its temporary file.
public final class PcapngWriter {
    public let path: String
    public let temporaryPath: String
    private var file: UnsafeMutablePointer<FILE>?
    private var failed = false
    public private(set) var frameCount = 0

    /// - Parameter interfaces: the interface names (Ethernet); `write(interface:)` takes an index into them.
    public convenience init(path: String, interfaces: [String]) throws(PcapError) {
        try self.init(path: path, interfaces: interfaces.map { ($0, .ethernet) })
    }

    /// - Parameter interfaces: names and link types; `write(interface:)` takes an index into them.
    public init(path: String, interfaces: [(name: String, linkType: PcapReader.LinkType)]) throws(PcapError) {
        self.path = path
        temporaryPath = "\(path).tmp-\(getpid())"
        guard let file = fopen(temporaryPath, "wb") else {
            throw PcapError(.cannotWrite, path: path, detail: String(cString: strerror(errno)))
        }
        self.file = file
        // Section header: byte-order magic, version 1.0, section length unknown (-1).
        var header = Block(type: 0x0A0D_0D0A)
        header.u32(0x1A2B_3C4D)
        header.u16(1)
        header.u16(0)
        header.u64(UInt64.max)
        header.option(4, Array("tapestry replay --drops".utf8))  // shb_userappl
        emit(header)
        for (name, linkType) in interfaces {
            var interface = Block(type: 1)
            interface.u16(linkType == .ethernet ? 1 : 228)  // LINKTYPE_ETHERNET, LINKTYPE_IPV4
            interface.u16(0)
            interface.u32(UInt32(PcapWriter.snapLength))
            interface.option(2, Array(name.utf8))  // if_name
            interface.option(9, [9])  // if_tsresol: 10^-9 s
            emit(interface)
        }
    }

    deinit {
        if let file {
            fclose(file)
            unlink(temporaryPath)
        }
    }

    /// Writes one frame on interface `interface` at `timestampNanoseconds` (any Int64: before 1970
    /// is stored as its two's complement, as pcapng's unsigned 64-bit time cannot say otherwise),
    /// with `comment` (UTF-8).
    public func write(_ bytes: UnsafeRawBufferPointer, interface: Int, timestampNanoseconds: Int64, comment: String) {
        var block = Block(type: 6)
        let time = UInt64(bitPattern: timestampNanoseconds)
        block.u32(UInt32(truncatingIfNeeded: interface))
        block.u32(UInt32(truncatingIfNeeded: time >> 32))
        block.u32(UInt32(truncatingIfNeeded: time))
        let length = min(bytes.count, Int(PcapWriter.snapLength))
        block.u32(UInt32(length))
        block.u32(UInt32(truncatingIfNeeded: bytes.count))
        block.bytes(Array(bytes.prefix(length)))
        block.option(1, Array(comment.utf8.prefix(65_000)))  // opt_comment (an option holds < 64 KiB)
        emit(block)
        frameCount += 1
    }

    public func write(_ bytes: [UInt8], interface: Int, timestampNanoseconds: Int64, comment: String) {
        bytes.withUnsafeBytes { write($0, interface: interface, timestampNanoseconds: timestampNanoseconds, comment: comment) }
    }

    /// Flushes, closes and renames the file into place.
    public func commit() throws(PcapError) {
        guard let file else { return }
        self.file = nil
        let closed = fclose(file)
        if failed || closed != 0 {
            unlink(temporaryPath)
            throw PcapError(.cannotWrite, path: path, detail: "write failed")
        }
        if rename(temporaryPath, path) != 0 {
            let detail = String(cString: strerror(errno))
            unlink(temporaryPath)
            throw PcapError(.cannotWrite, path: path, detail: detail)
        }
    }

    /// Closes and removes the temporary file without publishing it.
    public func discard() {
        guard let file else { return }
        self.file = nil
        fclose(file)
        unlink(temporaryPath)
    }

    private func emit(_ block: Block) {
        guard let file, !failed else { return }
        let bytes = block.finished()
        if fwrite(bytes, 1, bytes.count, file) != bytes.count { failed = true }
    }

    /// One block in the host's byte order (the section header's magic tells readers which):
    /// type, total length, body, options ending in opt_endofopt, total length again.
    private struct Block {
        var body: [UInt8] = []
        let type: UInt32
        var hasOptions = false

        init(type: UInt32) { self.type = type }

        mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value) { body += $0 } }
        mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value) { body += $0 } }
        mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value) { body += $0 } }

        /// Bytes padded to 32 bits.
        mutating func bytes(_ value: [UInt8]) {
            body += value
            body += [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
        }

        mutating func option(_ code: UInt16, _ value: [UInt8]) {
            u16(code)
            u16(UInt16(value.count))
            bytes(value)
            hasOptions = true
        }

        func finished() -> [UInt8] {
            var content = body
            if hasOptions { content += [0, 0, 0, 0] }  // opt_endofopt
            let total = UInt32(12 + content.count)
            var out: [UInt8] = []
            withUnsafeBytes(of: type) { out += $0 }
            withUnsafeBytes(of: total) { out += $0 }
            out += content
            withUnsafeBytes(of: total) { out += $0 }
            return out
        }
    }
}
