import TapestryDatapath

/// Prometheus text exposition (format 0.0.4) of the switch's counters, served on `metrics:`.
/// Written by hand: the format is a few lines of text, and the counters already exist in the
/// datapath, so no metrics registry sits on the per-frame path.
extension LiveSwitch {
    func prometheusText() -> String {
        let counters = datapath.counters
        let configuration = datapath.configuration
        var lines: [String] = []
        func family(_ name: String, _ type: String, _ help: String) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
        }
        family("tapestry_port_frames_total", "counter", "Frames received (in) and sent (out) per port.")
        for (index, port) in configuration.ports.enumerated() {
            lines.append("tapestry_port_frames_total{port=\"\(port.name)\",direction=\"in\"} \(counters.ports[index].framesIn)")
            lines.append("tapestry_port_frames_total{port=\"\(port.name)\",direction=\"out\"} \(counters.ports[index].framesOut)")
        }
        family("tapestry_port_bytes_total", "counter", "Bytes received (in) and sent (out) per port.")
        for (index, port) in configuration.ports.enumerated() {
            lines.append("tapestry_port_bytes_total{port=\"\(port.name)\",direction=\"in\"} \(counters.ports[index].bytesIn)")
            lines.append("tapestry_port_bytes_total{port=\"\(port.name)\",direction=\"out\"} \(counters.ports[index].bytesOut)")
        }
        family("tapestry_port_up", "gauge", "1 when the port's device is attached and working.")
        for (index, port) in configuration.ports.enumerated() {
            lines.append("tapestry_port_up{port=\"\(port.name)\"} \(isUp(PortID(index)) ? 1 : 0)")
        }
        family("tapestry_drops_total", "counter", "Dropped frames by reason and port (ingress, or egress for tx-full/port-down).")
        for (index, port) in configuration.ports.enumerated() {
            for reason in DropReason.allCases {
                lines.append("tapestry_drops_total{port=\"\(port.name)\",reason=\"\(reason.name)\"} \(counters.ports[index].drops[reason.index])")
            }
        }
        family("tapestry_mac_table_entries", "gauge", "Entries in the MAC table (live or not yet swept).")
        lines.append("tapestry_mac_table_entries \(datapath.macTable.count)")
        family("tapestry_connections", "gauge", "Connections in the connection table.")
        lines.append("tapestry_connections \(counters.connections)")
        family("tapestry_connections_created_total", "counter", "Connections created.")
        lines.append("tapestry_connections_created_total \(counters.connectionsCreated)")
        family("tapestry_lb_selections_total", "counter", "New connections given to each load-balancer backend.")
        for (index, balancer) in configuration.loadBalancers.enumerated() {
            for (backendIndex, backend) in balancer.backends.enumerated() {
                let value = counters.backendSelections.isEmpty ? 0 : counters.backendSelections[index][backendIndex]
                lines.append("tapestry_lb_selections_total{balancer=\"\(balancer.name)\",backend=\"\(backend.address):\(backend.port)\"} \(value)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func prometheusResponse() -> String {
        let body = prometheusText()
        return "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
    }
}
