import TapestryControl

/// A control client's request line, as the control thread reads it (bytes up to the newline,
/// decoded as UTF-8, split into words) through `ControlRequest.parse`, which `ctl` uses too.
///
/// Invariants: a request prints back as words that parse to the same request, none empty or
/// holding a separator, and not much longer than the input (defaults added by `trace`); a
/// refusal has a message.
enum ControlRequestTarget {
    static func run(_ data: UnsafeRawBufferPointer) throws(InvariantViolation) {
        let line = String(decoding: data.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let request: ControlRequest
        do {
            request = try ControlRequest.parse(line: line)
        } catch {
            try require(!error.message.isEmpty, "a refusal without a message")
            return
        }
        let words = request.words
        for word in words {
            try require(!word.isEmpty && !word.contains(where: { $0 == " " || $0 == "\t" || $0 == "\r" }), "word '\(word)'")
        }
        try require(words.joined(separator: " ").utf8.count <= line.utf8.count + 16, "\(words) from \(line.utf8.count) bytes")
        let again: ControlRequest
        do {
            again = try ControlRequest.parse(words)
        } catch {
            throw InvariantViolation("\(words) does not parse back: \(error)")
        }
        try require(again == request, "\(words) parses back to \(again), not \(request)")
    }
}
