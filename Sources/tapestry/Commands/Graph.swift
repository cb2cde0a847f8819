import ArgumentParser
import Foundation
import TapestryProcess
import TapestryTopology

extension Tapestry {
    struct Graph: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Draw a topology: its networks, ports, load balancers and firewall.",
            discussion: """
                Prints the picture as Graphviz DOT (the default) or Mermaid text, or, with --format svg, \
                renders it with Graphviz's `dot` (which must be installed: apt-get install graphviz). \
                Each port is linked to the networks it carries (access, tagged or native), with its \
                device, namespace and VXLAN remotes; each load balancer to its network with its VIP and \
                backends. With --output the picture is written to a temporary name and renamed into \
                place. An invalid topology is reported as `check` reports it, and nothing is written.
                """
        )

        enum Format: String, ExpressibleByArgument, CaseIterable {
            case dot, mermaid, svg
        }

        @Argument(help: "The topology file (YAML).", completion: .file(extensions: ["yaml", "yml"]))
        var topology: String

        @Option(help: "dot, mermaid or svg.")
        var format: Format = .dot

        @Option(name: .shortAndLong, help: "Write the picture to this file instead of standard output.", completion: .file())
        var output: String?

        func run() throws {
            let loaded = try loadTopologyOrExit(topology)
            let graph = TopologyGraph(loaded)
            let text: String
            switch format {
            case .dot: text = graph.dot
            case .mermaid: text = graph.mermaid
            case .svg: text = try Self.svg(graph.dot)
            }
            guard let output else {
                print(text, terminator: "")
                return
            }
            let temporary = "\(output).tmp-\(getpid())"
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
            } catch {
                printError("tapestry graph: cannot write \(output): \(error.localizedDescription)")
                throw ExitCode(1)
            }
            guard rename(temporary, output) == 0 else {
                let reason = String(cString: strerror(errno))
                unlink(temporary)
                printError("tapestry graph: cannot write \(output): \(reason)")
                throw ExitCode(1)
            }
        }

        /// The DOT text rendered by Graphviz's `dot`, found on PATH.
        static func svg(_ dot: String) throws -> String {
            let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
                .map { "\($0)/dot" }.first { FileManager.default.isExecutableFile(atPath: $0) }
            guard let path else {
                printError("tapestry graph: --format svg needs Graphviz's dot, which is not on PATH (apt-get install graphviz); --format dot and mermaid need nothing")
                throw ExitCode(1)
            }
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tapestry-graph-\(getpid())")
            defer { try? FileManager.default.removeItem(at: directory) }
            do {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                try Data(dot.utf8).write(to: directory.appendingPathComponent("in.dot"))
            } catch {
                printError("tapestry graph: cannot write a temporary file: \(error.localizedDescription)")
                throw ExitCode(1)
            }
            let rendered = directory.appendingPathComponent("out.svg")
            let result = ChildProcess.run(path, ["-Tsvg", "-o", rendered.path, directory.appendingPathComponent("in.dot").path], timeout: 30)
            guard result.status == 0, let svg = try? String(contentsOf: rendered, encoding: .utf8) else {
                printError("tapestry graph: dot failed (status \(result.status)): \(result.output.trimmingCharacters(in: .whitespacesAndNewlines))")
                throw ExitCode(1)
            }
            return svg
        }
    }
}
