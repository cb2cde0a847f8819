import Foundation

/// Writes a line to standard error (diagnostics go there; results go to standard output).
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
