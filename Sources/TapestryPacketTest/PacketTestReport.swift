import Foundation
import TapestryTopology

/// The results of a `tapestry test` run: per file, its tests' results or the file's problems.
public struct PacketTestReport: Sendable {
    public struct FileResult: Sendable {
        public var path: String
        /// The file's problems (it ran no test); empty when it loaded.
        public var errors: [Diagnostic]
        public var results: [PacketTestRunner.Result]
    }

    public var files: [FileResult]

    public var passed: Int { files.reduce(0) { $0 + $1.results.filter(\.passed).count } }
    /// Failed tests, and each invalid file once.
    public var failed: Int { files.reduce(0) { $0 + $1.results.filter { !$0.passed }.count + ($1.errors.isEmpty ? 0 : 1) } }

    /// Tests run, passed or failed (a run of none fails: a filter or a folder that matched nothing).
    public var ran: Int { files.reduce(0) { $0 + $1.results.count } }

    public static func run(files paths: [String], filter: String? = nil) -> PacketTestReport {
        let filter = filter?.isEmpty == true ? nil : filter
        return PacketTestReport(files: paths.map { path in
            switch PacketTestFile.load(path: path) {
            case .success(let file): return FileResult(path: path, errors: [], results: PacketTestRunner.run(file, filter: filter))
            case .failure(let errors): return FileResult(path: path, errors: errors.diagnostics, results: [])
            }
        })
    }

    public var text: String {
        var lines: [String] = []
        for file in files {
            lines += file.errors.map(\.description)
            for result in file.results {
                if let problem = result.problem {
                    lines.append("FAIL \(Self.printable(result.file))::\(Self.printable(result.name)): \(problem)")
                    lines += result.detail.map { "    " + $0 }
                } else {
                    lines.append("PASS \(Self.printable(result.file))::\(Self.printable(result.name))")
                }
            }
        }
        lines.append("\(passed) passed, \(failed) failed")
        if ran == 0 && files.allSatisfy(\.errors.isEmpty) { lines.append("no test ran") }
        return lines.joined(separator: "\n")
    }

    /// A name as a terminal shows it harmlessly: control characters (escape sequences) as '?'.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) ? "?" : $0 }))
    }

    public var json: String {
        let object: [String: Any] = [
            "passed": passed, "failed": failed,
            "files": files.map { file -> [String: Any] in
                [
                    "path": file.path,
                    "errors": file.errors.map { ["line": $0.line, "column": $0.column, "message": $0.message] as [String: Any] },
                    "tests": file.results.map { result -> [String: Any] in
                        var test: [String: Any] = ["name": result.name, "passed": result.passed]
                        if let problem = result.problem { test["problem"] = problem; test["detail"] = result.detail }
                        return test
                    },
                ]
            },
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// JUnit XML: a testsuite per file, a testcase per test, a failure with the detail; an invalid
    /// file is one failed testcase named after it. Written to a temporary name, then renamed.
    public func writeJUnit(to path: String) throws {
        func escape(_ text: String) -> String {
            var out = ""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&quot;"
                case "\n", "\t": out.unicodeScalars.append(scalar)
                default:
                    // XML 1.0 has no other control characters.
                    if scalar.value < 0x20 || (0xD800...0xDFFF).contains(scalar.value) || scalar.value == 0xFFFE || scalar.value == 0xFFFF {
                        out += "?"
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                }
            }
            return out
        }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"\(passed + failed)\" failures=\"\(failed)\">\n"
        for file in files {
            let failures = file.results.filter { !$0.passed }.count + (file.errors.isEmpty ? 0 : 1)
            let count = file.results.count + (file.errors.isEmpty ? 0 : 1)
            xml += "  <testsuite name=\"\(escape(file.path))\" tests=\"\(count)\" failures=\"\(failures)\">\n"
            if !file.errors.isEmpty {
                let message = file.errors.map(\.description).joined(separator: "\n")
                xml += "    <testcase classname=\"\(escape(file.path))\" name=\"(the file)\"><failure message=\"invalid test file\">\(escape(message))</failure></testcase>\n"
            }
            for result in file.results {
                xml += "    <testcase classname=\"\(escape(file.path))\" name=\"\(escape(result.name))\""
                if let problem = result.problem {
                    xml += "><failure message=\"\(escape(problem))\">\(escape(result.detail.joined(separator: "\n")))</failure></testcase>\n"
                } else {
                    xml += "/>\n"
                }
            }
            xml += "  </testsuite>\n"
        }
        xml += "</testsuites>\n"
        let temporary = "\(path).tmp-\(getpid())"
        try Data(xml.utf8).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: reason])
        }
    }
}
