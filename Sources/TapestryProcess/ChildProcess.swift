#if canImport(Glibc)
import Glibc
#endif

/// A child process started with a clean signal state, in a process group of its own.
///
/// Why not Foundation's `Process`: a child inherits its parent thread's signal mask, and the
/// switch blocks SIGINT, SIGTERM and SIGHUP for its signalfd; a child spawned with that mask (an
/// `ip` the switch runs, a server a test starts) cannot be ended by SIGTERM, so `timeout`, a
/// teardown or systemd cannot stop it. Here every child starts with an empty mask and default
/// dispositions for the signals that end or reload a process, whatever the spawning thread's
/// state, and as the leader of a new process group, so `terminate()` reaches the shell and
/// whatever it started (except children that make groups of their own, such as `timeout`: a lab
/// ends those through their namespace).
public final class ChildProcess {
    public enum Output: Sendable {
        /// Captured; read it with `waitForOutput()`.
        case pipe
        /// Appended to this file.
        case file(String)
        /// /dev/null.
        case discard
    }

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    public let pid: pid_t
    private let outputFD: Int32
    private var status: Int32?

    /// Starts `executable` (an absolute path) with `arguments` (without argv[0]).
    public init(_ executable: String, _ arguments: [String], output: Output = .pipe) throws(SpawnError) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var readEnd: Int32 = -1
        var target: Int32 = -1
        switch output {
        case .pipe:
            // A socket pair made close-on-exec atomically (Glibc's module has no pipe2): another
            // thread spawning at the same moment must not inherit the write end, or reading
            // would wait for that unrelated child too.
            var fds: [Int32] = [-1, -1]
            let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
            guard socketpair(AF_UNIX, type, 0, &fds) == 0 else {
                throw SpawnError(description: "socketpair: \(String(cString: strerror(errno)))")
            }
            shutdown(fds[0], Int32(SHUT_WR))
            readEnd = fds[0]
            target = fds[1]
        case .file(let path):
            target = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard target >= 0 else { throw SpawnError(description: "\(path): \(String(cString: strerror(errno)))") }
        case .discard:
            target = open("/dev/null", O_WRONLY | O_CLOEXEC)
        }
        defer { if target >= 0 { close(target) } }
        let input = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if input >= 0 { close(input) } }
        posix_spawn_file_actions_adddup2(&actions, input, 0)
        posix_spawn_file_actions_adddup2(&actions, target, 1)
        posix_spawn_file_actions_adddup2(&actions, target, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv = ([executable] + arguments).map { strdup($0) }
        defer { argv.forEach { free($0) } }
        var pointers = argv + [nil]
        var child: pid_t = 0
        let result = pointers.withUnsafeMutableBufferPointer { argv in
            posix_spawn(&child, executable, &actions, &attributes, argv.baseAddress!, environ)  // never empty: argv[0] and nil
        }
        guard result == 0 else {
            if readEnd >= 0 { close(readEnd) }
            throw SpawnError(description: "cannot run \(executable): \(String(cString: strerror(result)))")
        }
        pid = child
        outputFD = readEnd
    }

    deinit {
        if outputFD >= 0 { close(outputFD) }
        // A child nobody waited for must not stay a zombie of a long-running parent.
        if status == nil { _ = reap(blocking: false) }
    }

    /// Reads the captured output to its end (every process of the group closed it), then waits.
    /// `timeout`: seconds after which the group gets SIGTERM, then SIGKILL a second later; a
    /// second after that the output is no longer read (something outside the group holds it)
    /// and the child is reaped.
    public func waitForOutput(timeout: Double? = nil) -> (status: Int32, output: String) {
        let deadline = timeout.map { Self.monotonic() + $0 }
        var signalled = 0
        /// Past the deadline: the next signal, once a second.
        func escalate() {
            guard let deadline, Self.monotonic() >= deadline + Double(signalled) else { return }
            if signalled < 2 { kill(-pid, signalled == 0 ? SIGTERM : SIGKILL) }
            signalled += 1
        }
        var bytes: [UInt8] = []
        if outputFD >= 0 {
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while signalled < 3 {
                var poller = pollfd(fd: outputFD, events: Int16(POLLIN), revents: 0)
                let wait: Int32 = deadline.map { _ in 100 } ?? -1
                let ready = poll(&poller, 1, wait)
                if ready == 0 {
                    escalate()
                    continue
                }
                if ready < 0 {
                    if errno == EINTR { continue }
                    break
                }
                let count = buffer.withUnsafeMutableBytes { read(outputFD, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                bytes += buffer[0..<count]
                escalate()
            }
        }
        // The output may end long before the child does (it closed or redirected it).
        if deadline != nil {
            while isRunning && signalled < 3 {
                usleep(10_000)
                escalate()
            }
        }
        return (wait(), String(decoding: bytes, as: UTF8.self))
    }

    /// Waits for the child; its exit status, or 128 + the signal that ended it.
    @discardableResult
    public func wait() -> Int32 { reap(blocking: true) ?? -1 }

    public var isRunning: Bool { status == nil && reap(blocking: false) == nil }

    /// SIGTERM to the child's process group; SIGKILL after `grace` seconds if the child is still
    /// there. Returns once the child has been reaped.
    @discardableResult
    public func terminate(grace: Double = 2) -> Int32 {
        if status == nil {
            kill(-pid, SIGTERM)
            let deadline = Self.monotonic() + grace
            while isRunning && Self.monotonic() < deadline { usleep(20_000) }
            if isRunning { kill(-pid, SIGKILL) }
        }
        return wait()
    }

    private func reap(blocking: Bool) -> Int32? {
        if let status { return status }
        var raw: Int32 = 0
        while true {
            let result = waitpid(pid, &raw, blocking ? 0 : WNOHANG)
            if result == pid { break }
            if result == 0 { return nil }
            if errno == EINTR { continue }
            status = -1
            return status
        }
        let signal = raw & 0x7F
        status = signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
        return status
    }

    static func monotonic() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// Runs a command to its end and returns its status and output (stdout and stderr).
    public static func run(_ executable: String, _ arguments: [String], timeout: Double? = nil) -> (status: Int32, output: String) {
        do {
            return try ChildProcess(executable, arguments).waitForOutput(timeout: timeout)
        } catch {
            return (-1, error.description)
        }
    }

    /// `/bin/sh -c command`.
    public static func shell(_ command: String, timeout: Double? = nil) -> (status: Int32, output: String) {
        run("/bin/sh", ["-c", command], timeout: timeout)
    }

    /// The `ip` binary (/usr/sbin/ip on Debian, /sbin/ip elsewhere).
    public static var ip: String {
        access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip"
    }
}
