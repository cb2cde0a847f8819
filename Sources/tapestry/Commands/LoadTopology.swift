import ArgumentParser
import TapestryTopology

/// The topology at `path`, or its problems on standard error (as `check` prints them) and exit
/// status 1: how every command that takes a topology starts.
func loadTopologyOrExit(_ path: String) throws -> Topology {
    switch TopologyLoader.load(path: path) {
    case .success(let topology): return topology
    case .failure(let errors):
        printError(errors.description)
        throw ExitCode(1)
    }
}
