import Foundation

/// `ctl`'s tables: the answer a request expects, decoded from the switch's JSON and rendered.
public enum ControlRender {
    public struct Unreadable: Error, CustomStringConvertible {
        public var description: String
    }

    /// What a refused request says; nil when the answer is a success.
    public static func failure(_ answer: String) throws(Unreadable) -> ControlAnswer.Failure? {
        let head: ControlAnswer.Head = try decode(answer)
        guard !head.ok else { return nil }
        return ControlAnswer.Failure(error: head.error ?? "the switch refused", usage: head.usage)
    }

    /// The table (or sentence) for `request`'s answer.
    public static func render(_ request: ControlRequest, _ answer: String) throws(Unreadable) -> String {
        switch request {
        case .show:
            return show(try decode(answer))
        case .stats:
            return stats(try decode(answer))
        case .rules:
            return rules(try decode(answer))
        case .fdb:
            return fdb(try decode(answer))
        case .fdbFlush(let network):
            let flushed: ControlAnswer.Flushed = try decode(answer)
            return "forgot \(flushed.flushed) MAC entries" + (network.map { " of network \($0)" } ?? "")
        case .conntrack:
            return conntrack(try decode(answer))
        case .conntrackFlush(let filter):
            let flushed: ControlAnswer.Flushed = try decode(answer)
            return "removed \(flushed.flushed) connections" + (filter.isEmpty ? "" : " matching \(filter.words.joined(separator: " "))")
        case .lb, .drain:
            // A drain answers with the balancers as they are now.
            return balancers(try decode(answer))
        case .reload:
            let message: ControlAnswer.Message = try decode(answer)
            return message.message
        case .trace:
            let trace: ControlAnswer.Trace = try decode(answer)
            return (trace.trace + ["\(trace.frames) frames traced"]).joined(separator: "\n")
        }
    }

    static func decode<T: Decodable>(_ answer: String) throws(Unreadable) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(answer.utf8))
        } catch {
            throw Unreadable(description: "the switch's answer is not what \(T.self) expects: \(answer.prefix(200))")
        }
    }

    public static func table(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    /// Seconds with one decimal, whole numbers without.
    static func seconds(_ value: Double) -> String {
        Int64(exactly: value).map { "\($0)" } ?? String(format: "%.1f", value)
    }

    static func show(_ answer: ControlAnswer.Show) -> String {
        // Socket ports also say who is connected (the TCP client, the dgram VM's socket).
        let peers = answer.ports.contains { $0.kind == "socket" }
        var headers = ["PORT", "KIND", "DEVICE", "MODE", "NETNS", "STATE", "FRAMES IN", "FRAMES OUT", "DROPS"]
        if peers { headers.append("PEER") }
        let rows = answer.ports.map { p in
            [p.name, p.kind, p.device, p.mode, p.netns, p.state, "\(p.framesIn)", "\(p.framesOut)", "\(p.drops)"]
                + (peers ? [p.peer] : [])
        }
        var text = "switch '\(answer.switch)'\n" + table(headers, rows)
        for port in answer.ports {
            guard let remotes = port.remotes else { continue }
            let sources = (port.sourcePorts ?? []).map(String.init).joined(separator: ",")
            text += "\n\ntunnel \(port.name): source ports \(sources.isEmpty ? "-" : sources)\n"
            text += table(
                ["REMOTE", "FRAMES IN", "FRAMES OUT", "BYTES IN", "BYTES OUT", "SEND FAILURES"],
                remotes.map { r in
                    [r.address, "\(r.framesIn)", "\(r.framesOut)", "\(r.bytesIn)", "\(r.bytesOut)", "\(r.sendFailures)"]
                })
        }
        return text
    }

    static func fdb(_ answer: ControlAnswer.FDB) -> String {
        // MACs behind a tunnel also say which remote.
        let remotes = answer.entries.contains { $0.remote != nil }
        return table(
            ["NETWORK", "VLAN", "MAC", "PORT", "AGE (s)"] + (remotes ? ["REMOTE"] : []),
            answer.entries.map { e in
                [e.network, "\(e.vlan)", e.mac, e.port, seconds(e.ageSeconds)] + (remotes ? [e.remote ?? ""] : [])
            })
            + "\n\(answer.entries.count) entries (capacity \(answer.capacity), aging \(answer.agingSeconds) s)"
    }

    static func conntrack(_ answer: ControlAnswer.Conntrack) -> String {
        guard answer.tracking else { return "no connection tracking (no firewall or load balancer)" }
        let rows = answer.connections.map { c in
            [
                "\(c.id)", c.network, c.proto, "\(c.source):\(c.sourcePort)", "\(c.destination):\(c.destinationPort)", c.state,
                seconds(c.expiresInSeconds), "\(c.packetsOriginal)/\(c.packetsReply)", c.rule, c.backend ?? "-",
            ]
        }
        var text = table(["ID", "NETWORK", "PROTO", "SOURCE", "DESTINATION", "STATE", "EXPIRES (s)", "PACKETS (orig/reply)", "RULE", "BACKEND"], rows)
            + "\n\(rows.count) shown, \(answer.count.map { "\($0)" } ?? "-") in the table (capacity \(answer.capacity.map { "\($0)" } ?? "-"))"
        if answer.complete == false { text += "\nincomplete: \(answer.note ?? "the listing was cut short")" }
        return text
    }

    static func balancers(_ answer: ControlAnswer.Balancers) -> String {
        var rows: [[String]] = []
        for balancer in answer.loadBalancers {
            // An IPv6 VIP is bracketed, as backends are, so its port stays readable.
            let vip = balancer.vip.contains(":") ? "[\(balancer.vip)]" : balancer.vip
            let service = "\(balancer.name) \(vip):\(balancer.port)/\(balancer.proto)"
            for backend in balancer.backends {
                let since = backend.healthChanged.map { " since \(utc($0))" } ?? ""
                rows.append([
                    service, backend.address, "\(backend.weight)", "\(backend.connections)", backend.drained ? "drained" : "active",
                    backend.health + since, backend.mac,
                ])
            }
        }
        return rows.isEmpty ? "no load balancers" : table(["SERVICE", "BACKEND", "WEIGHT", "CONNECTIONS", "STATE", "HEALTH", "MAC"], rows)
    }

    /// Seconds since 1970 as `2026-12-02T14:03:05Z`.
    static func utc(_ seconds: Double) -> String {
        guard seconds.isFinite, var time = time_t(exactly: seconds.rounded(.down)) else { return "\(seconds)" }
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    static func stats(_ answer: ControlAnswer.Stats) -> String {
        var lines = [
            table(
                ["PORT", "FRAMES IN", "FRAMES OUT", "BYTES IN", "BYTES OUT", "DROPS"],
                answer.ports.keys.sorted().map { name in
                    let p = answer.ports[name]!  // a key of the dictionary
                    let drops = p.drops.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                    return [name, "\(p.framesIn)", "\(p.framesOut)", "\(p.bytesIn)", "\(p.bytesOut)", drops.isEmpty ? "-" : drops.joined(separator: ", ")]
                })
        ]
        let drops = answer.drops.filter { $0.value != 0 }.sorted { $0.key < $1.key }
        lines.append("drops: " + (drops.isEmpty ? "none" : drops.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
        let mac = answer.macTable
        lines.append("mac table: entries \(mac.entries), evicted \(mac.evicted), learned \(mac.learned), moved \(mac.moved)")
        let c = answer.connections
        lines.append("connections: created \(c.created), evicted \(c.evicted), related \(c.related), tracked \(c.tracked)")
        let balancers = answer.loadBalancers
        lines.append(
            "load balancers: answers \(balancers.answers), held_for_arp \(balancers.heldForARP) (released \(balancers.heldReleased), expired \(balancers.heldExpired), waiting \(balancers.heldWaiting))")
        if !answer.rules.isEmpty {
            lines.append("rules (new connections decided): " + answer.rules.map { "\($0.rule) \($0.connections)" }.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }

    static func rules(_ answer: ControlAnswer.Rules) -> String {
        guard answer.firewall else { return "no firewall (every connection is allowed)" }
        let rows = answer.rules.map { r in [r.rule, r.location, r.action, r.log ? "log" : "-", "\(r.connections)", r.text] }
        return table(["RULE", "WHERE", "ACTION", "LOG", "CONNECTIONS", "AS WRITTEN"], rows)
    }
}
