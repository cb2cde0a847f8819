import TapestryDatapath

/// A clock that moves only when told (SwiftNIO's `EmbeddedEventLoop.advanceTime`, OVS `time/warp`).
public struct ManualClock: Sendable {
    public private(set) var now: Timestamp

    public init(startingAt start: Timestamp = Timestamp(seconds: 1_700_000_000)) { now = start }

    public mutating func advance(by duration: Duration) { now = now + duration }
}
