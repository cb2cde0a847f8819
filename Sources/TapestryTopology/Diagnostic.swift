/// One problem found in a topology file, with the position of the YAML node it is about.
public struct Diagnostic: Error, Hashable, Sendable, CustomStringConvertible, Comparable {
    public var file: String
    /// 1-based, as editors count.
    public var line: Int
    public var column: Int
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// `FILE:LINE:COLUMN: error: MESSAGE`, the form compilers use and editors jump to.
    public var description: String { "\(file):\(line):\(column): error: \(message)" }

    public static func < (lhs: Diagnostic, rhs: Diagnostic) -> Bool {
        (lhs.line, lhs.column, lhs.message) < (rhs.line, rhs.column, rhs.message)
    }
}

/// All problems of one file; `description` prints one per line.
public struct TopologyErrors: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics.sorted() }
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
