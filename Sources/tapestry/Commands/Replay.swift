import ArgumentParser
import TapestryReplay
import TapestryTopology

extension Tapestry {
    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a topology offline over pcap captures, deterministically.",
            discussion: """
                Frames from every --in capture are merged by timestamp and fed into their port; the switch's \
                clock is the frame's timestamp. Every port's output is written to DIR/PORT.pcap. With --expect, \
                each named port's output is compared with a capture and the first differing field of each frame \
                is printed; any difference exits 1.
                """
        )

        @Argument(help: "The topology file (YAML).", completion: Complete.topology)
        var topology: String

        @Option(name: .customLong("in"), help: ArgumentHelp("A capture to feed into a port.", valueName: "PORT=FILE.pcap"), completion: Complete.portCapture)
        var inputs: [String] = []

        @Option(name: .customLong("out"), help: ArgumentHelp("Directory for the output captures (created if missing).", valueName: "DIR"), completion: .directory)
        var outputDirectory: String

        @Option(name: .customLong("expect"), help: ArgumentHelp("A capture a port's output must equal.", valueName: "PORT=FILE.pcap"), completion: Complete.portCapture)
        var expectations: [String] = []

        @Option(
            name: .customLong("drops"),
            help: ArgumentHelp(
                "Also write every dropped frame to this pcapng file, each with the comment 'port PORT: STAGE: REASON: CAUSE'.",
                valueName: "FILE.pcapng"), completion: .file(extensions: ["pcapng"]))
        var dropsPath: String?

        @Flag(help: "Print the summary as JSON.")
        var json = false

        func validate() throws {
            if inputs.isEmpty { throw ValidationError("give at least one --in PORT=FILE.pcap") }
            for value in inputs + expectations where Self.split(value) == nil {
                throw ValidationError("'\(value)' is not PORT=FILE.pcap")
            }
            let expected = expectations.compactMap(Self.split).map(\.port)
            if let repeated = expected.first(where: { port in expected.filter { $0 == port }.count > 1 }) {
                throw ValidationError("--expect names port '\(repeated)' more than once")
            }
        }

        static func split(_ value: String) -> TapestryReplay.Replay.Input? {
            guard let equals = value.firstIndex(of: "="), equals != value.startIndex,
                value.index(after: equals) != value.endIndex
            else { return nil }
            return .init(port: String(value[..<equals]), path: String(value[value.index(after: equals)...]))
        }

        func run() throws {
            let loaded = try loadTopologyOrExit(topology)
            var replay = TapestryReplay.Replay(
                topology: loaded, inputs: inputs.compactMap(Self.split), outputDirectory: outputDirectory,
                expectations: expectations.compactMap(Self.split))
            replay.log = { printError($0) }
            replay.dropsPath = dropsPath
            let summary: ReplaySummary
            do {
                summary = try replay.run()
            } catch {
                printError("tapestry replay: \(error)")
                throw ExitCode(1)
            }
            print(json ? summary.json : summary.text)
            if !summary.differences.isEmpty { throw ExitCode(1) }
        }
    }
}
