import ArgumentParser
import TapestryReplay
import TapestryTopology

extension Tapestry {
    struct Trace: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show, stage by stage, what the pipeline decides for each frame of some captures, and why.",
            discussion: """
                Replays the captures exactly as `replay` does (merged by timestamp, the clock is the frame's \
                time, the same batches) and prints for each frame what each stage recorded deciding it: the \
                VLAN decision, the connection and its state before and after, the rule that decided a new \
                connection, the backend a load balancer chose and why, the MAC table's answer, the output \
                ports, and every drop with its reason and cause. Writes no captures.
                """
        )

        @Argument(help: "The topology file (YAML).", completion: Complete.topology)
        var topology: String

        @Option(name: .customLong("in"), help: ArgumentHelp("A capture to feed into a port.", valueName: "PORT=FILE.pcap"), completion: Complete.portCapture)
        var inputs: [String] = []

        @Option(help: "Show only this frame (1 is the first, in merged order).")
        var frame: Int?

        func validate() throws {
            if inputs.isEmpty { throw ValidationError("give at least one --in PORT=FILE.pcap") }
            for value in inputs where Replay.split(value) == nil { throw ValidationError("'\(value)' is not PORT=FILE.pcap") }
            if let frame, frame < 1 { throw ValidationError("--frame counts from 1") }
        }

        func run() throws {
            let loaded = try loadTopologyOrExit(topology)
            do {
                print(try Tracer(topology: loaded, inputs: inputs.compactMap(Replay.split)).run(only: frame))
            } catch {
                printError("tapestry trace: \(error)")
                throw ExitCode(1)
            }
        }
    }
}
