import Yams

/// Walks a composed YAML tree and records every problem with its position, instead of stopping
/// at the first (as `Codable` decoding would).
package struct YAMLReader {
    package let file: String
    package private(set) var diagnostics: [Diagnostic] = []

    package init(file: String) { self.file = file }

    package mutating func error(_ node: Node?, _ message: String) {
        let mark = node?.mark
        diagnostics.append(Diagnostic(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1, message: message))
    }

    package mutating func error(at mark: Mark?, _ message: String) {
        diagnostics.append(Diagnostic(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1, message: message))
    }

    /// A mapping entry with its key as text.
    package struct Entry {
        package var key: String
        package var keyNode: Node
        package var value: Node
    }

    /// The entries of a mapping; an error (and nil) when `node` is not one. Keys that are not plain
    /// scalars are reported and skipped.
    package mutating func entries(_ node: Node, what: String) -> [Entry]? {
        guard case .mapping(let mapping) = node else {
            error(node, "\(what) must be a mapping (key: value pairs), not \(describe(node))")
            return nil
        }
        var result: [Entry] = []
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else {
                error(key, "keys of \(what) must be plain names")
                continue
            }
            // A duplicate key already reported by the loader was renamed to start with this marker.
            if scalar.string.unicodeScalars.first.map(YAMLReader.isDuplicateMarker) == true { continue }
            result.append(Entry(key: scalar.string, keyNode: key, value: value))
        }
        return result
    }

    /// Entries of a mapping that may only use `allowed` keys; unknown keys are errors.
    package mutating func entries(_ node: Node, what: String, allowed: [String]) -> [String: Entry]? {
        guard let list = entries(node, what: what) else { return nil }
        var result: [String: Entry] = [:]
        for entry in list {
            if allowed.contains(entry.key) {
                result[entry.key] = entry
            } else {
                let suggestion = closest(entry.key, in: allowed).map { " (did you mean '\($0)'?)" } ?? ""
                error(
                    entry.keyNode,
                    "unknown key '\(entry.key.count > 64 ? entry.key.prefix(64) + "..." : entry.key)' in \(what)\(suggestion); allowed: \(allowed.joined(separator: ", "))")
            }
        }
        return result
    }

    /// Private-use scalars the loader writes over a duplicated key so parsing can go on.
    package static func isDuplicateMarker(_ scalar: Unicode.Scalar) -> Bool { (0xE000...0xEFFF).contains(scalar.value) }

    package mutating func sequence(_ node: Node, what: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            error(node, "\(what) must be a list, not \(describe(node))")
            return nil
        }
        return Array(sequence)
    }

    package mutating func string(_ node: Node, what: String) -> String? {
        guard case .scalar(let scalar) = node, !isNull(node) else {
            error(node, "\(what) must be a text value, not \(describe(node))")
            return nil
        }
        guard !scalar.string.isEmpty else {
            error(node, "\(what) must not be empty")
            return nil
        }
        return scalar.string
    }

    /// An integer written as a plain (unquoted) YAML scalar within `range`.
    package mutating func integer(_ node: Node, what: String, range: ClosedRange<Int>) -> Int? {
        guard case .scalar(let scalar) = node, scalar.style == .plain, let value = Int(scalar.string) else {
            error(node, "\(what) must be a whole number, not \(describe(node))")
            return nil
        }
        guard range.contains(value) else {
            error(node, "\(what) \(value) is out of range \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return value
    }

    /// `true` or `false`, written plain.
    package mutating func boolean(_ node: Node, what: String) -> Bool? {
        if case .scalar(let scalar) = node, scalar.style == .plain {
            if scalar.string == "true" { return true }
            if scalar.string == "false" { return false }
        }
        error(node, "\(what) must be true or false, not \(describe(node))")
        return nil
    }

    package func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    package func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            if isNull(node) { return "an empty value" }
            return "'\(scalar.string)'"
        }
    }

    /// The allowed word nearest to a misspelling (edit distance at most 2), for "did you mean".
    package func closest(_ word: String, in candidates: [String]) -> String? {
        // A suggestion is for a misspelt name; a long word is not one (and costs length x length).
        guard word.count <= 64 else { return nil }
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var previous = Array(0...b.count)
            for (i, ca) in a.enumerated() {
                var current = [i + 1]
                for (j, cb) in b.enumerated() {
                    current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
                }
                previous = current
            }
            return previous[b.count]
        }
        let scored = candidates.map { ($0, distance(Array(word), Array($0))) }.filter { $0.1 <= 2 }
        return scored.min { $0.1 < $1.1 }?.0
    }
}
