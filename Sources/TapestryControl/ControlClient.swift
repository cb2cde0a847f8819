import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The client side of the control socket: one request line out, one JSON document back.
public enum ControlClient {
    public enum Outcome: Sendable, Equatable {
        /// The switch's answer (a JSON document).
        case answer(String)
        /// Nothing listens at the path.
        case noSwitch
        /// The switch closed the connection without a word (it serves 16 control clients at once).
        case closedWithoutAnswer
    }

    /// Sends `request` to the socket at `path` and reads the whole answer.
    public static func send(_ request: ControlRequest, to path: String) -> Outcome {
        guard let fd = UnixSocketAddress.connect(path) else { return .noSwitch }
        defer { close(fd) }
        let bytes = Array((request.words.joined(separator: " ") + "\n").utf8)
        // MSG_NOSIGNAL: a switch that refuses us closes at once, and a write into that must be a
        // refusal to report, not SIGPIPE ending the client (exit 141).
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        shutdown(fd, Int32(SHUT_WR))
        var answer = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            answer += buffer[0..<count]
        }
        return answer.isEmpty ? .closedWithoutAnswer : .answer(String(decoding: answer, as: UTF8.self))
    }
}
