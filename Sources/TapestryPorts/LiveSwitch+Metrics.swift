import TapestryDatapath

/// Prometheus text exposition (format 0.0.4) of the switch's counters, served on `metrics:`.
/// Written by hand: the format is a few lines of text, and the counters already exist in the
/// datapath, so no metrics registry sits on the per-frame path. Rendered on the control thread
/// from a snapshot the datapath thread copied.
extension SwitchSnapshot {
    func prometheusText() -> String {
        var lines: [String] = []
        func family(_ name: String, _ type: String, _ help: String) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
        }
        let ports = configuration.ports.enumerated().filter { $0.offset < counters.ports.count }
        family("tapestry_port_frames_total", "counter", "Frames received (in) and sent (out) per port.")
        for (index, port) in ports {
            lines.append("tapestry_port_frames_total{port=\"\(port.name)\",direction=\"in\"} \(counters.ports[index].framesIn)")
            lines.append("tapestry_port_frames_total{port=\"\(port.name)\",direction=\"out\"} \(counters.ports[index].framesOut)")
        }
        family("tapestry_port_bytes_total", "counter", "Bytes received (in) and sent (out) per port.")
        for (index, port) in ports {
            lines.append("tapestry_port_bytes_total{port=\"\(port.name)\",direction=\"in\"} \(counters.ports[index].bytesIn)")
            lines.append("tapestry_port_bytes_total{port=\"\(port.name)\",direction=\"out\"} \(counters.ports[index].bytesOut)")
        }
        family("tapestry_port_up", "gauge", "1 when the port's device is attached and working.")
        for (index, port) in ports {
            lines.append("tapestry_port_up{port=\"\(port.name)\"} \(index < up.count && up[index] ? 1 : 0)")
        }
        family("tapestry_drops_total", "counter", "Dropped frames by reason and port (ingress, or egress for tx-full/port-down).")
        for (index, port) in ports {
            for reason in DropReason.allCases {
                lines.append("tapestry_drops_total{port=\"\(port.name)\",reason=\"\(reason.name)\"} \(counters.ports[index].drops[reason.index])")
            }
        }
        family("tapestry_socket_refused_total", "counter", "Connections a stream socket port refused: a second VM, or a source outside its peers.")
        for (index, port) in topology.ports.enumerated() where index < refused.count {
            if case .socket(let endpoint) = port.attachment, endpoint.isStream {
                lines.append("tapestry_socket_refused_total{port=\"\(port.name)\"} \(refused[index])")
            }
        }
        // Each family's samples together, as the exposition format requires.
        let remotes = configuration.ports.enumerated().filter { $0.offset < tunnels.count && $0.element.tunnel != nil }
            .flatMap { index, port in
                port.tunnel!.remotes.enumerated().filter { $0.offset < tunnels[index].remotes.count }.map { number, address in
                    (labels: "port=\"\(port.name)\",remote=\"\(address)\"", counters: tunnels[index].remotes[number])
                }
            }
        if !remotes.isEmpty {
            family("tapestry_vxlan_remote_frames_total", "counter", "Inner frames received from (in) and sent to (out) each remote of a VXLAN port.")
            for (labels, c) in remotes {
                lines.append("tapestry_vxlan_remote_frames_total{\(labels),direction=\"in\"} \(c.framesIn)")
                lines.append("tapestry_vxlan_remote_frames_total{\(labels),direction=\"out\"} \(c.framesOut)")
            }
            family("tapestry_vxlan_remote_bytes_total", "counter", "Inner frame bytes received from (in) and sent to (out) each remote of a VXLAN port.")
            for (labels, c) in remotes {
                lines.append("tapestry_vxlan_remote_bytes_total{\(labels),direction=\"in\"} \(c.bytesIn)")
                lines.append("tapestry_vxlan_remote_bytes_total{\(labels),direction=\"out\"} \(c.bytesOut)")
            }
            family("tapestry_vxlan_remote_send_failures_total", "counter", "Copies to a remote the tunnel socket refused (buffer full, unreachable).")
            for (labels, c) in remotes { lines.append("tapestry_vxlan_remote_send_failures_total{\(labels)} \(c.sendFailures)") }
        }
        family("tapestry_mac_table_entries", "gauge", "Entries in the MAC table (live or not yet swept).")
        lines.append("tapestry_mac_table_entries \(macEntries)")
        family("tapestry_connections", "gauge", "Connections in the connection table.")
        lines.append("tapestry_connections \(counters.connections)")
        family("tapestry_connections_created_total", "counter", "Connections created.")
        lines.append("tapestry_connections_created_total \(counters.connectionsCreated)")
        family("tapestry_lb_selections_total", "counter", "New connections given to each load-balancer backend.")
        for (index, balancer) in configuration.loadBalancers.enumerated() {
            for (backendIndex, backend) in balancer.backends.enumerated() {
                let value = counters.backendSelections.isEmpty ? 0 : counters.backendSelections[index][backendIndex]
                lines.append("tapestry_lb_selections_total{balancer=\"\(balancer.name)\",backend=\"\(backend.address.withPort(backend.port))\"} \(value)")
            }
        }
        if configuration.loadBalancers.contains(where: { $0.health != nil }) {
            family("tapestry_lb_backend_up", "gauge", "1 while a health-checked backend is up, 0 while its checks find it down.")
            for (index, balancer) in configuration.loadBalancers.enumerated() where balancer.health != nil {
                for (backendIndex, backend) in balancer.backends.enumerated() {
                    lines.append("tapestry_lb_backend_up{balancer=\"\(balancer.name)\",backend=\"\(backend.address.withPort(backend.port))\"} \(health[index][backendIndex].up ? 1 : 0)")
                }
            }
        }
        if !configuration.loadBalancers.isEmpty {
            family("tapestry_lb_held_frames_total", "counter", "Frames held while their backend's MAC was unknown, by what became of them.")
            lines.append("tapestry_lb_held_frames_total{outcome=\"released\"} \(counters.heldReleased)")
            lines.append("tapestry_lb_held_frames_total{outcome=\"expired\"} \(counters.heldExpired)")
            family("tapestry_lb_held_frames", "gauge", "Frames waiting now for their backend's MAC.")
            lines.append("tapestry_lb_held_frames \(counters.heldWaiting)")
        }
        if let firewall = topology.firewall {
            family("tapestry_firewall_held_fragments_total", "counter", "Later fragments held until their first fragment came, by what became of them.")
            lines.append("tapestry_firewall_held_fragments_total{outcome=\"released\"} \(counters.fragmentsReleased)")
            lines.append("tapestry_firewall_held_fragments_total{outcome=\"dropped\"} \(counters.fragmentsHeldDropped)")
            family("tapestry_firewall_held_fragments", "gauge", "Later fragments waiting now for their first fragment.")
            lines.append("tapestry_firewall_held_fragments \(counters.fragmentsHeld)")
            family("tapestry_firewall_rule_connections_total", "counter", "New connections each firewall rule (and default) decided.")
            for (index, rule) in firewall.rules.enumerated() where index < counters.ruleDecisions.count {
                lines.append("tapestry_firewall_rule_connections_total{rule=\"\(index + 1)\",location=\"\(Self.label(rule.location))\",action=\"\(rule.action.rawValue)\"} \(counters.ruleDecisions[index])")
            }
            if let value = counters.ruleDecisions.last {
                lines.append("tapestry_firewall_rule_connections_total{rule=\"default\",location=\"\",action=\"\(firewall.defaultAction.rawValue)\"} \(value)")
            }
        }
        family("tapestry_control_pause_seconds_max", "gauge", "The longest (wall clock) the datapath thread spent on control and metrics requests in one go, reloads excepted.")
        lines.append("tapestry_control_pause_seconds_max \(Double(longestControlPause) / 1e9)")
        family("tapestry_control_work_seconds_max", "gauge", "The most CPU time the datapath thread spent on control and metrics requests in one go, reloads excepted.")
        lines.append("tapestry_control_work_seconds_max \(Double(longestControlWork) / 1e9)")
        return lines.joined(separator: "\n") + "\n"
    }

    /// A label value as the exposition format escapes it (backslash, double quote, newline).
    static func label(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
