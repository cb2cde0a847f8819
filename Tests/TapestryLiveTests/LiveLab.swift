import Foundation
import TapestryLab
import TapestryProcess

#if canImport(Glibc)
import Glibc
#endif

/// The live tests' lab: a `Lab` (namespaces, the switch process, commands inside) whose
/// namespaces and TAP devices are named with a per-lab prefix, so tests can run side by side.
/// `tearDown()` leaves nothing behind (`Lab`); the only process it signals outside its own
/// namespaces is the switch it started, by PID.
final class LiveLab {
    static var isRoot: Bool { geteuid() == 0 }
    nonisolated(unsafe) private static var counter = 0
    static let lock = NSLock()

    /// Prints why a live test is skipped; true when it must skip.
    static func skip(_ test: String) -> Bool {
        guard !isRoot else { return false }
        print("skipping \(test): needs root for TAP devices and network namespaces")
        return true
    }

    let prefix: String
    let lab: Lab
    var namespaces: [String] { lab.namespaces }
    var topologyURL: URL { URL(fileURLWithPath: lab.topologyPath) }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static var binary: URL? {
        [
            Bundle.main.bundleURL.appendingPathComponent("tapestry"),
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("tapestry"),
            root.appendingPathComponent(".build/debug/tapestry"),
        ].first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    /// Whether this test runner (and the switch it starts, found beside it) is a ThreadSanitizer
    /// or AddressSanitizer build, which runs several times slower: timing bounds scale with it.
    static let sanitized: Bool = {
        let path = Bundle.main.bundleURL.path
        return path.contains("/.build-tsan/") || path.contains("/.build-asan/")
            || ProcessInfo.processInfo.environment["TSAN_OPTIONS"] != nil
    }()

    init() {
        Self.lock.lock()
        Self.counter += 1
        let number = Self.counter
        Self.lock.unlock()
        prefix = "tl\(getpid() % 1000)\(number)"
        lab = Lab(files: prefix)
    }

    /// The namespace (and TAP device) name of host `short` in this lab.
    func name(_ short: String) -> String { "\(prefix)-\(short)" }

    /// Creates a namespace per host, loopback up, IPv6 off.
    /// Namespaces for `hosts`, IPv6 off unless `ipv6`.
    func addHosts(_ hosts: [String], ipv6: Bool = false) throws {
        for host in hosts { try lab.addNamespace(name(host), ipv6: ipv6) }
    }

    /// Starts `tapestry run` on the topology text and waits for its `ready` line. With `user`
    /// (when root), the switch runs as that user instead; with `umask`, under that umask (set by
    /// a shell in the child, not in this process, which other tests share).
    func start(topology: String, arguments: [String] = [], user: String? = nil, umask: String? = nil) throws {
        guard let binary = Self.binary else { throw LabError("tapestry binary not found") }
        var wrapper: (String, [String])?
        if let user, Self.isRoot {
            wrapper = ("/usr/bin/setpriv", ["--reuid=\(user)", "--regid=\(user == "nobody" ? "nogroup" : user)", "--clear-groups", "--reset-env"])
        }
        if let umask {
            let inner = wrapper.map { [$0.0] + $0.1 } ?? []
            wrapper = ("/bin/sh", ["-c", "umask \(umask) && exec \"$0\" \"$@\""] + inner)
        }
        try lab.startSwitch(binary: binary.path, topology: topology, arguments: arguments, wrapper: wrapper)
    }

    var log: String { lab.log }

    /// The switch's log once it contains `text`, or as it is after `seconds` (a loaded machine
    /// may take longer than a fixed pause to notice a closed connection).
    func log(containing text: String, within seconds: Double = 5) -> String {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let current = lab.log
            if current.contains(text) { return current }
            usleep(20_000)
        }
        return lab.log
    }

    /// Gives host `short` an address on its TAP device.
    func address(_ short: String, _ cidr: String, mtu: Int? = nil) {
        sh("ip -n \(name(short)) addr add \(cidr) dev \(name(short))")
        if let mtu { sh("ip -n \(name(short)) link set \(name(short)) mtu \(mtu)") }
        sh("ip -n \(name(short)) link set \(name(short)) up")
    }

    /// The MAC of host `short`'s TAP device, as its namespace sees it.
    func mac(_ short: String) -> String {
        sh("cat /sys/class/net/\(name(short))/address", in: short).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a shell command, inside host `short`'s namespace when given.
    @discardableResult
    func sh(_ command: String, in short: String? = nil, timeout: Int = 60) -> (status: Int32, output: String) {
        lab.sh(command, in: short.map(name), timeout: Double(timeout))
    }

    /// Starts a command in host `short`'s namespace in the background; `tearDown` ends it if it
    /// is still running.
    func background(_ command: String, in short: String) throws -> ChildProcess {
        try lab.background(command, in: name(short))
    }

    /// `python3 -m http.server` on port 8080 of `bind` (`::` for IPv6) in host `short`, serving a
    /// page that says "served by SHORT", ended after `seconds` at the latest; returns once it
    /// listens (or after 10 s).
    func webServer(in short: String, seconds: Int = 60, bind: String = "0.0.0.0") throws -> ChildProcess {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(short)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try "served by \(short)\n".write(to: root.appendingPathComponent("index.html"), atomically: true, encoding: .utf8)
        let server = try background(
            "exec timeout \(seconds) python3 -m http.server 8080 --bind \(bind) --directory \(root.path)", in: short)
        let deadline = Date().addingTimeInterval(10)
        while sh("ss -ltn | grep -q ':8080'", in: short).status != 0 && Date() < deadline { usleep(100_000) }
        return server
    }

    /// `iperf3 -s -1` in host `short`: a server for one client that ends after 60 s if none
    /// comes, so a client that failed fails its test instead of leaving `wait()` hanging.
    func iperf3Server(in short: String, port: Int = 5201) throws -> ChildProcess {
        try background("timeout 60 iperf3 -s -1 -p \(port)", in: short)
    }

    /// Sends SIGHUP (reload) to the switch this lab started.
    func hangUp() { lab.hangUp() }

    /// Sends SIGTERM to the switch (the process this lab started) and waits for it.
    func stop() -> Int32? { lab.stopSwitch() }

    func tearDown() { lab.tearDown() }
}

struct LabError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
