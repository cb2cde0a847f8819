import ArgumentParser
import TapestryTopology

extension Tapestry {
    struct Schema: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the JSON Schema of a topology file, for editors.",
            discussion: """
                A JSON Schema (draft-07) with a description for every key: save it and point your editor at \
                it, for example with a first line `# yaml-language-server: $schema=/path/to/topology.schema.json` \
                (VS Code's YAML extension, Neovim and Helix use yaml-language-server). It checks keys, types, \
                ranges and shapes as you type; `tapestry check` also checks what a schema cannot: that names \
                are defined, that VLANs, devices and backends are not used twice, and address families.
                """
        )

        func run() {
            print(TopologySchema.json)
        }
    }
}
