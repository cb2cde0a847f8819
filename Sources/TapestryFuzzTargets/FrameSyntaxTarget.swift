import TapestryFrameSyntax
import TapestryPacketTest
import TapestryTopology
import TapestryWire

/// The frame syntax of test files and `decode`: the first input byte picks what the rest is.
/// 0 (mod 4): YAML text for one frame, through the loader's composer (its bounds) and
/// `FrameSpecReader`; 2: a whole test file (`PacketTestFile.parse`), run when it is valid;
/// odd: a frame's bytes, through `FrameSpec.decode`.
///
/// Invariants: a refused text has diagnostics, each at line and column >= 1; a frame that is
/// read builds (at most 65,553 bytes), and any built or given frame survives the round trip:
/// decode, render as text, read back, build gives the same bytes; a valid test file runs every
/// test once, and each failure says why.
enum FrameSyntaxTarget {
    static func run(_ data: UnsafeRawBufferPointer) throws(InvariantViolation) {
        guard let mode = data.first else { return }
        let rest = Array(UnsafeRawBufferPointer(rebasing: data[1...]))
        if mode & 3 == 2 {
            switch PacketTestFile.parse(yaml: String(decoding: rest, as: UTF8.self), file: "fuzz.test.yaml") {
            case .failure(let errors):
                try require(!errors.diagnostics.isEmpty, "a refused test file without diagnostics")
                for diagnostic in errors.diagnostics {
                    try require(diagnostic.line >= 1 && diagnostic.column >= 1, "diagnostic at \(diagnostic.line):\(diagnostic.column)")
                }
            case .success(let file):
                let results = PacketTestRunner.run(file)
                try require(results.count == file.tests.count, "\(file.tests.count) tests gave \(results.count) results")
                for result in results where !result.passed {
                    try require(!(result.problem ?? "").isEmpty && !result.detail.isEmpty, "a failure without a reason")
                }
            }
            return
        }
        if mode & 1 == 0 {
            let text = String(decoding: rest, as: UTF8.self)
            let (root, diagnostics) = TopologyLoader.compose(yaml: text, file: "fuzz.yaml")
            for diagnostic in diagnostics {
                try require(diagnostic.line >= 1 && diagnostic.column >= 1, "diagnostic at \(diagnostic.line):\(diagnostic.column)")
            }
            guard let root, diagnostics.isEmpty else { return }
            var reader = FrameSpecReader(file: "fuzz.yaml")
            guard let (spec, _) = reader.frame(root) else {
                try require(!reader.diagnostics.isEmpty, "a refused frame without diagnostics")
                for diagnostic in reader.diagnostics {
                    try require(diagnostic.line >= 1 && diagnostic.column >= 1, "diagnostic at \(diagnostic.line):\(diagnostic.column)")
                }
                return
            }
            let bytes: [UInt8]
            do { bytes = try spec.build() } catch { throw InvariantViolation("a frame that was read does not build: \(error)") }
            try require(bytes.count <= FrameSpec.maxLength, "built \(bytes.count) bytes")
            try roundTrip(bytes)
        } else {
            guard rest.count <= FrameSpec.maxLength else { return }
            try roundTrip(rest)
        }
    }

    static func roundTrip(_ bytes: [UInt8]) throws(InvariantViolation) {
        let text = FrameSpec.decode(bytes).text()
        let (root, diagnostics) = TopologyLoader.compose(yaml: text, file: "decoded.yaml")
        guard let root, diagnostics.isEmpty else { throw InvariantViolation("decode printed text that does not compose: \(diagnostics)\n\(text)") }
        var reader = FrameSpecReader(file: "decoded.yaml")
        guard let (spec, _) = reader.frame(root) else {
            throw InvariantViolation("decode printed a frame that does not read back: \(reader.diagnostics)\n\(text)")
        }
        let again: [UInt8]
        do { again = try spec.build() } catch { throw InvariantViolation("a decoded frame does not build: \(error)\n\(text)") }
        try require(again == bytes, "decode -> text -> build changed the frame:\n\(text)")
    }
}
