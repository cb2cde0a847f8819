import ArgumentParser
import TapestryTopology

extension Tapestry {
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Parse and validate a topology file.",
            discussion: """
                Prints a one-paragraph summary and exits 0 when the file is valid. Otherwise prints every \
                problem on standard error as FILE:LINE:COLUMN: error: MESSAGE and exits 1.
                """
        )

        @Argument(help: "The topology file (YAML).", completion: .file(extensions: ["yaml", "yml"]))
        var topology: String

        func run() throws {
            switch TopologyLoader.load(path: topology) {
            case .success(let topology):
                print(topology.summary)
            case .failure(let errors):
                printError(errors.description)
                throw ExitCode(1)
            }
        }
    }
}
