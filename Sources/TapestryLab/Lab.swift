import Foundation
import TapestryProcess

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway lab: network namespaces as hosts, a `tapestry run` process attached to them, and
/// commands run inside. `tapestry demo` and the live tests both use it.
///
/// It leaves nothing behind: `tearDown()` stops the switch it started (by PID), ends every
/// background command it started (its process group), then every process still inside the
/// namespaces it created (whatever made a process group of its own there, `timeout` say, was
/// started by this lab too), and deletes those namespaces. Every child starts with a clean
/// signal mask (`ChildProcess`), so SIGTERM ends it.
public final class Lab {
    public struct LabError: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    public private(set) var namespaces: [String] = []
    private var switchProcess: ChildProcess?
    private var started: [ChildProcess] = []
    /// Where the switch writes its output, and the topology it runs.
    public let logPath: String
    public let topologyPath: String

    /// - Parameter files: the stem of the lab's log and topology files in the temporary directory.
    public init(files: String) {
        let directory = NSTemporaryDirectory()
        logPath = (directory as NSString).appendingPathComponent("\(files)-switch.log")
        topologyPath = (directory as NSString).appendingPathComponent("\(files).yaml")
    }

    /// Creates a namespace (removing a stale one of that name first), loopback up, IPv6 off
    /// unless asked for, so only the lab's own traffic flows.
    public func addNamespace(_ namespace: String, ipv6: Bool = false) throws(LabError) {
        ip(["netns", "del", namespace])
        let added = ChildProcess.run(ChildProcess.ip, ["netns", "add", namespace])
        guard added.status == 0 else {
            throw LabError("cannot add namespace \(namespace): \(added.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        namespaces.append(namespace)
        if !ipv6 {
            ip(["netns", "exec", namespace, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
        }
        ip(["-n", namespace, "link", "set", "lo", "up"])
    }

    /// Writes `topology` to `topologyPath` and starts the switch on it (`startSwitch(file:)`).
    public func startSwitch(
        binary: String, topology: String, arguments: [String] = [], wrapper: (String, [String])? = nil,
        timeout: Double = 20
    ) throws(LabError) {
        do {
            try topology.write(toFile: topologyPath, atomically: true, encoding: .utf8)
        } catch {
            throw LabError("cannot write \(topologyPath): \(error)")
        }
        chmod(topologyPath, 0o644)
        try startSwitch(binary: binary, file: topologyPath, arguments: arguments, wrapper: wrapper, timeout: timeout)
    }

    /// Starts `binary run FILE` (with `arguments`), its output to `logPath`, then waits up to
    /// `timeout` seconds for its `ready` line. `wrapper` runs the switch through another program
    /// (`setpriv ...`, `sh -c 'umask ...'`): its path and the arguments before the switch's.
    public func startSwitch(
        binary: String, file: String, arguments: [String] = [], wrapper: (String, [String])? = nil,
        timeout: Double = 20
    ) throws(LabError) {
        unlink(logPath)
        let command = [binary, "run", file] + arguments
        let process: ChildProcess
        do throws(ChildProcess.SpawnError) {
            if let (executable, before) = wrapper {
                process = try ChildProcess(executable, before + command, output: .file(logPath))
            } else {
                process = try ChildProcess(binary, Array(command.dropFirst()), output: .file(logPath))
            }
        } catch {
            throw LabError(error.description)
        }
        switchProcess = process
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log.contains("ready") { return }
            if !process.isRunning { throw LabError("tapestry run exited \(process.wait()): \(log)") }
            usleep(50_000)
        }
        throw LabError("no ready line within \(Int(timeout)) s: \(log)")
    }

    /// What the switch wrote so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The running switch's PID.
    public var switchPID: pid_t? { switchProcess?.pid }

    /// Runs a shell command to its end, inside `namespace` when given; after `timeout` seconds
    /// it is ended (SIGTERM, then SIGKILL).
    @discardableResult
    public func sh(_ command: String, in namespace: String? = nil, timeout: Double = 60) -> (status: Int32, output: String) {
        if let namespace {
            return ChildProcess.run(ChildProcess.ip, ["netns", "exec", namespace, "/bin/sh", "-c", command], timeout: timeout)
        }
        return ChildProcess.shell(command, timeout: timeout)
    }

    /// Starts a shell command in `namespace` in the background; `tearDown` ends it if it has not
    /// ended by then.
    public func background(_ command: String, in namespace: String) throws(LabError) -> ChildProcess {
        do {
            let process = try ChildProcess(ChildProcess.ip, ["netns", "exec", namespace, "/bin/sh", "-c", command], output: .discard)
            started.append(process)
            return process
        } catch {
            throw LabError(error.description)
        }
    }

    /// Sends SIGHUP (reload) to the switch this lab started.
    public func hangUp() {
        if let switchProcess, switchProcess.isRunning { kill(switchProcess.pid, SIGHUP) }
    }

    /// Sends SIGTERM to the switch (its process group) and waits up to 10 s for it; its exit
    /// status, nil when it had to be killed (or none was started).
    @discardableResult
    public func stopSwitch() -> Int32? {
        guard let process = switchProcess else { return nil }
        switchProcess = nil
        // Its process group: a wrapper that does not exec (a shell) and the switch under it.
        if process.isRunning { kill(-process.pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(-process.pid, SIGKILL)
            process.wait()
            return nil
        }
        return process.wait()
    }

    /// PIDs of the processes inside `namespace`.
    public static func processes(in namespace: String) -> [pid_t] {
        ChildProcess.run(ChildProcess.ip, ["netns", "pids", namespace]).output.split(whereSeparator: \.isNewline)
            .compactMap { pid_t($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// What a torn-down lab must not have left: its namespaces that still exist, and the
    /// background processes it started that still run. Empty after `tearDown()`.
    public func leftovers(namespaces names: [String], processes pids: [pid_t]) -> [String] {
        var found: [String] = []
        for name in names where FileManager.default.fileExists(atPath: "/run/netns/\(name)") {
            found.append("namespace \(name)")
        }
        for pid in pids where kill(pid, 0) == 0 || errno == EPERM {
            // A zombie is gone for every purpose but its PID; only a live process counts.
            let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?
                .split(separator: ")").last?.split(separator: " ").first
            if state != "Z" { found.append("process \(pid)") }
        }
        return found
    }

    public func tearDown() {
        stopSwitch()
        for process in started { process.terminate(grace: 1) }
        started.removeAll()
        for namespace in namespaces {
            var remaining = Self.processes(in: namespace)
            for pid in remaining { kill(pid, SIGTERM) }
            let deadline = Date().addingTimeInterval(1)
            while !remaining.isEmpty && Date() < deadline {
                usleep(20_000)
                remaining = Self.processes(in: namespace)
            }
            for pid in remaining { kill(pid, SIGKILL) }
            ip(["netns", "del", namespace])
        }
        namespaces.removeAll()
        unlink(logPath)
        unlink(topologyPath)
    }

    deinit { tearDown() }

    @discardableResult
    private func ip(_ arguments: [String]) -> Int32 { ChildProcess.run(ChildProcess.ip, arguments).status }
}
