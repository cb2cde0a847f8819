/// A topology as a picture (`tapestry graph`): networks, the ports on them (how attached, access
/// or trunk, namespace, VXLAN remotes), load balancers and the firewall, as Graphviz DOT or
/// Mermaid text. Pure: the same topology gives the same text, byte for byte.
public struct TopologyGraph: Sendable {
    /// One box of the picture.
    struct Node: Sendable {
        var id: String
        var lines: [String]
        var kind: Kind
    }
    enum Kind: Sendable { case network, port, loadBalancer, firewall }

    /// One line between two boxes; `label` says how a port reaches a network.
    struct Edge: Sendable {
        var from: String
        var to: String
        var label: String
        var dashed = false
    }

    let title: String
    let nodes: [Node]
    let edges: [Edge]

    public init(_ topology: Topology) {
        title = topology.name
        var nodes: [Node] = []
        var edges: [Edge] = []
        // Identifiers from positions, not names: names are safe here, but DOT and Mermaid
        // reserve some words (`graph`, `end`, `subgraph`), which a network may well be called.
        var networkID: [String: String] = [:]
        let tunnels = topology.ports.contains { if case .vxlan = $0.attachment { true } else { false } }
        for (index, network) in topology.networks.enumerated() {
            let id = "n\(index)"
            networkID[network.name] = id
            nodes.append(Node(id: id, lines: [network.name, "VLAN \(network.vlan)" + (tunnels ? ", VNI \(network.vni)" : "")], kind: .network))
        }
        for (index, port) in topology.ports.enumerated() {
            let id = "p\(index)"
            var lines = [port.name, Self.attachment(port.attachment)]
            if let netns = port.netns { lines.append("netns \(netns)") }
            if case .vxlan(let tunnel) = port.attachment {
                lines.append("to " + tunnel.remotes.map { "\($0)" }.joined(separator: ", "))
            }
            nodes.append(Node(id: id, lines: lines, kind: .port))
            switch port.mode {
            case .access(let network):
                if let to = networkID[network] { edges.append(Edge(from: id, to: to, label: "access")) }
            case .trunk(let networks, let native):
                for network in networks {
                    guard let to = networkID[network] else { continue }
                    edges.append(Edge(from: id, to: to, label: network == native ? "native" : "tagged"))
                }
            }
        }
        for (index, balancer) in topology.loadBalancers.enumerated() {
            let id = "lb\(index)"
            let backends = balancer.backends.map { $0.address.withPort($0.port) }
            let shown = backends.count > 4 ? backends.prefix(3) + ["and \(backends.count - 3) more"] : backends[...]
            nodes.append(Node(
                id: id,
                lines: ["load balancer \(balancer.name)", "\(balancer.vip.withPort(balancer.port))/\(balancer.proto.rawValue)"]
                    + shown.map { "→ \($0)" },
                kind: .loadBalancer))
            if let to = networkID[balancer.network] { edges.append(Edge(from: id, to: to, label: "VIP", dashed: true)) }
        }
        if let firewall = topology.firewall {
            let rules = firewall.rules.count
            nodes.append(Node(
                id: "fw",
                lines: ["firewall", "default \(firewall.defaultAction.rawValue), \(rules) rule\(rules == 1 ? "" : "s")"],
                kind: .firewall))
            // Rules may name a network; without one a rule applies to all of them.
            let named = Set(firewall.rules.compactMap(\.network))
            for network in topology.networks where named.isEmpty || named.contains(network.name) {
                if let to = networkID[network.name] { edges.append(Edge(from: "fw", to: to, label: "", dashed: true)) }
            }
        }
        self.nodes = nodes
        self.edges = edges
    }

    static func attachment(_ attachment: Topology.Port.Attachment) -> String {
        switch attachment {
        case .tap(let name): "tap \(name)"
        case .socket(let endpoint): "socket \(endpoint)"
        case .interface(let name): "interface \(name)"
        case .vxlan(let tunnel): "vxlan from \(tunnel.local):\(tunnel.port)"
        }
    }

    // MARK: Graphviz DOT

    public var dot: String {
        var out = ["graph \(Self.dotString(title)) {", "  graph [rankdir=LR, fontname=\"Helvetica\", label=\(Self.dotString("topology \(title)")), labelloc=t];",
                   "  node [fontname=\"Helvetica\", fontsize=11];", "  edge [fontname=\"Helvetica\", fontsize=9];"]
        for node in nodes {
            let shape: String
            switch node.kind {
            case .network: shape = "shape=ellipse, style=filled, fillcolor=\"#dbe9f6\""
            case .port: shape = "shape=box, style=rounded"
            case .loadBalancer: shape = "shape=box, style=\"rounded,filled\", fillcolor=\"#e6f4e6\""
            case .firewall: shape = "shape=box, style=filled, fillcolor=\"#f9e0e0\""
            }
            out.append("  \(node.id) [label=\(Self.dotString(node.lines.joined(separator: "\n"))), \(shape)];")
        }
        for edge in edges {
            var attributes: [String] = []
            if !edge.label.isEmpty { attributes.append("label=\(Self.dotString(edge.label))") }
            if edge.dashed { attributes.append("style=dashed") }
            out.append("  \(edge.from) -- \(edge.to)" + (attributes.isEmpty ? "" : " [\(attributes.joined(separator: ", "))]") + ";")
        }
        out.append("}")
        return out.joined(separator: "\n") + "\n"
    }

    /// A DOT quoted string: `"` and `\` escaped, a line break as `\n`, other control bytes dropped.
    static func dotString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: if scalar.value >= 0x20 && scalar.value != 0x7F { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    // MARK: Mermaid

    public var mermaid: String {
        var out = ["flowchart LR"]
        for node in nodes {
            let label = "\"" + node.lines.map(Self.mermaidText).joined(separator: "<br>") + "\""
            switch node.kind {
            case .network: out.append("  \(node.id)([\(label)])")
            case .port: out.append("  \(node.id)(\(label))")
            case .loadBalancer: out.append("  \(node.id){{\(label)}}")
            case .firewall: out.append("  \(node.id)[\(label)]")
            }
        }
        for edge in edges {
            let line = edge.dashed ? "-.-" : "---"
            out.append("  \(edge.from) \(line)" + (edge.label.isEmpty ? "" : "|\"\(Self.mermaidText(edge.label))\"|") + " \(edge.to)")
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// Text for inside a quoted Mermaid label: quotes and the characters Mermaid reads as markup
    /// become entity codes, so no name can end the label early; control characters are dropped.
    static func mermaidText(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "\"": out += "#quot;"
            case "<": out += "#lt;"
            case ">": out += "#gt;"
            case "#": out += "#35;"
            case "|": out += "#124;"
            default: if character.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) { out.append(character) }
            }
        }
        return out
    }
}
