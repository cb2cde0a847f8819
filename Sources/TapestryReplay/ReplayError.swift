import TapestryPcap
import TapestryTopology

/// Why a replay could not run. Nothing is written when one is thrown.
public enum ReplayError: Error, CustomStringConvertible, Equatable {
    case unknownPort(String, known: [String])
    case capture(PcapError)
    case cannotCreateDirectory(String, String)
    /// `trace --frame N` past the captures' end.
    case noSuchFrame(Int, count: Int)

    public var description: String {
        switch self {
        case .unknownPort(let name, let known):
            return "no port named '\(name)' in the topology\(DidYouMean.suffix(name, in: known)) (ports: \(known.joined(separator: ", ")))"
        case .capture(let error): return error.description
        case .cannotCreateDirectory(let path, let reason): return "cannot create output directory \(path): \(reason)"
        case .noSuchFrame(let frame, let count): return "the captures hold \(count) frames, there is no frame \(frame)"
        }
    }
}
