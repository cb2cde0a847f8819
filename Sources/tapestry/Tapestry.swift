import ArgumentParser

@main
struct Tapestry: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tapestry",
        abstract: "A userspace virtual switch and stateful firewall for Linux.",
        discussion: """
            Networks are declared in YAML topology files. `check` validates one; `replay` runs one offline \
            against pcap captures, deterministically, and writes what leaves every port.
            """,
        version: Tapestry.version,
        subcommands: [Check.self, Replay.self, Run.self, Trace.self, Test.self, Decode.self, Ctl.self, Demo.self, Graph.self, Schema.self, Completions.self, Version.self]
    )

    /// The release and the commit it was built from (`BuildInfo`, stamped at build time).
    static let version = "0.1.0 (commit \(BuildInfo.commit))"

    struct Version: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the version and the commit it was built from.")
        func run() { print(Tapestry.version) }
    }
}
