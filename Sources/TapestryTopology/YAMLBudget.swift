// libyaml, as vendored and compiled by Yams (its CYaml target). Yams does not export it, but a
// package sees the C modules of its dependencies; the event parser is the same code, so positions
// and syntax errors agree with what Yams reports afterwards.
import CYaml

/// Bounds the work a topology file can cause before Yams composes it.
///
/// An alias is cheap to write and expensive to use: `Yams.compose` checks every mapping for
/// duplicate keys by hashing the keys, and hashing an alias hashes everything it stands for, so
/// thirteen lines whose keys are aliases of aliases take exponential time ("billion laughs").
/// The validator walks what aliases expand to as well. This pass reads the file once with
/// libyaml's event parser (linear time, no tree) and refuses, with the position:
/// - a mapping key that is not a plain scalar (an alias, a list or a mapping): topology keys are
///   names, and only such keys make the duplicate check costly;
/// - aliases that together repeat more than `aliasBudget` nodes.
/// A file without aliases is never refused here, whatever its size.
///
/// The same pass finds every duplicated key (Yams stops at the first), so the loader reports
/// them all and composes the file once, not once per duplicate.
enum YAMLBudget {
    /// A key written twice in one mapping: where it is first and where again (1-based), and the
    /// column of the character the loader overwrites to hide the second one from Yams (nil when
    /// it has none to overwrite: an empty quoted key).
    struct Duplicate: Equatable {
        var key: String
        var first: (line: Int, column: Int)
        var second: (line: Int, column: Int)
        var patchColumn: Int?

        static func == (a: Duplicate, b: Duplicate) -> Bool {
            a.key == b.key && a.first == b.first && a.second == b.second && a.patchColumn == b.patchColumn
        }
    }

    struct Findings {
        /// The first problem that stops the file here (nil: within bounds, or libyaml cannot
        /// parse it and Yams reports the syntax error).
        var problem: Diagnostic?
        /// Duplicated keys, in file order; at most `duplicateLimit + 1` are kept.
        var duplicates: [Duplicate] = []
    }

    /// Duplicates reported one by one; past this the file is refused with a count.
    static let duplicateLimit = 64
    /// Nodes that aliases may add in all. A topology rarely uses aliases at all; 100,000 repeated
    /// nodes is far beyond a hand-written file (a port is about ten) and takes the validator
    /// well under a second.
    static let aliasBudget = 100_000

    /// The first problem and the duplicated keys (see `Findings`).
    static func check(_ text: String, file: String) -> Findings {
        var utf8 = Array(text.utf8)
        if utf8.isEmpty { return Findings() }
        return utf8.withUnsafeMutableBufferPointer { buffer -> Findings in
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) == 1 else { return Findings() }
            defer { yaml_parser_delete(&parser) }
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var walk = Walk(file: file)
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { return Findings(duplicates: walk.duplicates) }
                defer { yaml_event_delete(&event) }
                if event.type == YAML_STREAM_END_EVENT { return Findings(duplicates: walk.duplicates) }
                if let problem = walk.step(event) { return Findings(problem: problem) }
            }
        }
    }

    /// The state of one pass: open collections and the expanded size of every anchored node.
    struct Walk {
        let file: String
        struct Open {
            var isMapping: Bool
            /// Nodes in it so far (keys and values), to tell a key from a value.
            var items = 0
            /// Nodes it expands to, counting what its aliases stand for (saturates past the budget).
            var size = 1
            var anchor: String?
            /// A mapping's keys so far, with where each was first written (libyaml's 0-based mark).
            var keys: [String: yaml_mark_t] = [:]
        }
        var open: [Open] = []
        var duplicates: [Duplicate] = []
        var anchors: [String: Int] = [:]
        var repeated = 0

        init(file: String) { self.file = file }

        func diagnostic(_ mark: yaml_mark_t, _ message: String) -> Diagnostic {
            // libyaml counts from 0; Yams and editors from 1.
            Diagnostic(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1, message: message)
        }

        var atKey: Bool { open.last.map { $0.isMapping && $0.items % 2 == 0 } ?? false }

        mutating func step(_ event: yaml_event_t) -> Diagnostic? {
            switch event.type {
            case YAML_DOCUMENT_START_EVENT:
                anchors = [:]  // anchors are per document
            case YAML_SCALAR_EVENT:
                if atKey, let problem = noteKey(event) { return problem }
                finish(size: 1, anchor: Self.name(event.data.scalar.anchor))
            case YAML_ALIAS_EVENT:
                let name = Self.name(event.data.alias.anchor) ?? ""
                if atKey {
                    return diagnostic(event.start_mark, "a mapping key must be a plain name, not the alias '*\(name)'")
                }
                // An undefined alias is Yams's error to report, at the same place.
                let size = anchors[name] ?? 1
                repeated = min(repeated + size, YAMLBudget.aliasBudget + 1)
                if repeated > YAMLBudget.aliasBudget {
                    return diagnostic(
                        event.start_mark,
                        "aliases repeat more than \(YAMLBudget.aliasBudget) nodes ('*\(name)' stands for \(size >= YAMLBudget.aliasBudget ? "at least \(YAMLBudget.aliasBudget)" : "\(size)")); aliases of aliases grow exponentially")
                }
                finish(size: size, anchor: nil)
            case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                let isMapping = event.type == YAML_MAPPING_START_EVENT
                if atKey {
                    return diagnostic(event.start_mark, "a mapping key must be a plain name, not a \(isMapping ? "mapping" : "list")")
                }
                let anchor = isMapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor
                open.append(Open(isMapping: isMapping, anchor: Self.name(anchor)))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let closed = open.popLast() else { return nil }
                finish(size: closed.size, anchor: closed.anchor)
            default:
                break
            }
            return nil
        }

        /// A scalar key of the innermost mapping: remembered, or a duplicate.
        /// A scalar key of the innermost mapping: remembered, or a duplicate. A key starting with
        /// a character of the loader's marker range is refused (the marker must be unambiguous).
        mutating func noteKey(_ event: yaml_event_t) -> Diagnostic? {
            let scalar = event.data.scalar
            let key = scalar.value.map {
                String(decoding: UnsafeBufferPointer(start: $0, count: scalar.length), as: UTF8.self)
            } ?? ""
            let mark = event.start_mark
            if let initial = key.unicodeScalars.first, YAMLReader.isDuplicateMarker(initial) {
                return diagnostic(
                    mark, "a mapping key may not start with U+\(String(initial.value, radix: 16, uppercase: true)) (a private-use character)")
            }
            guard let first = open[open.count - 1].keys[key] else {
                open[open.count - 1].keys[key] = mark
                return nil
            }
            guard duplicates.count <= YAMLBudget.duplicateLimit else { return nil }
            // The loader hides the second occurrence from Yams by overwriting its first character:
            // possible for a plain key, or a quoted one whose value does not start with an escape,
            // written without an anchor or tag before it (libyaml's mark is at the `&` or `!`).
            let quoted = scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE || scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE
            let plain = scalar.style == YAML_PLAIN_SCALAR_STYLE
            let decorated = scalar.anchor != nil || (scalar.tag != nil && scalar.plain_implicit == 0 && scalar.quoted_implicit == 0)
            let escaped = key.unicodeScalars.first.map { $0 == "'" || $0 == "\"" || $0 == "\\" } ?? true
            let patchable = (plain || (quoted && !escaped)) && !decorated && !key.isEmpty
            duplicates.append(
                Duplicate(
                    key: key, first: (Int(first.line) + 1, Int(first.column) + 1), second: (Int(mark.line) + 1, Int(mark.column) + 1),
                    patchColumn: patchable ? Int(mark.column) + 1 + (quoted ? 1 : 0) : nil))
            return nil
        }

        /// A node of `size` expanded nodes ended: remember it under its anchor, add it to its parent.
        mutating func finish(size: Int, anchor: String?) {
            if let anchor { anchors[anchor] = size }
            guard !open.isEmpty else { return }
            open[open.count - 1].items += 1
            open[open.count - 1].size = min(open[open.count - 1].size + size, YAMLBudget.aliasBudget + 1)
        }

        static func name(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            guard let pointer else { return nil }
            return String(cString: pointer)
        }
    }
}
