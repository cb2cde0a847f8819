import Foundation
import TapestryWire
import Yams

/// Reads and validates a topology file. Every problem is collected and reported at once, each
/// with the file, line and column of the YAML node it is about; nothing is returned unless the
/// whole file is valid, so an invalid file can never be half applied.
public enum TopologyLoader {
    /// The largest topology or test file read: far beyond any written by hand, and a bound for a
    /// test file that names `/dev/zero` or a huge file as its topology.
    public static let maxFileBytes = 16 << 20

    /// The bytes of a regular file of at most `maxFileBytes`, or why not.
    package static func readBounded(path: String) -> Result<Data, Diagnostic> {
        func problem(_ message: String) -> Result<Data, Diagnostic> {
            .failure(Diagnostic(file: path, line: 1, column: 1, message: message))
        }
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
            return problem(FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        guard attributes[.type] as? FileAttributeType == .typeRegular else { return problem("is not a regular file") }
        let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        guard size <= maxFileBytes else { return problem("is \(size) bytes; at most \(maxFileBytes) are read") }
        // Read at most one byte past the bound: /proc files say size 0 and never end.
        guard let handle = FileHandle(forReadingAtPath: path) else { return problem("cannot be read") }
        defer { try? handle.close() }
        var data = Data()
        while data.count <= maxFileBytes {
            let chunk: Data?
            do { chunk = try handle.read(upToCount: 1 << 20) } catch { return problem("cannot be read") }
            guard let chunk, !chunk.isEmpty else { break }  // nil or empty: the end of the file
            data.append(chunk)
        }
        guard data.count <= maxFileBytes else { return problem("is more than \(maxFileBytes) bytes; at most that many are read") }
        return .success(data)
    }

    public static func load(path: String) -> Result<Topology, TopologyErrors> {
        let data: Data
        switch readBounded(path: path) {
        case .success(let bytes): data = bytes
        case .failure(let diagnostic): return .failure(TopologyErrors([diagnostic]))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return .failure(TopologyErrors([Diagnostic(file: path, line: 1, column: 1, message: "file is not UTF-8 text")]))
        }
        return parse(yaml: text, file: path)
    }

    public static func parse(yaml: String, file: String) -> Result<Topology, TopologyErrors> {
        let (root, composeDiagnostics) = compose(yaml: yaml, file: file)
        guard let root else { return .failure(TopologyErrors(composeDiagnostics)) }
        var diagnostics = composeDiagnostics
        var validator = TopologyValidator(reader: YAMLReader(file: file))
        let topology = validator.topology(root)
        diagnostics += validator.reader.diagnostics
        if let topology, diagnostics.isEmpty { return .success(topology) }
        return .failure(TopologyErrors(diagnostics))
    }

    /// A topology written inline in another file (a test file's `topology:` mapping), validated
    /// as a topology file is, with positions in that file.
    package static func topology(from node: Node, file: String) -> Result<Topology, TopologyErrors> {
        var validator = TopologyValidator(reader: YAMLReader(file: file))
        let topology = validator.topology(node)
        if let topology, validator.reader.diagnostics.isEmpty { return .success(topology) }
        return .failure(TopologyErrors(validator.reader.diagnostics))
    }

    /// Untrusted YAML text composed into a tree, within YAMLBudget's bounds, with every duplicated
    /// key reported and hidden from Yams (each second occurrence's key starts with a marker
    /// `YAMLReader` skips), so a validator can still report every other problem. Nil root: the
    /// diagnostics say why (also "file is empty"). Test files use it as topologies do.
    package static func compose(yaml: String, file: String) -> (root: Node?, diagnostics: [Diagnostic]) {
        // Before Yams sees it: aliases used as keys or repeating too much make compose and the
        // validator take exponential time (YAMLBudget says why).
        let findings = YAMLBudget.check(yaml, file: file)
        if let problem = findings.problem { return (nil, [problem]) }
        var text = yaml
        var diagnostics: [Diagnostic] = []
        var root: Node? = nil
        // Yams stops at the first duplicated key. To still report every problem at once, every
        // duplicate the budget pass found is reported and overwritten in place with a marker of
        // the same length (so every position stays put) that the validator skips; then Yams
        // composes the file once.
        let duplicates = findings.duplicates.prefix(YAMLBudget.duplicateLimit)
        diagnostics = duplicates.map { duplicate in
            let key = duplicate.key
            return Diagnostic(
                file: file, line: duplicate.second.line, column: duplicate.second.column,
                message: "duplicate key '\(key.count > 64 ? key.prefix(64) + "..." : key)' (first at line \(duplicate.first.line), column \(duplicate.first.column))")
        }
        if findings.duplicates.count > YAMLBudget.duplicateLimit {
            diagnostics.append(
                Diagnostic(
                    file: file, line: diagnostics.last?.line ?? 1, column: diagnostics.last?.column ?? 1,
                    message: "more than \(YAMLBudget.duplicateLimit) duplicate keys; the rest are not listed"))
            return (nil, diagnostics)
        }
        guard let patched = overwrite(duplicates: Array(duplicates), in: text) else {
            return (nil, diagnostics)
        }
        text = patched
        // A duplicate the budget pass did not see as one (Yams compares tagged nodes) is
        // reported and overwritten the old way, one compose per duplicate.
        for attempt in duplicates.count..<YAMLBudget.duplicateLimit {
            do {
                root = try Yams.compose(yaml: text, .basic)
                break
            } catch let error as YamlError {
                diagnostics.append(syntaxDiagnostic(error, yaml: text, file: file))
                guard case .duplicatedKeysInMapping(let keys, let context) = error,
                    let key = keys.first,
                    let second = secondOccurrence(of: key, after: context.mark, in: text),
                    let patched = overwrite(key: key, at: second, in: text, marker: attempt)
                else {
                    return (nil, diagnostics)
                }
                text = patched
            } catch {
                diagnostics.append(Diagnostic(file: file, line: 1, column: 1, message: "\(error)"))
                return (nil, diagnostics)
            }
        }
        guard let root else {
            if diagnostics.isEmpty {
                diagnostics.append(Diagnostic(file: file, line: 1, column: 1, message: "file is empty"))
            }
            return (nil, diagnostics)
        }
        return (root, diagnostics)
    }

    /// Overwrites the character at each duplicate's `patchColumn` with a private-use scalar of
    /// its own (the duplicate's index), keeping every position. Lines and columns are counted as
    /// libyaml counts them (breaks: LF, CR, CR LF, U+0085, U+2028, U+2029; a column per scalar).
    /// Nil when a position does not hold the key's first character.
    static func overwrite(duplicates: [YAMLBudget.Duplicate], in text: String) -> String? {
        guard !duplicates.isEmpty else { return text }
        var targets: [Int: [(column: Int, expected: Unicode.Scalar, marker: Unicode.Scalar)]] = [:]
        for (index, duplicate) in duplicates.enumerated() {
            guard let column = duplicate.patchColumn, let first = duplicate.key.unicodeScalars.first,
                let marker = Unicode.Scalar(0xE000 + UInt32(index))
            else { return nil }
            targets[duplicate.second.line, default: []].append((column, first, marker))
        }
        var out = String.UnicodeScalarView()
        var line = 1
        var column = 1
        var patched = 0
        var previousWasCR = false
        for (offset, scalar) in text.unicodeScalars.enumerated() {
            if offset == 0 && scalar.value == 0xFEFF {  // libyaml drops a byte-order mark uncounted
                out.append(scalar)
                continue
            }
            if scalar == "\n" && previousWasCR {  // the LF of a CR LF: the break was counted at the CR
                out.append(scalar)
                previousWasCR = false
                continue
            }
            previousWasCR = scalar == "\r"
            if scalar == "\n" || scalar == "\r" || scalar.value == 0x85 || scalar.value == 0x2028 || scalar.value == 0x2029 {
                out.append(scalar)
                line += 1
                column = 1
                continue
            }
            if let target = targets[line]?.first(where: { $0.column == column }) {
                guard scalar == target.expected else { return nil }
                out.append(target.marker)
                patched += 1
            } else {
                out.append(scalar)
            }
            column += 1
        }
        return patched == duplicates.count ? String(out) : nil
    }

    /// Replaces the first character of `key` at (line, column) with a private-use scalar unique to
    /// this `marker`, keeping every other character and so every position.
    static func overwrite(key: String, at position: (line: Int, column: Int), in text: String, marker: Int) -> String? {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0.unicodeScalars) }
        guard position.line >= 1, position.line <= lines.count else { return nil }
        let index = position.column - 1
        guard index >= 0, index < lines[position.line - 1].count,
            let replacement = Unicode.Scalar(0xE000 + UInt32(marker))
        else { return nil }
        lines[position.line - 1][index] = replacement
        return lines.map { String(String.UnicodeScalarView($0)) }.joined(separator: "\n")
    }

    /// Turns a libyaml error into a diagnostic at its position. For a duplicated key Yams reports the
    /// first occurrence; the diagnostic points at the second, which is the one to delete or rename.
    static func syntaxDiagnostic(_ error: YamlError, yaml: String, file: String) -> Diagnostic {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return Diagnostic(file: file, line: mark.line, column: mark.column, message: "YAML syntax: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let key = duplicates.first ?? ""
            let first = context.mark
            let second = secondOccurrence(of: key, after: first, in: yaml) ?? (first.line, first.column)
            return Diagnostic(
                file: file, line: second.line, column: second.column,
                message: "duplicate key '\(key.count > 64 ? key.prefix(64) + "..." : key)' (first at line \(first.line), column \(first.column))")
        default:
            return Diagnostic(file: file, line: 1, column: 1, message: "YAML: \(error)")
        }
    }

    /// Finds the next `key:` after `mark` at the same column (block style) or on the same line (flow).
    static func secondOccurrence(of key: String, after mark: Mark, in yaml: String) -> (line: Int, column: Int)? {
        // The search compares the key at every column: with a long key on a long line that is
        // quadratic (a 200 KB line with an explicit 100,000-character key took minutes). No
        // topology key is that long (names have at most 32 characters), so such a duplicate is
        // reported at its first occurrence instead.
        guard key.utf8.count <= 256 else { return nil }
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard mark.line >= 1, mark.line <= lines.count else { return nil }
        let sameLine = Array(lines[mark.line - 1])
        let pattern = Array(key + ":")
        var column = mark.column  // 0-based index just after the first occurrence's start
        while column + pattern.count <= sameLine.count {
            if sameLine[column..<(column + pattern.count)].elementsEqual(pattern),
                column == 0 || " {,".contains(sameLine[column - 1])
            {
                return (mark.line, column + 1)
            }
            column += 1
        }
        for index in mark.line..<lines.count {
            let line = Array(lines[index])
            let start = mark.column - 1
            guard start + pattern.count <= line.count else { continue }
            if line[start..<(start + pattern.count)].elementsEqual(pattern),
                line[..<start].allSatisfy({ $0 == " " || $0 == "-" })
            {
                return (index + 1, mark.column)
            }
        }
        return nil
    }
}
