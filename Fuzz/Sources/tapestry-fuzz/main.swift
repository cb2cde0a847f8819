// `tapestry-fuzz TARGET [libFuzzer options] [CORPUS...]`: one executable for every target (see
// FuzzTarget), built with `swift build -Xswiftc -sanitize=fuzzer,address` (scripts/fuzz.sh).
// The target name is taken off the arguments before libFuzzer parses them.
import TapestryFuzzTargets

#if canImport(Glibc)
import Glibc
#endif

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// Writes to file descriptor 2 (the C `stderr` global is not concurrency-safe to name).
func complain(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// Set once, before libFuzzer starts calling back; read only afterwards.
nonisolated(unsafe) var selected: FuzzTarget = .frameParser

@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    do throws(InvariantViolation) {
        try selected.run(UnsafeRawBufferPointer(start: data, count: size))
    } catch {
        // A crash is what libFuzzer records: it saves the input as crash-<sha1>.
        complain("tapestry-fuzz \(selected.rawValue): invariant violated: \(error)\n")
        abort()
    }
    return 0
}

let arguments = CommandLine.arguments
guard arguments.count >= 2, let target = FuzzTarget(rawValue: arguments[1]) else {
    complain("usage: tapestry-fuzz TARGET [libFuzzer options] [CORPUS...]\ntargets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: " "))\n")
    exit(2)
}
selected = target
// argv without the target name, for libFuzzer (it keeps pointers to these strings).
var kept = [arguments[0]] + arguments.dropFirst(2)
var pointers: [UnsafeMutablePointer<CChar>?] = kept.map { strdup($0) } + [nil]
var argc = Int32(kept.count)
exit(pointers.withUnsafeMutableBufferPointer { buffer -> Int32 in
    var argv = buffer.baseAddress
    return LLVMFuzzerRunDriver(&argc, &argv, testOneInput)
})
