/// Why a capture could not be read or written. Messages name the file.
public struct PcapError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        case cannotOpen
        case notEthernet(linkType: Int32, name: String)
        /// A VXLAN port's capture must hold the underlay's IPv4 packets.
        case notRawIPv4(linkType: Int32, name: String)
        case truncated
        case cannotWrite
        /// Frame `frame` (counted from 1) has a timestamp outside what Tapestry replays: more
        /// than 2^62 ns from 1970 (before 1824 or after 2116; `PcapReader.timestampLimit`).
        case timestampOutOfRange(frame: Int)
    }

    public var code: Code
    public var path: String
    public var detail: String

    public init(_ code: Code, path: String, detail: String) {
        self.code = code
        self.path = path
        self.detail = detail
    }

    public var description: String {
        switch code {
        case .cannotOpen: return "\(path): cannot read capture: \(detail)"
        case .notEthernet(let linkType, let name):
            return "\(path): link type \(name) (\(linkType)) is not Ethernet (EN10MB, 1); only a vxlan port's captures (in replay and trace) may be raw IPv4"
        case .notRawIPv4(let linkType, let name):
            return "\(path): link type \(name) (\(linkType)) is neither raw IPv4 (IPV4, 228, or RAW, 101) nor Ethernet; a vxlan port replays the underlay's IPv4 packets, from either"
        case .truncated: return "\(path): capture is damaged or truncated: \(detail)"
        case .cannotWrite: return "\(path): cannot write capture: \(detail)"
        case .timestampOutOfRange(let frame):
            return "\(path): frame \(frame): timestamp \(detail) is out of range (Tapestry replays captures stamped from 1824 to 2116: within 2^62 ns of 1970)"
        }
    }
}
