import TapestrySwitchCore
import TapestryWire

/// One way a port's output differs from its `--expect` capture.
public struct ExpectDifference: Equatable, Sendable {
    public enum Kind: String, Sendable {
        /// An expected frame that did not come out (`frame`: its number in the expected capture).
        case missing
        /// A frame that came out and was not expected (`frame`: its number in the output).
        case unexpected
        /// A frame in the expected one's place that differs in `field`.
        case field
        /// The frame's time differs (`field` is "timestamp").
        case timestamp
    }

    public var port: String
    /// Numbered from 1.
    public var frame: Int
    public var kind: Kind
    public var field: String?
    public var expected: String?
    public var actual: String?

    public init(
        port: String, frame: Int, kind: Kind, field: String? = nil, expected: String? = nil, actual: String? = nil
    ) {
        self.port = port
        self.frame = frame
        self.kind = kind
        self.field = field
        self.expected = expected
        self.actual = actual
    }

    public var text: String {
        switch kind {
        case .missing: return "port \(port): missing expected frame \(frame): \(expected ?? "")"
        case .unexpected: return "port \(port): unexpected frame \(frame): \(actual ?? "")"
        case .timestamp: return "port \(port), frame \(frame): timestamp expected \(expected ?? ""), got \(actual ?? "")"
        case .field:
            guard let field else { return "port \(port), frame \(frame): differs" }
            let name = field.hasPrefix("payload byte") ? field : "field \(field)"
            return "port \(port), frame \(frame): \(name): expected \(expected ?? "absent"), got \(actual ?? "absent")"
        }
    }

    /// The `--json` object: port, frame, kind, and field, expected, actual where they apply.
    public var object: [String: Any] {
        var object: [String: Any] = ["port": port, "frame": frame, "kind": kind.rawValue]
        if let field { object["field"] = field }
        if let expected { object["expected"] = expected }
        if let actual { object["actual"] = actual }
        return object
    }
}

/// `--expect`: a port's output against a capture, aligned by content. Frames equal to the byte
/// pair up as the longest common subsequence of the two lists (after their common beginning and
/// end), so one missing or extra frame is reported once, as itself; frames left between two
/// such pairs are compared in order, field by field; the rest are missing or unexpected.
enum ExpectComparison {
    /// Past this many expected × actual frames between the common ends the subsequence is not
    /// searched (its table would take too long) and frames are compared in order.
    static let alignmentLimit = 1 << 22

    static func compare(port: String, expected: [(Int64, [UInt8])], actual: [(Int64, [UInt8])]) -> [ExpectDifference] {
        var differences: [ExpectDifference] = []
        for step in align(expected.map(\.1), actual.map(\.1)) {
            switch step {
            case .same(let e, let a), .changed(let e, let a):
                if case .changed = step, let change = FrameFields.firstDifferenceDetail(expected: expected[e].1, actual: actual[a].1) {
                    differences.append(
                        ExpectDifference(
                            port: port, frame: e + 1, kind: .field, field: change.field, expected: change.expected,
                            actual: change.actual))
                }
                if expected[e].0 != actual[a].0 {
                    differences.append(
                        ExpectDifference(
                            port: port, frame: e + 1, kind: .timestamp, field: "timestamp",
                            expected: Replay.seconds(expected[e].0), actual: Replay.seconds(actual[a].0)))
                }
            case .missing(let e):
                differences.append(
                    ExpectDifference(port: port, frame: e + 1, kind: .missing, expected: describe(expected[e].1)))
            case .unexpected(let a):
                differences.append(
                    ExpectDifference(port: port, frame: a + 1, kind: .unexpected, actual: describe(actual[a].1)))
            }
        }
        return differences
    }

    /// A frame down to L4, for a missing or unexpected one: addresses, protocol, ports, TCP flags.
    static func describe(_ frame: [UInt8]) -> String {
        "\(TraceText.summary(frame)), \(frame.count) bytes"
    }

    enum Step: Equatable {
        case same(Int, Int)
        case changed(Int, Int)
        case missing(Int)
        case unexpected(Int)
    }

    /// The steps that turn `expected` into `actual`, in order.
    static func align(_ expected: [[UInt8]], _ actual: [[UInt8]]) -> [Step] {
        var head = 0
        while head < expected.count, head < actual.count, expected[head] == actual[head] { head += 1 }
        var tail = 0
        while tail < expected.count - head, tail < actual.count - head,
            expected[expected.count - 1 - tail] == actual[actual.count - 1 - tail]
        {
            tail += 1
        }
        let e = Array(head..<(expected.count - tail))
        let a = Array(head..<(actual.count - tail))
        var steps = (0..<head).map { Step.same($0, $0) }
        // Pairs of equal frames in the middle, in order (a longest common subsequence).
        var pairs: [(Int, Int)] = []
        if !e.isEmpty, !a.isEmpty, e.count * a.count <= alignmentLimit {
            let width = a.count + 1
            var table = [Int32](repeating: 0, count: (e.count + 1) * width)
            for i in stride(from: e.count - 1, through: 0, by: -1) {
                for j in stride(from: a.count - 1, through: 0, by: -1) {
                    table[i * width + j] = expected[e[i]] == actual[a[j]]
                        ? table[(i + 1) * width + j + 1] + 1
                        : max(table[(i + 1) * width + j], table[i * width + j + 1])
                }
            }
            var i = 0
            var j = 0
            while i < e.count, j < a.count {
                if expected[e[i]] == actual[a[j]] {
                    pairs.append((e[i], a[j]))
                    i += 1
                    j += 1
                } else if table[(i + 1) * width + j] >= table[i * width + j + 1] {
                    i += 1
                } else {
                    j += 1
                }
            }
        }
        // Between pairs: compare in order what both sides have, the rest is missing or unexpected.
        var nextE = head
        var nextA = head
        func gap(to endE: Int, _ endA: Int) {
            let common = min(endE - nextE, endA - nextA)
            for k in 0..<common { steps.append(.changed(nextE + k, nextA + k)) }
            for k in (nextE + common)..<endE { steps.append(.missing(k)) }
            for k in (nextA + common)..<endA { steps.append(.unexpected(k)) }
        }
        for (pe, pa) in pairs {
            gap(to: pe, pa)
            steps.append(.same(pe, pa))
            nextE = pe + 1
            nextA = pa + 1
        }
        gap(to: expected.count - tail, actual.count - tail)
        for k in 0..<tail { steps.append(.same(expected.count - tail + k, actual.count - tail + k)) }
        return steps
    }
}
