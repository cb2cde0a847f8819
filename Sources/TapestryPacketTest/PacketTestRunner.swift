import TapestryDatapath
import TapestryFrameSyntax
import TapestrySwitchCore
import TapestryTopology
import TapestryWire

/// Runs a test file's tests, each on a fresh switch driven as replay drives one: frames in `at`
/// order (ties: list order), consecutive frames of one port and one time in one batch, the
/// clock at a fixed instant plus `at`.
public enum PacketTestRunner {
    /// The instant every test's clock starts at (2023-11-14 22:13:20 UTC).
    public static let start: Int64 = 1_700_000_000_000_000_000

    public struct Result: Sendable {
        public var file: String
        public var name: String
        /// Nil when the test passed.
        public var problem: String?
        /// For a failure: each port's actual frames in the frame syntax.
        public var detail: [String]
        public var passed: Bool { problem == nil }
    }

    public static func run(_ file: PacketTestFile, filter: String? = nil) -> [Result] {
        file.tests.filter { filter == nil || $0.name.contains(filter!) }.map { run($0, in: file) }
    }

    static func run(_ test: PacketTestFile.Test, in file: PacketTestFile) -> Result {
        let core = SwitchCore(topology: file.topology)
        // Probes never run here: a backend is down only when the test says so, as if its
        // health checks had failed.
        for (balancer, backend) in test.down {
            core.datapath.setBackendUp(balancer: balancer, backend: backend, false, now: Timestamp(nanoseconds: start))
        }
        let names = core.portNames
        var sent = [[[UInt8]]](repeating: [], count: names.count)
        let order = test.frames.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }.map(\.element)
        var index = 0
        while index < order.count {
            let port = core.port(named: order[index].port)!
            let time = order[index].at
            core.begin(port: port)
            while index < order.count, order[index].port == names[Int(port)], order[index].at == time, !core.batch.isFull {
                order[index].bytes.withUnsafeBytes { _ = core.append($0) }
                index += 1
            }
            core.run(now: Timestamp(nanoseconds: start &+ time)) { out, queues in
                for frame in 0..<queues.count(out) { sent[Int(out)].append(Array(queues.frame(out, frame))) }
            }
        }
        core.finishInput()
        var problems: [String] = []
        for (number, name) in names.enumerated() where !test.ignorePorts.contains(name) {
            let frames = sent[number]
            let patterns = test.expect[name] ?? []
            if let problem = compare(port: name, frames, patterns) { problems.append(problem) }
        }
        let counters = core.datapath.counters
        for (reason, expected) in test.drops.sorted(by: { $0.key.name < $1.key.name }) {
            let got = counters.drops[reason] ?? 0
            if got != expected { problems.append("drops \(reason.name): expected \(expected), got \(got)") }
        }
        guard let first = problems.first else { return Result(file: file.path, name: test.name, problem: nil, detail: []) }
        var detail = problems.dropFirst().map { "also: \($0)" }
        for (number, name) in names.enumerated() {
            detail.append("port \(name) sent \(sent[number].count) frame\(sent[number].count == 1 ? "" : "s")\(sent[number].isEmpty ? "" : ":")")
            for frame in sent[number] {
                let spec = FrameSpec.decodeForComparison(frame)
                let lines = spec.text().split(separator: "\n").map(String.init)
                detail.append("  - " + (lines.first ?? ""))
                detail += lines.dropFirst().map { "    " + $0 }
                let built = (try? spec.build()) ?? []
                if built != frame { detail.append("    # \(frame.count) bytes; what follows the layers is not shown") }
            }
        }
        let dropped = counters.drops.filter { $0.value > 0 }.sorted { $0.key.name < $1.key.name }
        detail.append("drops: " + (dropped.isEmpty ? "none" : dropped.map { "\($0.key.name) \($0.value)" }.joined(separator: ", ")))
        return Result(file: file.path, name: test.name, problem: first, detail: detail)
    }

    /// The first way a port's frames fail its patterns (one to one, in order).
    static func compare(port: String, _ frames: [[UInt8]], _ patterns: [FramePattern]) -> String? {
        for (index, pattern) in patterns.enumerated() {
            guard index < frames.count else {
                return "port \(port): expected \(patterns.count) frame\(patterns.count == 1 ? "" : "s"), got \(frames.count) (expected frame \(index + 1) did not come)"
            }
            if let (field, expected, actual) = pattern.mismatch(frames[index]) {
                return "port \(port), frame \(index + 1): \(field) expected \(expected), got \(actual)"
            }
        }
        if frames.count > patterns.count {
            return "port \(port): expected \(patterns.count) frame\(patterns.count == 1 ? "" : "s"), got \(frames.count)"
        }
        return nil
    }
}
