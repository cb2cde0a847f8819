import Yams

/// Walks a composed YAML tree and records every problem with its position, instead of stopping
/// at the first (as `Codable` decoding would).
package struct YAMLReader {
    package let file: String
    package private(set) var diagnostics: [Diagnostic] = []
    /// What was reported, so a problem inside an anchor that is used (or merged) twice is said once.
    private var reported: Set<String> = []
    private var undefinedNetworks = 0
    private var unknownKeys = 0

    package init(file: String) { self.file = file }

    package mutating func error(_ node: Node?, _ message: String) {
        error(at: node?.mark, message)
    }

    package mutating func error(at mark: Mark?, _ message: String) {
        let diagnostic = Diagnostic(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1, message: message)
        guard reported.insert("\(diagnostic.line):\(diagnostic.column):\(message)").inserted else { return }
        diagnostics.append(diagnostic)
    }

    /// A mapping entry with its key as text.
    package struct Entry {
        package var key: String
        package var keyNode: Node
        package var value: Node
        /// Brought in by a merge key (`<<`), not written in the mapping itself.
        package var merged = false
    }

    /// The entries of a mapping; an error (and nil) when `node` is not one. Keys that are not plain
    /// scalars are reported and skipped. A plain `<<` key is YAML's merge key (as docker-compose
    /// and GitLab CI files use it): the entries of the mapping it names, or of each mapping of a
    /// list, join this one's; a key written here wins over a merged one, and an earlier mapping of
    /// the list over a later one. (What aliases may expand to is bounded before this: YAMLBudget.)
    package mutating func entries(_ node: Node, what: String) -> [Entry]? {
        guard case .mapping(let mapping) = node else {
            error(node, "\(what) must be a mapping (key: value pairs), not \(describe(node))")
            return nil
        }
        var result: [Entry] = []
        var hasMerge = false
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else {
                error(key, "keys of \(what) must be plain names")
                continue
            }
            // A duplicate key already reported by the loader was renamed to start with this marker.
            if scalar.string.unicodeScalars.first.map(YAMLReader.isDuplicateMarker) == true { continue }
            if scalar.string == "<<" && scalar.style == .plain {
                hasMerge = true
                let sources: [Node]
                if case .sequence(let list) = value { sources = Array(list) } else { sources = [value] }
                for source in sources {
                    guard case .mapping = source else {
                        error(source, "a merge key (<<) takes a mapping or a list of mappings, not \(describe(source))")
                        continue
                    }
                    for var entry in entries(source, what: what) ?? [] {
                        entry.merged = true
                        result.append(entry)
                    }
                }
                continue
            }
            result.append(Entry(key: scalar.string, keyNode: key, value: value))
        }
        guard hasMerge else { return result }
        let written = Set(result.lazy.filter { !$0.merged }.map(\.key))
        var seen = Set<String>()
        return result.filter { entry in
            entry.merged ? !written.contains(entry.key) && seen.insert(entry.key).inserted : true
        }
    }

    /// A mapping's entries as `entries` gives them (merges applied), without reporting anything:
    /// for a second look at a mapping whose problems another reading reports. Empty for a
    /// node that is not a mapping.
    package func quietEntries(_ node: Node) -> [Entry] {
        var scratch = YAMLReader(file: file)
        guard case .mapping = node else { return [] }
        return scratch.entries(node, what: "") ?? []
    }

    /// Entries of a mapping that may only use `allowed` keys; unknown keys are errors.
    package mutating func entries(_ node: Node, what: String, allowed: [String]) -> [String: Entry]? {
        guard let list = entries(node, what: what) else { return nil }
        var result: [String: Entry] = [:]
        for entry in list {
            if allowed.contains(entry.key) {
                result[entry.key] = entry
            } else {
                // Suggestions for the first eight unknown keys: a file of thousands must not cost a
                // search each.
                unknownKeys += 1
                let suggestion = unknownKeys > 8 ? "" : closest(entry.key, in: allowed).map { " (did you mean '\($0)'?)" } ?? ""
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
            // A quoted number is text in YAML: say how to write it.
            if case .scalar(let scalar) = node, scalar.style != .plain, Int(scalar.string) != nil {
                error(node, "\(what) must be a whole number, not the text \(describe(node)) (remove the quotes)")
            } else {
                error(node, "\(what) must be a whole number, not \(describe(node))")
            }
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
            // A message quotes at most 64 bytes of a value: a huge one must not make every
            // message that names it huge (and costly to build and compare).
            let utf8 = scalar.string.utf8
            guard utf8.count > 64 else { return "'\(scalar.string)'" }
            return "'\(String(decoding: utf8.prefix(64), as: UTF8.self))...'"
        }
    }

    /// The allowed word nearest to a misspelling (edit distance at most 2), for "did you mean".
    package func closest(_ word: String, in candidates: [String]) -> String? {
        DidYouMean.closest(word, in: candidates)
    }

    /// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`, nil above `limit`:
    /// a swap counts as one, so `dprot` is one edit from `dport` and two from `proto`.
    static func editDistance(_ a: [UInt8], _ b: [UInt8], limit: Int) -> Int? {
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) <= limit ? max(a.count, b.count) : nil }
        var older = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            var rowBest = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                var value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { value = min(value, older[j - 2] + 1) }
                current[j] = value
                rowBest = min(rowBest, value)
            }
            // Every later row is at least this row's best: stop once it is over the limit.
            if rowBest > limit { return nil }
            (older, previous, current) = (previous, current, older)
        }
        return previous[b.count] <= limit ? previous[b.count] : nil
    }
}

extension YAMLReader {
    /// A reference to a network the topology does not define, with the closest defined name for
    /// the first eight (a file of thousands of such references must not cost a search each).
    package mutating func undefinedNetwork(_ name: String, at node: Node, networks: some Collection<String>) {
        undefinedNetworks += 1
        let suggestion = undefinedNetworks > 8 ? "" : closest(name, in: networks.sorted()).map { " (did you mean '\($0)'?)" } ?? ""
        error(node, "network '\(name.count > 64 ? name.prefix(64) + "..." : name)' is not defined under 'networks'\(suggestion)")
    }
}
