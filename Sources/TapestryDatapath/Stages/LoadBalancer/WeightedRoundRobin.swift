/// Smooth weighted round robin (nginx's `ngx_http_upstream_get_peer`): each pick adds every
/// backend's weight to its current weight, takes the greatest (the first in list order on a tie)
/// and subtracts the total from it. Weights 3 and 1 give a, a, b, a — interleaved, not a, a, a, b.
/// With all weights 1 it is plain round robin starting with the first. A pure value.
public struct WeightedRoundRobin: Sendable, Equatable {
    public private(set) var weights: [Int]
    public private(set) var current: [Int]
    /// Drained backends take no new connections; their existing connections are untouched.
    public private(set) var drained: [Bool]
    /// Backends a health check found down: skipped like drained ones until they come back up.
    public private(set) var down: [Bool]

    public init(weights: [Int]) {
        precondition(!weights.isEmpty && weights.allSatisfy { $0 > 0 })
        self.weights = weights
        current = [Int](repeating: 0, count: weights.count)
        drained = [Bool](repeating: false, count: weights.count)
        down = [Bool](repeating: false, count: weights.count)
    }

    /// Backends a new connection skips now (drained or down).
    public var skipped: Int { weights.indices.lazy.filter { drained[$0] || down[$0] }.count }

    /// The next backend, or nil when every backend is drained or down.
    public mutating func next() -> Int? {
        var total = 0
        var best = -1
        for index in weights.indices where !drained[index] && !down[index] {
            current[index] += weights[index]
            total += weights[index]
            if best < 0 || current[index] > current[best] { best = index }
        }
        guard best >= 0 else { return nil }
        current[best] -= total
        return best
    }

    public mutating func setDrained(_ index: Int, _ value: Bool) {
        drained[index] = value
        if value { current[index] = 0 }
    }

    /// Whether backend `index` may take a new connection (neither drained nor down).
    public func isAvailable(_ index: Int) -> Bool { index >= 0 && index < weights.count && !drained[index] && !down[index] }

    public mutating func setDown(_ index: Int, _ value: Bool) {
        down[index] = value
        if value { current[index] = 0 }
    }
}
