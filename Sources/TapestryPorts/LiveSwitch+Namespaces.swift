import Foundation
import TapestryProcess
import TapestryTopology

extension LiveSwitch {
    /// Creates the namespaces TAP ports name that do not exist yet (`ip netns add`), so a
    /// topology runs on a fresh machine and after a reboot; only these are removed at stop (a
    /// namespace that was there is someone else's). A `vxlan:` port's namespace is not made: it
    /// must already hold the underlay address.
    func createMissingNamespaces(for ports: [Topology.Port]) throws(PortError) {
        for port in ports {
            guard case .tap = port.attachment, let netns = port.netns, !createdNamespaces.contains(netns),
                !FileManager.default.fileExists(atPath: "/run/netns/\(netns)")
            else { continue }
            let result = ChildProcess.run(ChildProcess.ip, ["netns", "add", netns], timeout: 30)
            guard result.status == 0 else {
                throw PortError(
                    port: port.name, operation: "create netns '\(netns)' (ip netns add)",
                    detail: result.output.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            createdNamespaces.append(netns)
            log("created namespace '\(netns)' for port '\(port.name)'; it is removed when the switch stops")
        }
    }

    /// Removes the namespaces this switch created (from number `since` on: those of a reload
    /// that was refused), after their ports are closed.
    func removeCreatedNamespaces(since: Int = 0) {
        guard since < createdNamespaces.count else { return }
        for netns in createdNamespaces[since...] {
            let result = ChildProcess.run(ChildProcess.ip, ["netns", "del", netns], timeout: 30)
            if result.status != 0 {
                log("could not remove namespace '\(netns)': \(result.output.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
        }
        createdNamespaces.removeSubrange(since...)
    }
}
