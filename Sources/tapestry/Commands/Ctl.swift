import ArgumentParser
import Foundation
import TapestryControl
import TapestryPorts
import TapestryTopology

#if canImport(Glibc)
import Glibc
#endif

extension Tapestry {
    struct Ctl: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Talk to a running switch: show, fdb, conntrack, lb, stats, rules, reload, trace.",
            discussion: ControlRequest.usage + """


                Without --control or --topology, the one switch whose socket is in /run/tapestry (for root; \
                $XDG_RUNTIME_DIR/tapestry or /tmp/tapestry-UID for other users) is used. An unknown command, \
                argument or filter value exits 64 before anything is sent.
                """
        )

        @Option(help: ArgumentHelp("The switch's control socket.", valueName: "PATH"))
        var control: String?

        @Option(help: ArgumentHelp("Find the control socket from this topology file's `control:`.", valueName: "FILE"))
        var topology: String?

        @Flag(help: "Print the switch's JSON answer instead of tables.")
        var json = false

        @Argument(help: "show | fdb | conntrack | lb | stats | rules | reload | trace")
        var command: String

        @Argument(parsing: .captureForPassthrough, help: "Arguments of the command (filters, flush, drain/undrain).")
        var arguments: [String] = []

        /// `--json` may follow the command (`ctl show --json`); every other word is the request's.
        var wantsJSON: Bool { json || arguments.contains("--json") }

        var request: ControlRequest {
            get throws { try ControlRequest.parse([command] + arguments.filter { $0 != "--json" }) }
        }

        func validate() throws {
            do {
                _ = try request
            } catch let error as ControlUsageError {
                throw ValidationError("\(error.message)\n\n\(ControlRequest.usage)")
            }
            if control != nil && topology != nil { throw ValidationError("give --control or --topology, not both") }
        }

        func run() throws {
            let request = try self.request
            let path: String
            if let control {
                path = control
            } else if let topology {
                switch TopologyLoader.load(path: topology) {
                case .success(let loaded):
                    path = loaded.controlPath
                case .failure(let errors):
                    printError(errors.description)
                    throw ExitCode(1)
                }
            } else {
                let directory = Topology.defaultControlDirectory
                let sockets = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
                    .filter { $0.hasSuffix(".sock") }.sorted().map { "\(directory)/\($0)" }
                guard !sockets.isEmpty else {
                    printError("tapestry ctl: no switch listening (no control socket in \(directory)); is `tapestry run` running?")
                    throw ExitCode(1)
                }
                guard sockets.count == 1 else {
                    printError("tapestry ctl: several switches are running; pick one with --control:\n" + sockets.map { "  \($0)" }.joined(separator: "\n"))
                    throw ExitCode(1)
                }
                path = sockets[0]
            }
            guard let answer = Self.request(path: path, line: request.words.joined(separator: " ")) else {
                printError("tapestry ctl: no switch listening on \(path)")
                throw ExitCode(1)
            }
            if answer.isEmpty {
                // What a switch that already serves its 16 control clients does to the next one.
                printError("tapestry ctl: the switch at \(path) closed the connection without answering (it serves at most 16 control clients at once; try again)")
                throw ExitCode(1)
            }
            guard let object = try? JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [String: Any] else {
                printError("tapestry ctl: the switch's answer is not JSON: \(answer.prefix(200))")
                throw ExitCode(1)
            }
            if object["ok"] as? Bool != true {
                printError("tapestry ctl: \(object["error"] as? String ?? "the switch refused")")
                // The request named something the switch does not have (a network, a port).
                throw ExitCode(object["usage"] as? Bool == true ? 64 : 1)
            }
            if wantsJSON {
                print(answer.trimmingCharacters(in: .whitespacesAndNewlines))
            } else {
                print(CtlRender.render(request, object))
            }
        }

        /// Sends one line to the unix socket at `path` and returns the whole answer; nil when
        /// nothing listens there.
        static func request(path: String, line: String) -> String? {
            guard let fd = UnixSocketAddress.connect(path) else { return nil }
            defer { close(fd) }
            let bytes = Array((line + "\n").utf8)
            // MSG_NOSIGNAL: a switch that refuses us (it serves 16 clients) closes at once, and a
            // write into that must be a refusal to report, not SIGPIPE killing ctl (exit 141).
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            shutdown(fd, Int32(SHUT_WR))
            var answer = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count <= 0 { break }
                answer += buffer[0..<count]
            }
            return String(decoding: answer, as: UTF8.self)
        }
    }
}

/// Human-readable tables for `ctl`'s answers.
enum CtlRender {
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    static func text(_ value: Any?) -> String {
        switch value {
        case let number as NSNumber:
            if number.doubleValue.rounded() != number.doubleValue { return String(format: "%.1f", number.doubleValue) }
            return "\(number)"
        case let string as String: return string
        case nil: return "-"
        default: return "\(value!)"
        }
    }

    static func render(_ request: ControlRequest, _ object: [String: Any]) -> String {
        let name = object["switch"] as? String ?? "?"
        switch request {
        case .fdbFlush(let network):
            return "forgot \(text(object["flushed"])) MAC entries" + (network.map { " of network \($0)" } ?? "")
        case .conntrackFlush(let filter):
            return "removed \(text(object["flushed"])) connections" + (filter.isEmpty ? "" : " matching \(filter.words.joined(separator: " "))")
        default:
            break
        }
        switch request.command {
        case "show":
            let ports = object["ports"] as? [[String: Any]] ?? []
            // Socket ports also say who is connected (the TCP client, the dgram VM's socket).
            let peers = ports.contains { $0["kind"] as? String == "socket" }
            var columns = ["name", "kind", "device", "mode", "netns", "state", "frames_in", "frames_out", "drops"]
            var headers = ["PORT", "KIND", "DEVICE", "MODE", "NETNS", "STATE", "FRAMES IN", "FRAMES OUT", "DROPS"]
            if peers {
                columns.append("peer")
                headers.append("PEER")
            }
            return "switch '\(name)'\n" + table(headers, ports.map { p in columns.map { text(p[$0]) } })
        case "fdb":
            let entries = object["entries"] as? [[String: Any]] ?? []
            return table(["NETWORK", "VLAN", "MAC", "PORT", "AGE (s)"],
                entries.map { e in ["network", "vlan", "mac", "port", "age_seconds"].map { text(e[$0]) } })
                + "\n\(entries.count) entries (capacity \(text(object["capacity"])), aging \(text(object["aging_seconds"])) s)"
        case "conntrack":
            guard object["tracking"] as? Bool == true else { return "no connection tracking (no firewall or load balancer)" }
            let rows = (object["connections"] as? [[String: Any]] ?? []).map { c in
                [text(c["id"]), text(c["network"]), text(c["proto"]), "\(text(c["source"])):\(text(c["source_port"]))",
                 "\(text(c["destination"])):\(text(c["destination_port"]))", text(c["state"]), text(c["expires_in_seconds"]),
                 "\(text(c["packets_original"]))/\(text(c["packets_reply"]))", text(c["rule"]), text(c["backend"] ?? "-")]
            }
            return table(["ID", "NETWORK", "PROTO", "SOURCE", "DESTINATION", "STATE", "EXPIRES (s)", "PACKETS (orig/reply)", "RULE", "BACKEND"], rows)
                + "\n\(rows.count) shown, \(text(object["count"])) in the table (capacity \(text(object["capacity"])))"
        case "lb":
            var rows: [[String]] = []
            for balancer in object["load_balancers"] as? [[String: Any]] ?? [] {
                let service = "\(text(balancer["name"])) \(text(balancer["vip"])):\(text(balancer["port"]))/\(text(balancer["proto"]))"
                for backend in balancer["backends"] as? [[String: Any]] ?? [] {
                    rows.append([service, text(backend["address"]), text(backend["weight"]), text(backend["connections"]),
                                 (backend["drained"] as? Bool ?? false) ? "drained" : "active", text(backend["mac"])])
                }
            }
            return rows.isEmpty ? "no load balancers" : table(["SERVICE", "BACKEND", "WEIGHT", "CONNECTIONS", "STATE", "MAC"], rows)
        case "stats":
            let ports = object["ports"] as? [String: [String: Any]] ?? [:]
            var lines = [table(["PORT", "FRAMES IN", "FRAMES OUT", "BYTES IN", "BYTES OUT", "DROPS"],
                ports.keys.sorted().map { port in
                    let p = ports[port]!
                    let drops = (p["drops"] as? [String: Any] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key) \(text($0.value))" }
                    return [port, text(p["frames_in"]), text(p["frames_out"]), text(p["bytes_in"]), text(p["bytes_out"]),
                            drops.isEmpty ? "-" : drops.joined(separator: ", ")]
                })]
            let drops = (object["drops"] as? [String: Any] ?? [:]).filter { text($0.value) != "0" }.sorted { $0.key < $1.key }
            lines.append("drops: " + (drops.isEmpty ? "none" : drops.map { "\($0.key) \(text($0.value))" }.joined(separator: ", ")))
            for key in ["mac_table", "connections", "load_balancers"] {
                let values = (object[key] as? [String: Any] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key) \(text($0.value))" }
                lines.append("\(key.replacingOccurrences(of: "_", with: " ")): " + values.joined(separator: ", "))
            }
            let rules = (object["rules"] as? [[String: Any]] ?? []).map { "\(text($0["rule"])) \(text($0["connections"]))" }
            if !rules.isEmpty { lines.append("rules (new connections decided): " + rules.joined(separator: ", ")) }
            return lines.joined(separator: "\n")
        case "rules":
            guard object["firewall"] as? Bool == true else { return "no firewall (every connection is allowed)" }
            let rows = (object["rules"] as? [[String: Any]] ?? []).map { r in
                [text(r["rule"]), text(r["location"]), text(r["action"]), (r["log"] as? Bool ?? false) ? "log" : "-",
                 text(r["connections"]), text(r["text"])]
            }
            return table(["RULE", "WHERE", "ACTION", "LOG", "CONNECTIONS", "AS WRITTEN"], rows)
        case "reload":
            return text(object["message"])
        case "trace":
            let lines = object["trace"] as? [String] ?? []
            return (lines + ["\(text(object["frames"])) frames traced"]).joined(separator: "\n")
        default:
            return "\(object)"
        }
    }
}
