import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway lab for end-to-end tests: network namespaces as hosts (IPv6 off so only the test's
/// own traffic flows), a `tapestry run` process attached to TAP devices in them, and helpers to
/// run commands inside. Everything it creates is named with a per-lab prefix and removed by
/// `tearDown()`; the only process it ever signals is the switch it started, by PID.
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
    private(set) var namespaces: [String] = []
    private var process: Process?
    private let logURL: URL
    let topologyURL: URL

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static var binary: URL? {
        [
            Bundle.main.bundleURL.appendingPathComponent("tapestry"),
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("tapestry"),
            root.appendingPathComponent(".build/debug/tapestry"),
        ].first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    init() {
        Self.lock.lock()
        Self.counter += 1
        let number = Self.counter
        Self.lock.unlock()
        prefix = "tl\(getpid() % 1000)\(number)"
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-switch.log")
        topologyURL = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix).yaml")
    }

    /// The namespace (and TAP device) name of host `short` in this lab.
    func name(_ short: String) -> String { "\(prefix)-\(short)" }

    /// Creates a namespace per host, loopback up, IPv6 off.
    func addHosts(_ hosts: [String]) throws {
        for host in hosts {
            let namespace = name(host)
            sh("ip netns del \(namespace) 2>/dev/null")
            guard sh("ip netns add \(namespace)").status == 0 else { throw LabError("cannot add netns \(namespace)") }
            namespaces.append(namespace)
            sh("ip netns exec \(namespace) sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
            sh("ip -n \(namespace) link set lo up")
        }
    }

    /// Starts `tapestry run` on the topology text and waits for its `ready` line. With `user`
    /// (when root), the switch runs as that user instead; with `umask`, under that umask (set by
    /// a shell in the child, not in this process, which other tests share).
    func start(topology: String, arguments: [String] = [], user: String? = nil, umask: String? = nil) throws {
        guard let binary = Self.binary else { throw LabError("tapestry binary not found") }
        try topology.write(to: topologyURL, atomically: true, encoding: .utf8)
        chmod(topologyURL.path, 0o644)
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let process = Process()
        if let user, Self.isRoot {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=\(user)", "--regid=\(user == "nobody" ? "nogroup" : user)", "--clear-groups", "--reset-env",
                binary.path, "run", topologyURL.path] + arguments
        } else {
            process.executableURL = binary
            process.arguments = ["run", topologyURL.path] + arguments
        }
        if let umask, let executable = process.executableURL {
            process.arguments = ["-c", "umask \(umask) && exec \"$0\" \"$@\"", executable.path] + (process.arguments ?? [])
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
        }
        process.standardOutput = FileHandle(forWritingAtPath: logURL.path)
        process.standardError = FileHandle(forWritingAtPath: logURL.path)
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if log.contains("ready") { return }
            if !process.isRunning { throw LabError("tapestry run exited \(process.terminationStatus): \(log)") }
            usleep(50_000)
        }
        throw LabError("no ready line within 20 s: \(log)")
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

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
        let full = short.map { "ip netns exec \(name($0)) sh -c '\(command.replacingOccurrences(of: "'", with: "'\\''"))'" } ?? command
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = [String(timeout), "/bin/sh", "-c", full]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Starts a command in host `short`'s namespace in the background (it must end by itself).
    func background(_ command: String, in short: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", name(short), "sh", "-c", command]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Sends SIGHUP (reload) to the switch this lab started.
    func hangUp() {
        if let process, process.isRunning { kill(process.processIdentifier, SIGHUP) }
    }

    /// Sends SIGTERM to the switch (the process this lab started) and waits for it.
    func stop() -> Int32? {
        guard let process else { return nil }
        self.process = nil
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
        }
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    func tearDown() {
        _ = stop()
        for namespace in namespaces { sh("ip netns del \(namespace)") }
        namespaces.removeAll()
        try? FileManager.default.removeItem(at: logURL)
        try? FileManager.default.removeItem(at: topologyURL)
    }

    deinit { tearDown() }
}

struct LabError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
