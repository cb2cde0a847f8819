import TapestryDatapath
import TapestryPcap

/// The frames of several captures in one order, as `replay` and `trace` feed them: by
/// timestamp, ties to the earlier input, then file order.
struct CaptureMerge {
    private let readers: [(port: PortID, reader: PcapReader)]
    private var heads: [PcapReader.Record?] = []
    /// The input whose head was handed out last: read on only at the next call, because a
    /// record's bytes belong to libpcap until its reader reads again.
    private var consumed: Int?

    init(_ readers: [(port: PortID, reader: PcapReader)]) throws(PcapError) {
        self.readers = readers
        for entry in readers { heads.append(try entry.reader.next()) }
    }

    /// The next frame and the port it arrives on; nil when every capture has ended. Its bytes
    /// are valid until the next call.
    mutating func next() throws(PcapError) -> (port: PortID, record: PcapReader.Record)? {
        if let consumed { heads[consumed] = try readers[consumed].reader.next() }
        consumed = nil
        var chosen: Int? = nil
        for (index, head) in heads.enumerated() {
            guard let head else { continue }
            if let best = chosen, heads[best]!.timestampNanoseconds <= head.timestampNanoseconds { continue }
            chosen = index
        }
        guard let chosen, let record = heads[chosen] else { return nil }
        consumed = chosen
        return (readers[chosen].port, record)
    }
}
