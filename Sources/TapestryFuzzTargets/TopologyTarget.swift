import TapestryDatapath
import TapestrySwitchCore
import TapestryTopology

/// A topology file's text through the loader and validator, and, when it is valid, through the
/// topology -> DatapathConfiguration mapping and into a Datapath (when its tables are small enough
/// to allocate per input), as `check`, `run` and `reload` use it.
///
/// Invariants: a failure has at least one diagnostic, each with a line and column >= 1; a
/// success maps to a configuration with the same ports and networks.
enum TopologyTarget {
    static func run(_ data: UnsafeRawBufferPointer) throws(InvariantViolation) {
        let text = String(decoding: data, as: UTF8.self)
        switch TopologyLoader.parse(yaml: text, file: "fuzz.yaml") {
        case .failure(let errors):
            try require(!errors.diagnostics.isEmpty, "a failure without diagnostics")
            for diagnostic in errors.diagnostics {
                try require(diagnostic.line >= 1 && diagnostic.column >= 1, "diagnostic at \(diagnostic.line):\(diagnostic.column)")
            }
            _ = errors.description
        case .success(let topology):
            _ = topology.summary
            let configuration = DatapathConfiguration(topology: topology)
            try require(configuration.ports.count == topology.ports.count, "ports lost in the mapping")
            try require(configuration.networks.count == topology.networks.count, "networks lost in the mapping")
            let connections = topology.firewall?.maxConnections ?? 0
            if topology.macTableSize <= 1 << 12, connections <= 1 << 12 {
                let datapath = Datapath(configuration: configuration, batchCapacity: 1, maxFrameLength: 64)
                _ = datapath.counters
            }
        }
    }
}
