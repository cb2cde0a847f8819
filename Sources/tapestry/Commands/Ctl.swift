import ArgumentParser
import Foundation
import TapestryControl
import TapestryTopology

#if canImport(Glibc)
import Glibc
#endif

extension Tapestry {
    struct Ctl: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Talk to a running switch: show, fdb, conntrack, lb, stats, rules, reload, trace.",
            discussion: ControlRequest.usage + """


                Without --control or --topology, the one switch whose socket is in /run/tapestry (for root; \
                $XDG_RUNTIME_DIR/tapestry or /tmp/tapestry-UID for other users) is used. An unknown command, \
                argument or filter value exits 64 before anything is sent.
                """
        )

        @Option(help: ArgumentHelp("The switch's control socket.", valueName: "PATH"), completion: .file(extensions: ["sock"]))
        var control: String?

        @Option(help: ArgumentHelp("Find the control socket from this topology file's `control:`.", valueName: "FILE"), completion: Complete.topology)
        var topology: String?

        @Flag(help: "Print the switch's JSON answer instead of tables.")
        var json = false

        @Argument(help: "show | fdb | conntrack | lb | stats | rules | reload | trace", completion: .list(Complete.controlCommands))
        var command: String

        @Argument(parsing: .captureForPassthrough, help: "Arguments of the command (filters, flush, drain/undrain).", completion: Complete.controlArguments)
        var arguments: [String] = []

        /// `--json` may follow the command (`ctl show --json`); every other word is the request's.
        var wantsJSON: Bool { json || arguments.contains("--json") }

        var request: ControlRequest {
            get throws { try ControlRequest.parse([command] + arguments.filter { $0 != "--json" }) }
        }

        func validate() throws {
            do {
                _ = try request
            } catch let error as ControlUsageError {
                throw ValidationError("\(error.message)\n\n\(ControlRequest.usage)")
            }
            if control != nil && topology != nil { throw ValidationError("give --control or --topology, not both") }
        }

        func run() throws {
            let request = try self.request
            let path: String
            if let control {
                path = control
            } else if let topology {
                path = try loadTopologyOrExit(topology).controlPath
            } else {
                let directory = Topology.defaultControlDirectory
                let sockets = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
                    .filter { $0.hasSuffix(".sock") }.sorted().map { "\(directory)/\($0)" }
                guard !sockets.isEmpty else {
                    printError("tapestry ctl: no switch listening (no control socket in \(directory)); is `tapestry run` running?")
                    throw ExitCode(1)
                }
                guard sockets.count == 1 else {
                    printError("tapestry ctl: several switches are running; pick one with --control:\n" + sockets.map { "  \($0)" }.joined(separator: "\n"))
                    throw ExitCode(1)
                }
                path = sockets[0]
            }
            let answer: String
            switch ControlClient.send(request, to: path) {
            case .noSwitch:
                printError("tapestry ctl: no switch listening on \(path)")
                throw ExitCode(1)
            case .closedWithoutAnswer:
                // What a switch that already serves its 16 control clients does to the next one.
                printError("tapestry ctl: the switch at \(path) closed the connection without answering (it serves at most 16 control clients at once; try again)")
                throw ExitCode(1)
            case .answer(let text):
                answer = text
            }
            do {
                if let failure = try ControlRender.failure(answer) {
                    printError("tapestry ctl: \(failure.error)")
                    // The request named something the switch does not have (a network, a port).
                    throw ExitCode(failure.usage == true ? 64 : 1)
                }
                print(wantsJSON ? answer.trimmingCharacters(in: .whitespacesAndNewlines) : try ControlRender.render(request, answer))
            } catch let error as ControlRender.Unreadable {
                printError("tapestry ctl: \(error)")
                throw ExitCode(1)
            }
        }
    }
}
