/// The fuzz targets: one function per untrusted input of the contract ("Trust and bounds"), each
/// taking arbitrary bytes and checking invariants as well as the absence of traps.
///
/// They live in the main package, built normally, so `swift test` replays every committed corpus
/// and crash input through them (FuzzCorpusTests), under AddressSanitizer in CI too; the libFuzzer
/// driver (Fuzz/, built with -sanitize=fuzzer) only adds the engine. docs/fuzzing.md has the rest.
public enum FuzzTarget: String, CaseIterable, Sendable {
    case frameParser = "frame-parser"
    case datapath
    case pcap
    case topology
    case stream
    case segmentation
    case control
    case frameSyntax = "frame-syntax"
    case vxlan
    case coalescing

    /// Runs one input. Throws when an invariant fails (the driver turns that into a crash, which
    /// libFuzzer saves); a trap in the code under test crashes by itself.
    public func run(_ data: UnsafeRawBufferPointer) throws(InvariantViolation) {
        switch self {
        case .frameParser: try FrameParserTarget.run(data)
        case .datapath: try DatapathTarget.run(data)
        case .pcap: try PcapTarget.run(data)
        case .topology: try TopologyTarget.run(data)
        case .stream: try StreamTarget.run(data)
        case .segmentation: try SegmentationTarget.run(data)
        case .control: try ControlRequestTarget.run(data)
        case .frameSyntax: try FrameSyntaxTarget.run(data)
        case .vxlan: try VXLANTarget.run(data)
        case .coalescing: try CoalescingTarget.run(data)
        }
    }

    public func run(_ bytes: [UInt8]) throws(InvariantViolation) {
        var result: Result<Void, InvariantViolation> = .success(())
        bytes.withUnsafeBytes { data in
            do throws(InvariantViolation) { try run(data) } catch { result = .failure(error) }
        }
        try result.get()
    }
}

/// An invariant a target checks did not hold.
public struct InvariantViolation: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Throws `InvariantViolation(message())` unless `condition`.
@inline(__always)
func require(_ condition: Bool, _ message: @autoclosure () -> String) throws(InvariantViolation) {
    if !condition { throw InvariantViolation(message()) }
}

/// Reads structured values off the front of a fuzz input; past the end everything is zero, so
/// every input is meaningful and short inputs stay short.
struct ByteReader {
    let data: UnsafeRawBufferPointer
    var offset = 0

    init(_ data: UnsafeRawBufferPointer) { self.data = data }

    var remaining: Int { max(0, data.count - offset) }
    var isAtEnd: Bool { offset >= data.count }

    mutating func u8() -> UInt8 {
        guard offset < data.count else { return 0 }
        defer { offset += 1 }
        return data[offset]
    }

    mutating func u16() -> UInt16 { UInt16(u8()) << 8 | UInt16(u8()) }
    mutating func u32() -> UInt32 { UInt32(u16()) << 16 | UInt32(u16()) }
    mutating func u64() -> UInt64 { UInt64(u32()) << 32 | UInt64(u32()) }

    /// Up to `count` bytes (fewer at the end).
    mutating func bytes(_ count: Int) -> UnsafeRawBufferPointer {
        let start = min(offset, data.count)
        let end = min(data.count, start + max(0, count))
        offset = end
        return UnsafeRawBufferPointer(rebasing: data[start..<end])
    }

    /// The rest.
    mutating func rest() -> UnsafeRawBufferPointer { bytes(remaining) }
}
