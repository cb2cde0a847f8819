import Testing
import TapestryControl

@Suite struct ControlRequestTests {
    func parse(_ line: String) throws(ControlUsageError) -> ControlRequest {
        try ControlRequest.parse(line.split(separator: " ").map(String.init))
    }

    func refusal(_ line: String) -> String? {
        do {
            _ = try parse(line)
            return nil
        } catch {
            return error.message
        }
    }

    @Test func everyCommandParsesAndPrintsBackTheSameWords() throws {
        let lines = [
            "show", "stats", "reload", "fdb", "fdb flush", "fdb flush network=web", "conntrack",
            "conntrack proto=tcp host=10.0.0.1 port=80 state=ESTABLISHED network=web", "conntrack flush",
            "conntrack flush proto=udp", "lb", "lb drain web 10.0.10.11:8080", "lb undrain web 10.0.10.11:8080",
            "trace a 5 20",
        ]
        for line in lines {
            let request = try parse(line)
            #expect(request.words.joined(separator: " ") == line)
            #expect(try ControlRequest.parse(request.words) == request)
        }
    }

    @Test func filtersAreNormalized() throws {
        #expect(try parse("conntrack proto=TCP state=established") == .conntrack(ConnectionFilter(proto: "tcp", state: "ESTABLISHED")))
        // Hosts compare as the switch prints them: IPv4-mapped IPv6 is dotted, IPv6 is RFC 5952.
        #expect(try parse("conntrack host=::ffff:10.0.0.1") == .conntrack(ConnectionFilter(host: "10.0.0.1")))
        #expect(try parse("conntrack host=fd00:0:0:0:0:0:0:1") == .conntrack(ConnectionFilter(host: "fd00::1")))
        #expect(try parse("trace a") == .trace(port: "a", count: 10, seconds: 10))
    }

    /// The contract's examples and their kin: never a silent success.
    @Test func unknownCommandsArgumentsAndFilterValuesAreRefused() {
        #expect(refusal("bogus")?.contains("unknown command 'bogus'") == true)
        #expect(refusal("show --bogus")?.contains("'show' takes no arguments") == true)
        #expect(refusal("stats extra") != nil)
        #expect(refusal("conntrack proto=tpc")?.contains("unknown proto 'tpc'") == true)
        #expect(refusal("conntrack state=OPEN")?.contains("unknown state") == true)
        #expect(refusal("conntrack host=10.0.0") != nil)
        #expect(refusal("conntrack port=65536") != nil)
        #expect(refusal("conntrack port=80 port=81")?.contains("twice") == true)
        #expect(refusal("conntrack colour=red")?.contains("unknown filter") == true)
        #expect(refusal("conntrack flush proto") != nil)
        #expect(refusal("conntrack proto=") != nil)
        #expect(refusal("fdb show") != nil)
        #expect(refusal("fdb flush vlan=10") != nil)
        #expect(refusal("lb drain web") != nil)
        #expect(refusal("lb pause web 10.0.0.1:80") != nil)
        #expect(refusal("trace") != nil)
        #expect(refusal("trace a 0") != nil)
        #expect(refusal("trace a 10 61") != nil)
        #expect(refusal("trace a 10 10 10") != nil)
        #expect((try? ControlRequest.parse([])) == nil)
    }

    @Test func aFilterMatchesEitherEndAndEveryGivenField() throws {
        let filter = ConnectionFilter(proto: "tcp", host: "10.0.0.2", port: 80)
        func matches(_ filter: ConnectionFilter, source: String = "10.0.0.1", sourcePort: UInt16 = 40000, state: String = "ESTABLISHED") -> Bool {
            filter.matches(
                ConnectionFields(
                    proto: "tcp", source: source, sourcePort: sourcePort, destination: "10.0.0.2", destinationPort: 80,
                    state: state, network: "web"))
        }
        #expect(matches(filter))
        #expect(matches(ConnectionFilter(host: "10.0.0.1", port: 40000)))
        #expect(!matches(ConnectionFilter(host: "10.0.0.3")))
        #expect(!matches(ConnectionFilter(proto: "udp")))
        #expect(!matches(ConnectionFilter(state: "TIME_WAIT")))
        #expect(!matches(ConnectionFilter(network: "db")))
        #expect(matches(ConnectionFilter()))
    }
}
