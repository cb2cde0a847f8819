import Foundation
import TapestryControl
import Testing

/// The answers as the switch encodes them and as `ctl` decodes and renders them.
@Suite struct ControlAnswerTests {
    @Test func aRefusalSaysWhetherTheRequestWasWrong() throws {
        let usage = ControlAnswer.encode(ControlAnswer.Failure(error: "unknown network 'x'", usage: true))
        #expect(usage == #"{"error":"unknown network 'x'","ok":false,"usage":true}"# + "\n")
        #expect(try ControlRender.failure(usage) == ControlAnswer.Failure(error: "unknown network 'x'", usage: true))
        #expect(try ControlRender.failure(ControlAnswer.encode(ControlAnswer.Message(switch: "lab", message: "reloaded 'lab'"))) == nil)
        #expect(throws: ControlRender.Unreadable.self) { try ControlRender.failure("not json") }
    }

    @Test func rulesRenderWithTheirLocation() throws {
        let answer = ControlAnswer.encode(
            ControlAnswer.Rules(
                switch: "lab", firewall: true, default: "drop",
                rules: [
                    .init(rule: "1", location: "lab.yaml:20", text: "action: allow, proto: tcp, dport: [22, 80]", action: "allow", log: false, connections: 7),
                    .init(rule: "default", location: "-", text: "default: drop", action: "drop", log: true, connections: 3),
                ]))
        let text = try ControlRender.render(.rules, answer)
        #expect(text.contains("RULE     WHERE        ACTION  LOG  CONNECTIONS  AS WRITTEN"), "\(text)")
        #expect(text.contains("1        lab.yaml:20  allow   -    7            action: allow, proto: tcp, dport: [22, 80]"), "\(text)")
        #expect(text.contains("default  -            drop    log  3            default: drop"), "\(text)")
        // A switch's answer of the wrong shape is an error, not an empty table.
        #expect(throws: ControlRender.Unreadable.self) { try ControlRender.render(.rules, #"{"ok":true}"#) }
    }

    /// The switch streams `conntrack`: its head with the brace open, rows in pieces, then the end.
    @Test func aStreamedConntrackDecodesWhole() throws {
        let row = ControlAnswer.Conntrack.Connection(
            id: 4, network: "web", proto: "tcp", source: "10.0.0.1", sourcePort: 40000, destination: "10.0.0.2",
            destinationPort: 80, state: "ESTABLISHED", ageSeconds: 1.5, expiresInSeconds: 431_998, packetsOriginal: 3,
            packetsReply: 2, bytesOriginal: 180, bytesReply: 120, rule: "1")
        let rows = ControlAnswer.encode([row, row]).trimmingCharacters(in: .whitespacesAndNewlines)
        let document = #"{"capacity":8,"count":2,"ok":true,"switch":"lab","tracking":true"# + #","connections":["#
            + rows.dropFirst().dropLast() + #"],"complete":true}"#
        let text = try ControlRender.render(.conntrack(ConnectionFilter()), document)
        #expect(text.contains("4   web      tcp    10.0.0.1:40000  10.0.0.2:80  ESTABLISHED  431998"), "\(text)")
        #expect(text.hasSuffix("2 shown, 2 in the table (capacity 8)"), "\(text)")
        let cut = #"{"capacity":8,"count":2,"ok":true,"switch":"lab","tracking":true,"connections":[],"complete":false,"note":"the switch reloaded during the listing"}"#
        #expect(try ControlRender.render(.conntrack(ConnectionFilter()), cut).contains("incomplete: the switch reloaded during the listing"))
    }
}
