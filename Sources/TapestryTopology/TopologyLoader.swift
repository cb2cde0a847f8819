import Foundation
import TapestryWire
import Yams

/// Reads and validates a topology file. Every problem is collected and reported at once, each
/// with the file, line and column of the YAML node it is about; nothing is returned unless the
/// whole file is valid, so an invalid file can never be half applied.
public enum TopologyLoader {
    public static func load(path: String) -> Result<Topology, TopologyErrors> {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file"
            return .failure(TopologyErrors([Diagnostic(file: path, line: 1, column: 1, message: "\(reason)")]))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return .failure(TopologyErrors([Diagnostic(file: path, line: 1, column: 1, message: "file is not UTF-8 text")]))
        }
        return parse(yaml: text, file: path)
    }

    public static func parse(yaml: String, file: String) -> Result<Topology, TopologyErrors> {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            return .failure(TopologyErrors([syntaxDiagnostic(error, yaml: yaml, file: file)]))
        } catch {
            return .failure(TopologyErrors([Diagnostic(file: file, line: 1, column: 1, message: "\(error)")]))
        }
        guard let root else {
            return .failure(TopologyErrors([Diagnostic(file: file, line: 1, column: 1, message: "file is empty")]))
        }
        var validator = TopologyValidator(reader: YAMLReader(file: file))
        let topology = validator.topology(root)
        let diagnostics = validator.reader.diagnostics
        if let topology, diagnostics.isEmpty { return .success(topology) }
        return .failure(TopologyErrors(diagnostics))
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
                message: "duplicate key '\(key)' (first at line \(first.line), column \(first.column))")
        default:
            return Diagnostic(file: file, line: 1, column: 1, message: "YAML: \(error)")
        }
    }

    /// Finds the next `key:` after `mark` at the same column (block style) or on the same line (flow).
    static func secondOccurrence(of key: String, after mark: Mark, in yaml: String) -> (line: Int, column: Int)? {
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard mark.line >= 1, mark.line <= lines.count else { return nil }
        let sameLine = Array(lines[mark.line - 1])
        let pattern = Array(key + ":")
        var column = mark.column  // 0-based index just after the first occurrence's start
        while column + pattern.count <= sameLine.count {
            if Array(sameLine[column..<(column + pattern.count)]) == pattern,
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
            if Array(line[start..<(start + pattern.count)]) == pattern,
                line[..<start].allSatisfy({ $0 == " " || $0 == "-" })
            {
                return (index + 1, mark.column)
            }
        }
        return nil
    }
}
