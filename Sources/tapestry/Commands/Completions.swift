import ArgumentParser
import Foundation
import TapestryTopology

/// What the shells complete for `tapestry`'s arguments (bash, zsh and fish scripts come from
/// ArgumentParser; these say what each argument takes).
enum Complete {
    static let topology = CompletionKind.file(extensions: ["yaml", "yml"])
    static let capture = CompletionKind.file(extensions: ["pcap", "pcapng", "cap"])
    static let controlCommands = ["show", "stats", "rules", "fdb", "conntrack", "lb", "reload", "trace"]

    /// `--in PORT=FILE`: the topology's port names with `=` first, then capture files after it.
    static let portCapture = CompletionKind.custom { words, _, prefix in
        if let equals = prefix.firstIndex(of: "=") {
            let port = prefix[...equals]
            return captures(matching: String(prefix[prefix.index(after: equals)...])).map { port + $0 }
        }
        guard let file = words.first(where: { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }),
            case .success(let topology) = TopologyLoader.load(path: file)
        else { return [] }
        return topology.ports.map { "\($0.name)=" }.filter { $0.hasPrefix(prefix) }
    }

    /// `ctl COMMAND ...`: what each command takes next.
    static let controlArguments = CompletionKind.custom { words, _, prefix in
        let command = words.first { controlCommands.contains($0) }
        let choices: [String]
        switch command {
        case "fdb": choices = ["flush", "network="]
        case "conntrack":
            choices = ["flush", "proto=tcp", "proto=udp", "proto=icmp", "proto=icmpv6", "host=", "port=", "state=", "network="]
        case "lb": choices = ["drain", "undrain"]
        default: choices = []
        }
        return choices.filter { $0.hasPrefix(prefix) }
    }

    private static func captures(matching partial: String) -> [String] {
        let directory = partial.contains("/") ? String(partial[...partial.lastIndex(of: "/")!]) : ""
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory)) ?? []
        return names.sorted().compactMap { name -> String? in
            let path = directory + name
            guard path.hasPrefix(partial), !name.hasPrefix(".") || partial.hasSuffix("/.") else { return nil }
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            if isDirectory.boolValue { return path + "/" }
            return [".pcap", ".pcapng", ".cap"].contains { name.hasSuffix($0) } ? path : nil
        }
    }
}

extension Tapestry {
    struct Completions: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a shell completion script (bash, zsh or fish).",
            discussion: """
                Completes commands, options, topology files (*.yaml), captures (*.pcap, *.pcapng), the ports \
                of the topology on the line for --in PORT=FILE, and ctl's commands and filters. Install it, \
                for example: tapestry completions bash > /etc/bash_completion.d/tapestry; \
                tapestry completions zsh > /usr/local/share/zsh/site-functions/_tapestry; \
                tapestry completions fish > ~/.config/fish/completions/tapestry.fish. \
                scripts/install.sh installs all three.
                """
        )

        @Argument(help: "bash, zsh or fish.", completion: .list(["bash", "zsh", "fish"]))
        var shell: String

        func validate() throws {
            guard CompletionShell(rawValue: shell) != nil else {
                throw ValidationError("unknown shell '\(shell)'; give bash, zsh or fish")
            }
        }

        func run() throws {
            print(Tapestry.completionScript(for: CompletionShell(rawValue: shell)!))
        }
    }
}
