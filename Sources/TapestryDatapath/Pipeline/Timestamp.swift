/// A point in time in nanoseconds since the Unix epoch.
///
/// The datapath never reads a clock: the driver passes `now` into every batch (the wall clock
/// live, the frame's capture timestamp in replay), so aging and timeouts are deterministic.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    public init(seconds: Int64, nanoseconds: Int64 = 0) { self.nanoseconds = seconds * 1_000_000_000 + nanoseconds }

    public static let zero = Timestamp(nanoseconds: 0)

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
    public static func + (lhs: Timestamp, seconds: Duration) -> Timestamp {
        let (s, attoseconds) = seconds.components
        return Timestamp(nanoseconds: lhs.nanoseconds + s * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// `SECONDS.NNNNNNNNN`, before 1970 with a sign (`-1.500000000`); on the magnitude, so no
    /// value traps.
    public var description: String {
        let magnitude = nanoseconds.magnitude
        let digits = String(magnitude % 1_000_000_000)
        return "\(nanoseconds < 0 ? "-" : "")\(magnitude / 1_000_000_000).\(String(repeating: "0", count: 9 - digits.count))\(digits)"
    }
}
