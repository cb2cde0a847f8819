import Foundation
import PackagePlugin

/// Writes `BuildInfo.swift` (the commit the binary is built from) before each build of the
/// `tapestry` executable, through `scripts/build-info.sh`. A prebuild command, so it runs every
/// build and the stamp follows the checkout; outside a git checkout the commit is "unknown".
@main
struct BuildInfo: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "BuildInfo")
        let script = context.package.directoryURL.appending(path: "scripts/build-info.sh")
        return [
            .prebuildCommand(
                displayName: "Stamping the build with its commit",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [script.path, context.package.directoryURL.path, output.path],
                outputFilesDirectory: output)
        ]
    }
}
