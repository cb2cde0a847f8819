import ArgumentParser
import Foundation
import TapestryPacketTest

extension Tapestry {
    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run packet tests: frames described in text, what must come out of each port.",
            discussion: """
                Runs test files and folders (every *.test.yaml below a folder, in path order). Prints PASS \
                FILE::NAME or FAIL FILE::NAME: FIRST PROBLEM with each port's actual frames, then 'N passed, \
                M failed'. An invalid test file is reported as FILE:LINE:COLUMN: error: MESSAGE and counts as \
                failed; the other files still run. Exit 0 when every test passed, else 1 (also when no test \
                ran: a filter or folder that matched nothing).
                """
        )

        @Argument(help: "Test files (*.test.yaml) and folders.", completion: .file(extensions: ["yaml", "yml"]))
        var paths: [String]

        @Option(help: ArgumentHelp("Also write the results as JUnit XML to this file.", valueName: "FILE"), completion: .file(extensions: ["xml"]))
        var junit: String?

        @Flag(help: "Print the results as JSON instead of text.")
        var json = false

        @Option(help: ArgumentHelp("Run only tests whose name contains this text.", valueName: "TEXT"))
        var filter: String?

        func run() throws {
            var files: [String] = []
            for path in paths {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                    printError("tapestry test: \(path): no such file or folder")
                    throw ExitCode(1)
                }
                if isDirectory.boolValue {
                    let found = (FileManager.default.enumerator(atPath: path)?.compactMap { $0 as? String } ?? [])
                        .filter { $0.hasSuffix(".test.yaml") }.sorted()
                    files += found.map { (path as NSString).appendingPathComponent($0) }
                } else {
                    files.append(path)
                }
            }
            let report = PacketTestReport.run(files: files, filter: filter)
            print(json ? report.json : report.text)
            if let junit {
                do { try report.writeJUnit(to: junit) } catch {
                    printError("tapestry test: cannot write \(junit): \(error)")
                    throw ExitCode(1)
                }
            }
            if report.failed > 0 || report.ran == 0 { throw ExitCode(1) }
        }
    }
}
