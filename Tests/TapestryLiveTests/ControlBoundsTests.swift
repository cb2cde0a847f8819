import Foundation
import TapestryProcess
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Hostile clients of the control socket and the metrics endpoint, against a switch forwarding a
/// ping every 10 ms between two namespace hosts. Before the control thread, one byte every 150 ms
/// on the metrics port stopped all forwarding (100% loss) and 20 silent control clients delayed
/// pings by up to 2 s (scripts/control-stall.py, docs/operations.md).
@Suite(.serialized) struct ControlBoundsTests {
    /// Worst ping round trip allowed while hostile clients work. The stall this guards against
    /// was 150-200 ms per client read (or forever); quiet, a ping takes 0.2 ms here and the worst
    /// seen with hostile clients was about 4 ms on a busy 2-core machine: 50 ms leaves room for
    /// a loaded machine and is still far below one stalled read.
    static let worstRoundTrip = 50.0
    /// What one turn of control work may cost the datapath thread, by the switch's own clocks.
    /// By design a turn copies for at most 200 µs (100 µs per job, in pieces of 64 entries).
    /// Both clocks also count what the machine takes from the thread meanwhile: on this VM
    /// (HZ 250, no IRQ time accounting, hypervisor steal) a quiet ping shows 4 ms gaps, and one
    /// turn in a few hundred was seen at 3.3 ms under load, so the test allows 5 ms; the typical
    /// turn is 0.1-0.3 ms (printed). The ping bound above is the end-to-end check.
    /// Under ThreadSanitizer a turn was seen at 2.3 ms of CPU and 8.9 ms of wall time on CI's
    /// 2 cores (every memory access is instrumented), so sanitizer builds allow four times more.
    static let worstWork = LiveLab.sanitized ? 0.020 : 0.005
    static let worstPause = LiveLab.sanitized ? 0.020 : 0.005

    func start(_ lab: LiveLab, control: String, metricsPort: Int) throws {
        try lab.addHosts(["a1", "a2"])
        try lab.start(
            topology: """
                name: bounds
                control: \(control)
                metrics: 127.0.0.1:\(metricsPort)
                networks:
                  web: { vlan: 10 }
                ports:
                  a1: { tap: \(lab.name("a1")), network: web, netns: \(lab.name("a1")) }
                  a2: { tap: \(lab.name("a2")), network: web, netns: \(lab.name("a2")) }
                firewall: { default: allow }
                """)
        lab.address("a1", "10.0.0.1/24")
        lab.address("a2", "10.0.0.2/24")
        #expect(lab.sh("ping -c 2 -i 0.2 -W 2 10.0.0.2", in: "a1").status == 0)
    }

    /// Pings a2 from a1 every 10 ms in the background; `result()` gives (sent, received, max ms).
    final class Pinger {
        let process: ChildProcess
        init(_ lab: LiveLab, count: Int) throws {
            process = try ChildProcess(
                ChildProcess.ip, ["netns", "exec", lab.name("a1"), "ping", "-q", "-i", "0.01", "-W", "1", "-c", "\(count)", "10.0.0.2"])
        }
        func result() -> (sent: Int, received: Int, worst: Double, text: String) {
            let text = process.waitForOutput().output
            func number(_ pattern: String) -> Double? {
                guard let range = text.range(of: pattern, options: .regularExpression) else { return nil }
                return Double(text[range].split(whereSeparator: { !"0123456789.".contains($0) }).first ?? "")
            }
            let worst = text.range(of: #"= [\d.]+/[\d.]+/[\d.]+"#, options: .regularExpression)
                .flatMap { Double(text[$0].split(separator: "/")[2]) } ?? .infinity
            return (Int(number(#"\d+ packets transmitted"#) ?? 0), Int(number(#"\d+ received"#) ?? 0), worst, text)
        }
    }

    /// A Python client in the background (this process's namespace); its output when it ends.
    final class Client {
        let process: ChildProcess
        init(_ script: String) throws {
            process = try ChildProcess("/usr/bin/env", ["python3", "-c", script])
        }
        func output() -> String { process.waitForOutput().output }
        /// The number after `key=` in the output.
        static func value(_ key: String, in output: String) -> Double? {
            guard let range = output.range(of: "\(key)=[0-9.]+", options: .regularExpression) else { return nil }
            return Double(output[range].dropFirst(key.count + 1))
        }
    }

    func metrics(_ port: Int) -> String {
        let script = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:\(port)/metrics', timeout=5).read().decode())"
        let client = try? Client(script)
        return client?.output() ?? ""
    }

    static func sample(_ metrics: String, _ name: String) -> Double? {
        for line in metrics.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1))
        }
        return nil
    }

    /// The switch's own measure of its longest hand-off of control work.
    func checkHandOff(_ metrics: String) throws {
        let work = try #require(Self.sample(metrics, "tapestry_control_work_seconds_max"), "\(metrics)")
        let pause = try #require(Self.sample(metrics, "tapestry_control_pause_seconds_max"), "\(metrics)")
        #expect(work > 0 && work < Self.worstWork, "CPU time of the longest hand-off: \(work) s")
        #expect(pause < Self.worstPause, "wall time of the longest hand-off: \(pause) s")
        print("longest hand-off of control work on the datapath thread: \(work * 1e6) µs of CPU, \(pause * 1e6) µs of wall time")
    }

    @Test func hostileClientsNeverStallForwarding() throws {
        if LiveLab.skip("hostileClientsNeverStallForwarding") { return }
        guard lab_has("python3") else {
            print("skipping hostileClientsNeverStallForwarding: no python3")
            return
        }
        let lab = LiveLab()
        defer { lab.tearDown() }
        let control = "/tmp/\(lab.prefix)-control.sock"
        let metricsPort = 25_000 + Int(getpid() % 1000)
        try start(lab, control: control, metricsPort: metricsPort)
        let binary = try #require(LiveLab.binary).path

        // (a) One byte every 150 ms to the metrics endpoint, an HTTP request that never ends:
        // the switch must close it 5 s after it connected.
        let drip = try Client(
            """
            import socket, time
            s = socket.create_connection(("127.0.0.1", \(metricsPort)))
            start = time.time()
            s.settimeout(0.15)
            for byte in b"GET /metrics HTTP/1.1\\r\\nX-Slow: " + b"a" * 1000:
                try:
                    s.send(bytes([byte]))
                    if s.recv(1) == b"":
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
                if time.time() - start > 9:
                    break
            print(f"closed={time.time() - start:.2f}")
            """)
        // (c) More than 64 KiB without a newline on the control socket: dropped at once.
        let oversize = try Client(
            """
            import socket, time
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect("\(control)")
            start = time.time()
            sent = 0
            try:
                while sent < 1 << 20:
                    sent += s.send(b"x" * 4096)
                s.settimeout(3)
                s.recv(1)
            except OSError:
                pass
            print(f"sent={sent} closed={time.time() - start:.2f}")
            """)
        let pinger = try Pinger(lab, count: 300)
        usleep(500_000)
        let stats = lab.sh("\(binary) ctl --control \(control) --json stats")
        #expect(stats.status == 0 && stats.output.contains("\"frames_in\""), "ctl answers beside the hostile clients: \(stats.output)")
        #expect(metrics(metricsPort).contains("tapestry_port_frames_total{port=\"a1\",direction=\"in\"}"), "metrics answer beside the drip")
        let oversized = oversize.output()
        #expect((Client.value("sent", in: oversized) ?? 0) > 65_536 && (Client.value("closed", in: oversized) ?? 9) < 1, "\(oversized)")
        let first = pinger.result()
        #expect(first.sent == 300 && first.received == 300 && first.worst < Self.worstRoundTrip, "\(first.text)")
        print("ping beside a metrics drip and an oversized control request: worst \(first.worst) ms")

        // (b) 20 silent control clients: 16 are held (and dropped 5 s after they connected), the
        // other 4 are closed at once; meanwhile ctl itself is refused, forwarding is not.
        let silent = try Client(
            """
            import socket, time, select
            clients = []
            for i in range(20):
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.connect("\(control)")
                clients.append(c)
            start = time.time()
            closed = {}
            while len(closed) < 20 and time.time() - start < 9:
                readable, _, _ = select.select([c for c in clients if c not in closed], [], [], 0.05)
                for c in readable:
                    if c.recv(1) == b"":
                        closed[c] = time.time() - start
            times = sorted(closed.values())
            at_once = sum(1 for t in times if t < 1)
            later = [t for t in times if t >= 1]
            print(f"at_once={at_once} held={len(later)} first_drop={min(later) if later else 0:.2f} last_drop={max(later) if later else 0:.2f}")
            """)
        // Wait until the switch has refused the 4 (python may take a while to start on a busy
        // machine); the 16 it holds then stay for 5 s, time enough for the refused ctl below.
        let waitUntil = Date().addingTimeInterval(15)
        var refusedSoFar = Self.sample(metrics(metricsPort), #"tapestry_control_clients_refused_total{endpoint="control"}"#)
        while Date() < waitUntil, refusedSoFar != 4 {
            usleep(50_000)
            refusedSoFar = Self.sample(metrics(metricsPort), #"tapestry_control_clients_refused_total{endpoint="control"}"#)
        }
        try #require(refusedSoFar == 4, "the 20 silent clients connected and 4 were refused")
        let second = try Pinger(lab, count: 300)
        let refused = lab.sh("\(binary) ctl --control \(control) stats")
        #expect(refused.status == 1 && refused.output.contains("closed the connection without answering"),
            "the 21st control client is refused while 16 are held: \(refused.status) \(refused.output)\n\(metrics(metricsPort).suffix(1500))")
        let held = silent.output()
        #expect(Client.value("at_once", in: held) == 4 && Client.value("held", in: held) == 16, "\(held)")
        let firstDrop = Client.value("first_drop", in: held) ?? 0, lastDrop = Client.value("last_drop", in: held) ?? 0
        #expect(firstDrop >= 4.5 && lastDrop <= 6.5, "held clients are dropped about 5 s after they connected: \(held)")
        let during = second.result()
        #expect(during.sent == 300 && during.received == 300 && during.worst < Self.worstRoundTrip, "\(during.text)")
        print("ping beside 20 silent control clients: worst \(during.worst) ms")
        let dripped = drip.output()
        let closedAfter = Client.value("closed", in: dripped) ?? 0
        #expect(closedAfter >= 4.5 && closedAfter <= 6.5, "the drip is closed 5 s after it connected: \(dripped)")

        // Everything is served again, and the switch counted what it did.
        let again = lab.sh("\(binary) ctl --control \(control) stats")
        #expect(again.status == 0 && again.output.contains("a1"), "\(again.output)")
        let text = metrics(metricsPort)
        #expect(Self.sample(text, #"tapestry_control_clients_refused_total{endpoint="control"}"#) == 5, "4 silent, 1 ctl\n\(text)")
        #expect(Self.sample(text, #"tapestry_control_clients_dropped_total{endpoint="control",reason="oversize"}"#) == 1, "\(text)")
        #expect(Self.sample(text, #"tapestry_control_clients_dropped_total{endpoint="control",reason="request-timeout"}"#) == 16, "\(text)")
        #expect(Self.sample(text, #"tapestry_control_clients_dropped_total{endpoint="metrics",reason="request-timeout"}"#) == 1, "\(text)")
        try checkHandOff(text)
        #expect(lab.stop() == 0)
        // Logged at most once per 10 s with counts; what is left is logged when the switch stops.
        #expect(lab.log.contains("control socket: clients refused (16 already connected, the limit): "), "\(lab.log)")
        #expect(lab.log.contains("control socket: requests dropped (not complete within 5 s): "), "\(lab.log)")
    }

    /// A connection table of about 20,000 entries listed by `ctl conntrack` (about 8 MB of JSON,
    /// in chunks) while the ping runs: the listing is whole, and forwarding does not notice it.
    @Test func largeListingDoesNotStallForwarding() throws {
        if LiveLab.skip("largeListingDoesNotStallForwarding") { return }
        guard lab_has("python3") else {
            print("skipping largeListingDoesNotStallForwarding: no python3")
            return
        }
        let lab = LiveLab()
        defer { lab.tearDown() }
        let control = "/tmp/\(lab.prefix)-control.sock"
        let metricsPort = 26_000 + Int(getpid() % 1000)
        try start(lab, control: control, metricsPort: metricsPort)
        let binary = try #require(LiveLab.binary).path
        // 20,000 UDP flows from a1 to a2 (one datagram each, distinct destination ports).
        let flows = lab.sh(
            """
            python3 -c 'import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            import time
            for port in range(20000):
                s.sendto(b"x", ("10.0.0.2", 10000 + port))
                if port % 100 == 99:
                    time.sleep(0.003)'
            """, in: "a1")
        #expect(flows.status == 0, "\(flows.output)")
        usleep(300_000)
        let pinger = try Pinger(lab, count: 300)
        let started = Date()
        var listings = 0
        var rows = 0
        var complete = true
        var slowest = 0.0
        while Date().timeIntervalSince(started) < 2.5 {
            let began = Date()
            defer { slowest = max(slowest, Date().timeIntervalSince(began)) }
            let answer = lab.sh("\(binary) ctl --control \(control) --json conntrack > /tmp/\(lab.prefix)-ct.json; echo $?")
            let data = (try? Data(contentsOf: URL(fileURLWithPath: "/tmp/\(lab.prefix)-ct.json"))) ?? Data()
            let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
            rows = (object?["connections"] as? [Any])?.count ?? -1
            // Whole: as many rows as the table held when the listing began (nothing expires
            // meanwhile: UDP flows live 30 s), and the document says it is complete.
            complete = complete && object?["complete"] as? Bool == true && answer.output.hasPrefix("0")
                && object?["count"] as? Int == rows
            listings += 1
        }
        try? FileManager.default.removeItem(atPath: "/tmp/\(lab.prefix)-ct.json")
        let result = pinger.result()
        // A loaded machine may lose many of the 20,000 datagrams in a1's TAP queue before the
        // switch reads them (8,577 made a connection under ThreadSanitizer beside four fuzzers);
        // what matters is that the listing is large and whole.
        #expect(rows >= 5_000 && complete, "each listing holds every connection: \(rows) rows")
        #expect(result.sent == 300 && result.received == 300 && result.worst < Self.worstRoundTrip, "\(result.text)")
        print("\(listings) listings of \(rows) connections (slowest \(slowest) s) beside the ping: worst \(result.worst) ms")
        try checkHandOff(metrics(metricsPort))
        #expect(lab.stop() == 0)
    }
}
